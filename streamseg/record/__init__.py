"""streamseg.record."""

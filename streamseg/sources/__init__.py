"""streamseg.sources."""

"""streamseg.config."""

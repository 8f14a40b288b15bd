"""streamseg.rules."""

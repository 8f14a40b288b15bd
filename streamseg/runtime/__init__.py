"""streamseg.runtime."""

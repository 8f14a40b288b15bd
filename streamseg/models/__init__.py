"""streamseg.models."""

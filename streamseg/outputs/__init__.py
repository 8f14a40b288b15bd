"""streamseg.outputs."""

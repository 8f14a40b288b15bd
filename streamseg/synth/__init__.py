"""streamseg.synth."""

"""streamseg.track."""

"""streamseg: video-stream analytics that reason on the object's pixels."""

__version__ = "0.1.0"

"""The contract every output (sink) follows."""

from __future__ import annotations

import logging
from typing import Protocol

import supervision as sv

from streamseg.types import Frame

logger = logging.getLogger(__name__)


class Sink(Protocol):
    """Receives every analysed frame of one or more streams, in order per stream.

    ``write`` is called from the stream's analytics thread; a sink shared by several streams
    must be thread-safe. ``close_stream`` is called once when a stream ends, ``close`` once at
    shutdown (after every stream was closed), and must flush what must not be lost.
    """

    def write(self, frame: Frame, detections: sv.Detections) -> None:
        """Consume one frame and its detections."""
        ...

    def close_stream(self, stream_id: str) -> None:
        """The stream ``stream_id`` delivers no more frames."""
        ...

    def close(self) -> None:
        """Flush and release everything."""
        ...

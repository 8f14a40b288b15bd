"""The ordered per-stream analytics chain where the tracker and the rules plug in."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import supervision as sv

from streamseg.types import Frame

logger = logging.getLogger(__name__)


class AnalyticsStage(Protocol):
    """One step of a stream's analytics (tracker, rules, ...).

    A stage sees that stream's frames in order and returns a new Detections object; it never
    mutates the one it was given (STYLE.md). Stages hold per-stream state, so each stream gets
    its own instances.
    """

    name: str

    def process(self, frame: Frame, detections: sv.Detections) -> sv.Detections:
        """Run on one frame; return the detections handed to the next stage."""
        ...


StageFactory = Callable[[str], AnalyticsStage]
"""Builds a fresh stage for a stream id."""


class AnalyticsChain:
    """Runs a stream's stages in order and times each one.

    Args:
        stream_id: the stream these stages serve.
        stages: in the order they run.
        record: ``record(stage_name, seconds)``, e.g. :meth:`StageTimings.record`.
    """

    def __init__(
        self,
        stream_id: str,
        stages: Sequence[AnalyticsStage],
        record: Callable[[str, float], None] | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.stages = list(stages)
        self._record = record

    def process(self, frame: Frame, detections: sv.Detections) -> sv.Detections:
        """Run every stage on one frame of this stream."""
        for stage in self.stages:
            start = time.perf_counter()
            detections = stage.process(frame, detections)
            if self._record is not None:
                self._record(stage.name, time.perf_counter() - start)
        return detections

    def close(self) -> None:
        """The stream ended: let each stage that has a ``close()`` finish what it holds open.

        The rules stage ends its open occurrences here (``end`` events with reason
        ``stream_end``), before the sinks are told the stream is closed, so recorders can finish
        the clips of those events. A stage that raises is logged and the others still run.
        """
        for stage in self.stages:
            close = getattr(stage, "close", None)
            if close is None:
                continue
            try:
                close()
            except Exception:
                logger.exception("closing stage %s of %s failed", stage.name, self.stream_id)

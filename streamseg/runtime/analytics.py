"""The ordered per-stream analytics chain where the tracker and the rules plug in."""

from __future__ import annotations

import logging
import threading
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

FAILURE_LOG_EVERY = 100
"""A stage or sink that keeps failing is logged again every this many frames, not on each."""


class FailureLog:
    """Logs a step's failures on frames without flooding the log, and counts them.

    The first failure of a step (a stage such as ``tracker``, a sink such as
    ``sink.JsonlWriter``) is logged with its traceback, then every :data:`FAILURE_LOG_EVERY`-th
    as one line. Thread-safe: streams share one log.

    Args:
        logger: where the records go.
        count: called with ``(stream_id, step)`` on each failure, e.g. to increment a metric.
    """

    def __init__(
        self, logger: logging.Logger, count: Callable[[str, str], None] | None = None
    ) -> None:
        self._logger = logger
        self._count = count
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}

    def failed(self, step: str, frame: Frame) -> None:
        """Call from an ``except`` block: ``step`` raised on ``frame``."""
        with self._lock:
            n = self._failures.get(step, 0) + 1
            self._failures[step] = n
        if self._count is not None:
            self._count(frame.stream_id, step)
        if n == 1:
            self._logger.exception(
                "%s failed on frame %d of %s", step, frame.index, frame.stream_id
            )
        elif n % FAILURE_LOG_EVERY == 0:
            self._logger.error("%s has failed on %d frames (latest %s)", step, n, frame.stream_id)


class AnalyticsChain:
    """Runs a stream's stages in order and times each one.

    A stage that raises on a frame ends that frame's chain there: the stages after it (which
    build on its output, as the rules on the tracker's ids) skip the frame, and
    :meth:`process` returns the detections as they were before the failing stage, so the sinks
    still get the frame (a recording keeps it). The failure goes to ``failures``.

    Args:
        stream_id: the stream these stages serve.
        stages: in the order they run.
        record: ``record(stage_name, seconds)``, e.g. :meth:`StageTimings.record`.
        failures: where a stage's failures are logged and counted; by default a
            :class:`FailureLog` on this module's logger.
    """

    def __init__(
        self,
        stream_id: str,
        stages: Sequence[AnalyticsStage],
        record: Callable[[str, float], None] | None = None,
        failures: FailureLog | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.stages = list(stages)
        self._record = record
        self._failures = failures if failures is not None else FailureLog(logger)

    def process(self, frame: Frame, detections: sv.Detections) -> sv.Detections:
        """Run every stage on one frame of this stream, up to the first that raises."""
        for stage in self.stages:
            start = time.perf_counter()
            try:
                detections = stage.process(frame, detections)
            except Exception:
                self._failures.failed(stage.name, frame)
                return detections
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

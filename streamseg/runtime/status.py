"""A periodic status line while a run goes (``streamseg run --status-every``).

A live pipeline under systemd or in a container otherwise logs only state changes: an operator
reading the journal cannot tell a healthy camera from one that silently delivers nothing. Every
``interval_s`` one INFO record says, per stream, its state, the frames analysed per second over
the interval, and what went wrong since the last line (frames dropped anywhere, frames missing,
corrupt packets, reconnects). Its ``streams`` extra field carries the same figures as data for
``--log-format json``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from types import TracebackType

from streamseg.runtime.pipeline import Pipeline

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class _Counts:
    """One stream's cumulative counts at one moment."""

    frames: int
    dropped: int
    missing: int
    corrupt: int
    reconnects: int


class StatusLogger:
    """Logs the run's status every ``interval_s`` between ``__enter__`` and ``__exit__``.

    Args:
        pipeline: the running pipeline.
        interval_s: seconds between lines (> 0).
    """

    def __init__(self, pipeline: Pipeline, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError(f"status interval must be > 0 s, got {interval_s:g}")
        self.pipeline = pipeline
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="status", daemon=True)
        self._lock = threading.Lock()
        """Held by :meth:`log_once`: a line covers the time since the line before it."""
        self._last: dict[str, _Counts] = {}
        self._last_at = time.monotonic()

    def __enter__(self) -> StatusLogger:
        self._last, self._last_at = self._counts(), time.monotonic()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _main(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.log_once()
            except Exception:  # a status line must never end the run
                logger.exception("status line failed")

    def log_once(self) -> None:
        """Log one status line covering the time since the last (or since the start)."""
        with self._lock:
            self._log_once()

    def _log_once(self) -> None:
        now, counts = time.monotonic(), self._counts()
        elapsed = max(now - self._last_at, 1e-9)
        states = {s.stream_id: s.state.value for s in self.pipeline.sources}
        streams: dict[str, dict[str, object]] = {}
        parts: list[str] = []
        for stream_id, current in counts.items():
            before = self._last.get(stream_id, _Counts(0, 0, 0, 0, 0))
            fps = (current.frames - before.frames) / elapsed
            since = {
                field.name: getattr(current, field.name) - getattr(before, field.name)
                for field in dataclasses.fields(_Counts)
                if field.name != "frames"
            }
            state = states.get(stream_id, "not started")
            streams[stream_id] = {"state": state, "fps": round(fps, 2), **since}
            trouble = ", ".join(f"{n} {what}" for what, n in since.items() if n)
            parts.append(
                f"{stream_id} {state} {fps:.1f} fps" + (f" ({trouble})" if trouble else "")
            )
        self._last, self._last_at = counts, now
        logger.info(
            "status over %.0f s: %s",
            elapsed,
            "; ".join(parts),
            extra={"interval_s": round(elapsed, 3), "streams": streams},
        )

    def _counts(self) -> dict[str, _Counts]:
        pipeline = self.pipeline
        stats = pipeline.source_stats()
        later_drops: dict[str, int] = {}
        for (stream_id, _stage), n in pipeline.frame_drops().items():
            later_drops[stream_id] = later_drops.get(stream_id, 0) + n
        counts: dict[str, _Counts] = {}
        for stream_id, progress in pipeline.progress.items():
            s = stats.get(stream_id)
            counts[stream_id] = _Counts(
                frames=progress.frames,
                dropped=later_drops.get(stream_id, 0) + (s.frames_dropped if s else 0),
                missing=s.frames_missing if s else 0,
                corrupt=(s.corrupt_packets + s.decode_errors) if s else 0,
                reconnects=s.reconnects if s else 0,
            )
        return counts

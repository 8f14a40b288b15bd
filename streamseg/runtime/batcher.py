"""Gathers frames from every source into batches for one forward pass."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import NamedTuple

from streamseg.sources.base import Source
from streamseg.types import Frame

logger = logging.getLogger(__name__)


class Batch(NamedTuple):
    """What one :meth:`FrameBatcher.next_batch` hands out.

    Attributes:
        frames: frames to segment together (may be empty when only ``ended`` has news).
        ended: streams whose source is exhausted (terminal, every frame taken) since the last
            batch: their last frames are in this batch or an earlier one, so their end can be
            handed on right after this batch's results.
    """

    frames: list[Frame]
    ended: tuple[str, ...] = ()


class FrameBatcher:
    """Round-robin batching across sources, woken by the sources' notifiers.

    Each pass takes at most one frame per source, starting at a rotating offset so no stream
    starves; passes repeat until the batch is full or nothing is ready. A partial batch waits at
    most ``timeout_s`` for more frames. Frames of one stream keep their order. A source that has
    ended is reported once, in the first batch taken after its last frame (an otherwise empty
    batch when nothing else is ready): its stream's analytics end then, not when every source
    has (a file ending beside live cameras closed its events only at shutdown).

    Args:
        sources: the pipeline's sources; their notifiers are set to this batcher.
        batch_size: most frames in one batch.
        timeout_s: how long a partial batch waits to fill.
        stop: set to make :meth:`next_batch` return ``None``.
        idle_poll_s: longest wait between checks while nothing is ready.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        batch_size: int,
        timeout_s: float,
        stop: threading.Event,
        idle_poll_s: float = 0.1,
    ) -> None:
        self.sources = list(sources)
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self.stop = stop
        self.idle_poll_s = idle_poll_s
        self._cond = threading.Condition()
        self._offset = 0
        self._ended: set[str] = set()
        for source in self.sources:
            source.set_notifier(self.notify)

    def notify(self) -> None:
        """Wake the batcher (called from reader threads)."""
        with self._cond:
            self._cond.notify_all()

    def _collect(self, batch: list[Frame]) -> None:
        n = len(self.sources)
        progressed = True
        while progressed and len(batch) < self.batch_size:
            progressed = False
            for k in range(n):
                source = self.sources[(self._offset + k) % n]
                frame = source.get_nowait()
                if frame is not None:
                    batch.append(frame)
                    progressed = True
                    if len(batch) >= self.batch_size:
                        break
            self._offset = (self._offset + 1) % max(n, 1)

    def next_batch(self) -> Batch | None:
        """Block until a batch is ready (frames, or a newly ended stream); ``None`` once
        stopped or every source is exhausted and reported."""
        batch: list[Frame] = []
        deadline: float | None = None
        with self._cond:
            while True:
                if self.stop.is_set():
                    return None
                self._collect(batch)
                if len(batch) >= self.batch_size:
                    return Batch(batch, self._newly_ended())
                now = time.monotonic()
                if batch:
                    if deadline is None:
                        deadline = now + self.timeout_s
                    if now >= deadline or all(s.exhausted for s in self.sources):
                        return Batch(batch, self._newly_ended())
                    self._cond.wait(deadline - now)
                else:
                    ended = self._newly_ended()
                    if ended:
                        return Batch([], ended)
                    if all(s.exhausted for s in self.sources):
                        return None
                    self._cond.wait(self.idle_poll_s)

    def _newly_ended(self) -> tuple[str, ...]:
        """Streams exhausted since the last call (each is reported once)."""
        ended = tuple(
            s.stream_id for s in self.sources if s.exhausted and s.stream_id not in self._ended
        )
        self._ended.update(ended)
        return ended


class Turnstile:
    """Lets numbered work through one at a time, in number order (0, 1, 2, ...).

    Several inference workers take batches in turn and number them; each segments its batch
    whenever it can, then waits here for its number before handing the results on, so every
    stream's analytics sees its frames in order whatever finishes first.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next = 0

    def wait(self, number: int) -> None:
        """Block until every lower number is :meth:`done`."""
        with self._cond:
            while self._next != number:
                self._cond.wait()

    def done(self, number: int) -> None:
        """Let ``number + 1`` through (call after :meth:`wait` returned for ``number``)."""
        with self._cond:
            if number != self._next:
                raise RuntimeError(f"Turnstile: done({number}) out of turn (next is {self._next})")
            self._next = number + 1
            self._cond.notify_all()

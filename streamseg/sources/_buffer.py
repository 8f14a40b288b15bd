"""The hand-over between a reader thread and the consumer: bounded FIFO or latest-frame mailbox."""

from __future__ import annotations

import collections
import logging
import threading
import time

from streamseg.types import Frame

logger = logging.getLogger(__name__)

__all__ = ["FrameBuffer"]


class FrameBuffer:
    """Bounded FIFO of frames shared by one producer thread and any consumers.

    Two policies (DESIGN.md, "Rules of the flow"):

    * ``overwrite=False`` (files): :meth:`put` blocks while the buffer is full; nothing is lost.
    * ``overwrite=True`` (live): :meth:`put` never blocks; when full the oldest frame is dropped
      and counted. With ``capacity=1`` this is the latest-frame mailbox.

    This is a ``queue.Queue`` with one addition: :meth:`close` wakes every waiting
    :meth:`get` at once, so a consumer does not sit out its timeout after the source ended.

    Args:
        capacity: the most frames held, >= 1.
        overwrite: drop the oldest frame instead of blocking when full.
    """

    def __init__(self, capacity: int, overwrite: bool) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity!r}")
        self.capacity = capacity
        self.overwrite = overwrite
        self._items: collections.deque[Frame] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, frame: Frame, stop: threading.Event, poll_s: float = 0.1) -> tuple[bool, int]:
        """Add a frame.

        Args:
            frame: the frame to hand over.
            stop: when set, a blocked put gives up (checked every ``poll_s``).
            poll_s: how often a blocked put looks at ``stop``.

        Returns:
            ``(accepted, dropped)``: whether the frame went in (False once closed or stopped) and
            how many older frames were overwritten to make room.
        """
        with self._cond:
            if self.overwrite:
                if self._closed:
                    return False, 0
                dropped = 0
                while len(self._items) >= self.capacity:
                    self._items.popleft()
                    dropped += 1
                self._items.append(frame)
                self._cond.notify_all()
                return True, dropped
            while len(self._items) >= self.capacity:
                if self._closed or stop.is_set():
                    return False, 0
                self._cond.wait(poll_s)
            if self._closed or stop.is_set():
                return False, 0
            self._items.append(frame)
            self._cond.notify_all()
            return True, 0

    def get_nowait(self) -> Frame | None:
        """The oldest frame, or None when empty."""
        with self._cond:
            if not self._items:
                return None
            frame = self._items.popleft()
            self._cond.notify_all()
            return frame

    def get(self, timeout: float) -> Frame | None:
        """The oldest frame, waiting up to ``timeout`` seconds; None on timeout or when closed."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while not self._items:
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    return None
                self._cond.wait(remaining)
            frame = self._items.popleft()
            self._cond.notify_all()
            return frame

    def close(self) -> None:
        """Refuse further puts and wake every waiter; frames already held can still be taken."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

"""A background thread that handles items in order; handing it an item never blocks.

The analytics thread of a stream gives frames to a :class:`BackgroundWorker`; the worker
annotates, encodes and writes them. ``put`` never waits: when ``max_pending`` frames are already
waiting, the new frame is dropped and counted (DESIGN.md: a stage never blocks another, every
drop is visible). Control items (an event's clip start or end, a snapshot) go through
``put_control``: they are never dropped, and they keep their place in the order, so a clip that
starts at frame N sees exactly the frames handed over after it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

OS_ERROR_REPEAT_S = 3600.0
"""A write error of one kind (errno and folder) is logged at most this often after its first."""


@dataclass(frozen=True)
class WorkerStats:
    """Counters of one worker.

    Attributes:
        accepted: items taken by ``put`` or ``put_control``.
        dropped: items refused by ``put`` because the queue was full.
        handled: items the handler finished (including those that raised).
        errors: items whose handler raised (logged with their traceback).
        pending: items waiting now.
    """

    accepted: int
    dropped: int
    handled: int
    errors: int
    pending: int


class BackgroundWorker(Generic[T]):
    """One daemon thread calling ``handle(item)`` for each item, in the order they came.

    Args:
        name: thread name (shows in logs and tracebacks).
        handle: called on the worker thread for each item; an exception is logged and counted,
            and the worker goes on with the next item.
        max_pending: droppable items allowed to wait; ``put`` drops beyond it.
        on_close: called once on the worker thread after the last item (flush files here).
        on_idle: called on the worker thread every ``idle_s`` seconds while no item comes
            (finish what a stalled source leaves waiting); exceptions are logged.
        idle_s: see ``on_idle``.
    """

    def __init__(
        self,
        name: str,
        handle: Callable[[T], None],
        max_pending: int,
        on_close: Callable[[], None] | None = None,
        on_idle: Callable[[], None] | None = None,
        idle_s: float = 1.0,
    ) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.name = name
        self.max_pending = max_pending
        self._handle = handle
        self._on_close = on_close
        self._on_idle = on_idle
        self._idle_s = idle_s
        self._items: deque[tuple[T, bool]] = deque()
        self._droppable_waiting = 0
        self._cond = threading.Condition()
        self._closing = False
        self._accepted = 0
        self._dropped = 0
        self._handled = 0
        self._errors = 0
        # (errno, folder) -> (when last logged, errors since): see _report_os_error.
        self._os_errors: dict[tuple[int | None, str | None], tuple[float, int]] = {}
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: T, wait: bool = False) -> bool:
        """Queue a droppable item (a frame).

        Args:
            item: the item.
            wait: when ``max_pending`` items wait already, wait for room instead of dropping
                (for file sources, processed frame by frame: DESIGN.md's "block (files)").
                The wait is bounded by the worker's progress, which never stops while items
                are queued.

        Returns:
            True if queued; False if dropped because ``max_pending`` items wait already (and
            ``wait`` is false) or the worker is closing.
        """
        with self._cond:
            if wait:
                while not self._closing and self._droppable_waiting >= self.max_pending:
                    self._cond.wait()
            if self._closing or self._droppable_waiting >= self.max_pending:
                self._dropped += 1
                if self._dropped == 1 or self._dropped % 100 == 0:
                    logger.warning(
                        "%s: queue full (%d waiting), %d frame(s) dropped so far",
                        self.name,
                        self._droppable_waiting,
                        self._dropped,
                    )
                return False
            self._items.append((item, True))
            self._droppable_waiting += 1
            self._accepted += 1
            self._cond.notify_all()
            return True

    def put_control(self, item: T) -> None:
        """Queue an item that must not be lost (never dropped, never waits).

        Raises:
            RuntimeError: the worker is closing.
        """
        with self._cond:
            if self._closing:
                raise RuntimeError(f"{self.name} is closed")
            self._items.append((item, False))
            self._accepted += 1
            self._cond.notify_all()

    def stats(self) -> WorkerStats:
        """The counters now."""
        with self._cond:
            return WorkerStats(
                accepted=self._accepted,
                dropped=self._dropped,
                handled=self._handled,
                errors=self._errors,
                pending=len(self._items),
            )

    def close(self, timeout: float | None = None) -> bool:
        """Handle what is queued, run ``on_close``, stop the thread (idempotent).

        Args:
            timeout: seconds to wait for the thread; None waits as long as it takes.

        Returns:
            True if the thread finished within ``timeout``.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.error("%s did not finish within %s s", self.name, timeout)
            return False
        return True

    def _report_os_error(self, exc: OSError) -> None:
        """Log the first error of each kind (errno and folder) without a traceback, then at
        most once per :data:`OS_ERROR_REPEAT_S` with the count since.

        The kind is the folder, not the file: a full disk fails each new segment file in turn
        (a new name every segment), and was logged once per segment."""
        filename = getattr(exc, "filename", None)
        folder = os.path.dirname(str(filename)) if filename is not None else None
        key = (exc.errno, folder)
        now = time.monotonic()
        logged_at, since = self._os_errors.get(key, (None, 0))
        if logged_at is not None and now - logged_at < OS_ERROR_REPEAT_S:
            self._os_errors[key] = (logged_at, since + 1)
            logger.debug("%s: %s", self.name, exc)
            return
        self._os_errors[key] = (now, 0)
        if logged_at is None:
            logger.error(
                "%s: cannot write the recording: %s; frames are not recorded while this lasts "
                "(analytics and alerts go on; further errors of this kind are counted and "
                "logged again at most every %g s)",
                self.name,
                exc,
                OS_ERROR_REPEAT_S,
            )
        else:
            logger.error(
                "%s: still cannot write the recording: %s (%d more errors of this kind in the "
                "last %.0f s)",
                self.name,
                exc,
                since + 1,
                now - logged_at,
            )

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closing:
                    if self._on_idle is None:
                        self._cond.wait()
                    elif not self._cond.wait(self._idle_s):
                        break  # nothing came for idle_s
                if not self._items and self._closing:
                    break
                idle = not self._items
                if not idle:
                    item, droppable = self._items.popleft()
                    if droppable:
                        self._droppable_waiting -= 1
                        self._cond.notify_all()  # a waiting put may go on
            if idle:
                assert self._on_idle is not None
                try:
                    self._on_idle()
                except Exception:
                    logger.exception("%s: idle work failed", self.name)
                continue
            try:
                self._handle(item)
            except OSError as exc:
                # A full, read-only or missing disk fails every frame the same way: say it once,
                # clearly, then count (analytics and alerts go on; see stats().errors).
                self._report_os_error(exc)
                with self._cond:
                    self._errors += 1
            except Exception:
                logger.exception("%s: handling an item failed", self.name)
                with self._cond:
                    self._errors += 1
            with self._cond:
                self._handled += 1
        if self._on_close is not None:
            try:
                self._on_close()
            except Exception:
                logger.exception("%s: closing failed", self.name)

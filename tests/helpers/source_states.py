"""Records a source's state transitions, for tests that wait on them."""

from __future__ import annotations

import threading
import time

import pytest

from streamseg.sources import Source
from streamseg.types import SourceState


class TransitionLog:
    """Records ``(monotonic time, old, new)`` for every state change of a source."""

    def __init__(self, source: Source) -> None:
        self.events: list[tuple[float, SourceState, SourceState]] = []
        self._cond = threading.Condition()
        source.add_state_listener(self._on_change)

    def _on_change(self, _sid: str, old: SourceState, new: SourceState) -> None:
        with self._cond:
            self.events.append((time.monotonic(), old, new))
            self._cond.notify_all()

    def wait_for(self, new: SourceState, timeout: float, after: int = 0) -> float:
        """Wait for a transition into ``new`` at position >= ``after``; returns its time."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for when, _old, state in self.events[after:]:
                    if state is new:
                        return when
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(o.value, n.value) for _t, o, n in self.events]
                    pytest.fail(f"no transition to {new.value} within {timeout} s; saw {seen}")
                self._cond.wait(remaining)

    @property
    def states(self) -> list[SourceState]:
        return [new for _t, _old, new in self.events]

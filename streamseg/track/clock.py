"""Turns the timestamps handed to a tracker into safe, increasing time steps.

Streams are not always well behaved: a camera may send a frame without a timestamp, repeat one,
or jump backwards when it restarts. A tracker must neither crash nor freeze on that, so
:class:`TrackClock` keeps its own monotonic clock: a valid timestamp advances it by the real
interval; a non-finite, repeated or backwards one advances it by the last valid interval (or
``fallback_dt_s`` before any) and is reported with ``logger.warning``. Warnings are throttled
(the 1st, 10th, 100th, ... occurrence of each kind) so a broken stream cannot flood the log.
"""

from __future__ import annotations

import logging
import math
from collections import Counter

logger = logging.getLogger(__name__)

NON_FINITE = "non-finite"
"""Kind of timestamp problem: NaN, infinity or not a number at all."""

NOT_INCREASING = "not increasing"
"""Kind of timestamp problem: equal to or earlier than the previous one."""


class TrackClock:
    """A monotonic clock fed by possibly broken stream timestamps.

    Args:
        fallback_dt_s: step assumed for a bad timestamp before any valid interval was seen, > 0.
        name: who owns the clock, for log messages (e.g. the stream id).

    Attributes:
        now_s: the clock's time after the last :meth:`advance`, seconds (0 before the first).
        problems: how many timestamps of each kind (:data:`NON_FINITE`, :data:`NOT_INCREASING`)
            were replaced so far.
    """

    def __init__(self, fallback_dt_s: float, name: str = "tracker") -> None:
        if not (math.isfinite(fallback_dt_s) and fallback_dt_s > 0):
            raise ValueError(f"fallback_dt_s: expected a finite number > 0, got {fallback_dt_s!r}")
        self.fallback_dt_s = float(fallback_dt_s)
        self.name = name
        self.now_s = 0.0
        self.problems: Counter[str] = Counter()
        self._last_raw: float | None = None
        self._last_good_dt: float | None = None
        self._started = False

    def advance(self, timestamp: float) -> float:
        """Move the clock to the frame stamped ``timestamp`` and return the step taken.

        Args:
            timestamp: the frame's presentation time in seconds.

        Returns:
            The step in seconds, >= 0: 0 on the first call, the real interval for a timestamp
            later than the previous valid one, the last valid interval (or ``fallback_dt_s``)
            otherwise.
        """
        raw = _as_float(timestamp)
        if not self._started:
            self._started = True
            if raw is None:
                self._report(NON_FINITE, timestamp)
            self._last_raw = raw
            return 0.0
        if raw is None:
            self._report(NON_FINITE, timestamp)
            dt = self._nominal_dt()
        elif self._last_raw is None:
            dt = self._nominal_dt()
            self._last_raw = raw
        elif raw > self._last_raw:
            dt = raw - self._last_raw
            self._last_good_dt = dt
            self._last_raw = raw
        else:
            self._report(NOT_INCREASING, timestamp)
            dt = self._nominal_dt()
            self._last_raw = raw  # a backwards jump (stream restart) is the new time base
        self.now_s += dt
        return dt

    def _nominal_dt(self) -> float:
        return self._last_good_dt if self._last_good_dt is not None else self.fallback_dt_s

    def _report(self, kind: str, timestamp: object) -> None:
        self.problems[kind] += 1
        count = self.problems[kind]
        if _is_power_of_ten(count):
            previous = self._last_raw
            logger.warning(
                "%s: %s timestamp %r (previous %r); assuming a step of %.4g s "
                "(%d such timestamp(s) so far)",
                self.name,
                kind,
                timestamp,
                previous,
                self._nominal_dt(),
                count,
            )


def _as_float(timestamp: object) -> float | None:
    try:
        value = float(timestamp)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _is_power_of_ten(count: int) -> bool:
    while count % 10 == 0:
        count //= 10
    return count == 1

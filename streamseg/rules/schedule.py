"""When a scheduled rule runs: the windows of its ``schedule`` as stretches of real time.

A window of day D runs from its ``start`` on D to its ``end`` on D (or on D + 1 when ``end`` is
before ``start``; ``24:00`` is midnight after D), both read in the schedule's time zone and
turned into instants. Across a daylight-saving change that is the stretch of real time between
them: a start in the repeated hour is the first of the two, an end the second, so a night
window is not cut in two when the clocks go back; a window inside the skipped hour is empty.
Window boundaries fall on whole minutes (time zones' offsets are whole minutes), so the answer
is kept for the minute (:meth:`Schedule.holds` is called per frame per scheduled rule).
"""

from __future__ import annotations

import datetime
import logging
import math
import zoneinfo

from streamseg.config.schedule import DAYS, ScheduleConfig, minutes_of

logger = logging.getLogger(__name__)

_DAY = datetime.timedelta(days=1)
_MINUTES_A_DAY = 24 * 60


class Schedule:
    """A rule's ``schedule``, ready to ask (module docstring).

    Args:
        config: the validated ``schedule`` section.
    """

    def __init__(self, config: ScheduleConfig) -> None:
        self.tz: datetime.tzinfo | None = (
            zoneinfo.ZoneInfo(config.timezone) if config.timezone is not None else None
        )
        self.windows: list[tuple[frozenset[int], int, int]] = [
            (
                frozenset(DAYS.index(day) for day in window.days),
                minutes_of(window.start),
                minutes_of(window.end),
            )
            for window in config.windows
        ]
        self._minute: int | None = None
        self._holds = False

    def holds(self, wall_time: float) -> bool:
        """Whether a window holds at UNIX time ``wall_time``."""
        minute = math.floor(wall_time / 60)
        if minute != self._minute:
            self._minute, self._holds = minute, self._holds_at(minute * 60.0)
        return self._holds

    def _holds_at(self, wall_time: float) -> bool:
        today = datetime.datetime.fromtimestamp(wall_time, self.tz).date()
        for days, start, end in self.windows:
            # A window of today, or one of yesterday's that runs past midnight (the clock may
            # read a date ahead of the window's start day for a whole night).
            for day in (today, today - _DAY):
                if day.weekday() not in days:
                    continue
                begins = self._instant(day, start, fold=0)
                ends = self._instant(day, end if end > start else end + _MINUTES_A_DAY, fold=1)
                if begins <= wall_time < ends:
                    return True
        return False

    def _instant(self, day: datetime.date, minutes: int, fold: int) -> float:
        """UNIX time of ``minutes`` after the midnight that starts ``day`` (more than a day:
        on a later day), read in :attr:`tz`; ``fold`` picks one of a repeated hour's two."""
        day += datetime.timedelta(days=minutes // _MINUTES_A_DAY)
        minutes %= _MINUTES_A_DAY
        clock = datetime.time(minutes // 60, minutes % 60, fold=fold)
        return datetime.datetime.combine(day, clock, tzinfo=self.tz).timestamp()

"""A rule's ``schedule``: the times of day and days of the week it runs.

Example (an intruder rule for the nights and weekends of a yard)::

    schedule:
      timezone: Europe/Berlin        # default: the machine's local time
      windows:
        - {days: [mon, tue, wed, thu, fri], start: "18:00", end: "06:00"}   # overnight
        - {days: [sat, sun]}                                                # all day
        - {days: [mon], end: "06:00"}                          # Sunday night into Monday

A window runs from ``start`` (included) to ``end`` (excluded) on each of its ``days``; an
``end`` before ``start`` runs past midnight into the next day, and belongs to the day it starts
on (so Sunday's all-day window above ends at midnight, and Monday's early hours need a window of
their own). Across a daylight-saving change a window is the stretch of real time between its
start and its end (the later of two 02:30s; a window inside a skipped hour does not run).
:class:`streamseg.rules.schedule.Schedule` judges each frame's wall-clock time
(``Frame.wall_time``: when it was decoded, so a file analysed now is judged by now); the rule
engine pauses and resumes the rule (:mod:`streamseg.rules.engine`).
"""

from __future__ import annotations

import logging
import re
import zoneinfo
from typing import Literal

from pydantic import Field, field_validator, model_validator
from typing_extensions import Self

from streamseg.config._base import ConfigModel

logger = logging.getLogger(__name__)

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Day names in ``datetime.weekday()`` order."""

_TIME = re.compile(r"^([01]?[0-9]|2[0-4]):([0-5][0-9])$")


def minutes_of(text: str) -> int:
    """``"HH:MM"`` as minutes after midnight (``"24:00"``: 1440).

    Raises:
        ValueError: not a time of day in that form.
    """
    match = _TIME.match(text.strip())
    if match is None or (int(match[1]) == 24 and int(match[2]) != 0):
        raise ValueError("expected a time of day as HH:MM (00:00 to 24:00), e.g. 18:30")
    return int(match[1]) * 60 + int(match[2])


class ScheduleWindow(ConfigModel):
    """A time window on some days of the week."""

    days: list[Day] = Field(
        default_factory=lambda: list(DAYS),
        min_length=1,
        description="days it starts on: mon, tue, wed, thu, fri, sat, sun (default: every day)",
    )
    start: str = Field(default="00:00", description='start time, "HH:MM" (quote it in YAML)')
    end: str = Field(
        default="24:00",
        description='end time, "HH:MM", excluded; before start: the next day\'s',
    )

    @field_validator("start", "end")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        minutes_of(value)
        return value

    @field_validator("days")
    @classmethod
    def _days_once(cls, value: list[Day]) -> list[Day]:
        repeated = sorted({day for day in value if value.count(day) > 1}, key=DAYS.index)
        if repeated:
            raise ValueError(f"day(s) {', '.join(repeated)} listed twice")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if minutes_of(self.start) == minutes_of(self.end):
            # 08:00 to 08:00 could mean a whole day or nothing: say which.
            raise ValueError(
                f"start and end are both {self.start}: for a calendar day write start: "
                "'00:00' and end: '24:00' (the defaults); for a day from another time, two "
                "windows"
            )
        return self


class ScheduleConfig(ConfigModel):
    """When a rule runs (see the module docstring)."""

    timezone: str | None = Field(
        default=None,
        description="IANA time zone of the windows, e.g. Europe/Berlin (default: the "
        "machine's local time)",
    )
    windows: list[ScheduleWindow] = Field(
        min_length=1, description="the windows the rule runs in: days, start, end"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    "a time zone this machine does not know; expected an IANA name such as "
                    "Europe/Berlin or UTC (from the time zone database: Debian package tzdata)"
                ) from None
        return value

"""Rule schedules: windows on days of the week, judged by each frame's wall-clock time."""

from __future__ import annotations

import datetime
import time
from typing import Any

import numpy as np
import pytest

from streamseg.config import ConfigError, load_pipeline_text
from streamseg.config.schedule import ScheduleConfig, ScheduleWindow
from streamseg.rules import Event
from streamseg.rules.schedule import Schedule
from streamseg.types import HIDDEN_TRACK_IDS, Frame

Kit = Any  # the `kit` fixture (tests/rules/conftest.py)

MONDAY_0759 = datetime.datetime(2026, 11, 23, 7, 59, 55, tzinfo=datetime.timezone.utc).timestamp()
"""A Monday (UTC), five seconds before 08:00."""


def _at(day: int, hour: int, minute: int = 0) -> float:
    """UNIX time of ``hour:minute`` UTC on day ``day`` of the week of 2026-11-23 (0: Monday)."""
    start = datetime.datetime(2026, 11, 23 + day, hour, minute, tzinfo=datetime.timezone.utc)
    return start.timestamp()


def test_windows_hold_from_start_to_end_and_past_midnight() -> None:
    nights = Schedule(
        ScheduleConfig(
            timezone="UTC",
            windows=[
                ScheduleWindow(
                    days=["mon", "tue", "wed", "thu", "fri"], start="18:00", end="06:00"
                ),
                ScheduleWindow(days=["sun"]),
            ],
        )
    )
    assert not nights.holds(_at(0, 17, 59))
    assert nights.holds(_at(0, 18, 0))  # start included
    assert nights.holds(_at(1, 5, 59))  # Monday's window, on Tuesday morning
    assert not nights.holds(_at(1, 6, 0))  # end excluded
    assert nights.holds(_at(5, 5, 0))  # Friday's night runs into Saturday
    assert not nights.holds(_at(5, 12, 0))  # Saturday is not listed
    assert nights.holds(_at(6, 0, 0)) and nights.holds(_at(6, 23, 59))  # Sunday, all day
    assert not nights.holds(_at(0, 5, 0))  # Sunday's window ends at midnight


def test_the_time_zone_is_that_of_the_windows() -> None:
    office = [ScheduleWindow(days=["mon"], start="08:00", end="09:00")]
    berlin = Schedule(ScheduleConfig(timezone="Europe/Berlin", windows=office))
    utc = Schedule(ScheduleConfig(timezone="UTC", windows=office))
    assert berlin.holds(_at(0, 7, 30)) and not utc.holds(_at(0, 7, 30))  # 08:30 in Berlin (CET)
    summer = datetime.datetime(2026, 6, 1, 6, 30, tzinfo=datetime.timezone.utc).timestamp()
    assert berlin.holds(summer)  # a Monday, 08:30 CEST


def _utc(*args: int) -> float:
    return datetime.datetime(*args, tzinfo=datetime.timezone.utc).timestamp()


def test_a_night_window_is_one_stretch_across_the_clocks_going_back() -> None:
    """Regression (audit): windows were judged by the clock's reading, so 22:00-02:30 in Berlin
    on the night the clocks go back (03:00 CEST -> 02:00 CET) closed at the first 02:30, for
    half an hour, and opened again at 02:00 CET: one occurrence ended and another began."""
    night = Schedule(
        ScheduleConfig(
            timezone="Europe/Berlin", windows=[ScheduleWindow(start="22:00", end="02:30")]
        )
    )
    assert not night.holds(_utc(2026, 10, 24, 19, 59))  # 21:59 CEST
    assert night.holds(_utc(2026, 10, 24, 20, 0))  # 22:00 CEST
    assert night.holds(_utc(2026, 10, 25, 0, 45))  # 02:45 CEST, the first time round
    assert night.holds(_utc(2026, 10, 25, 1, 15))  # 02:15 CET, the second
    assert not night.holds(_utc(2026, 10, 25, 1, 30))  # 02:30 CET: the end
    # A window inside the hour the clocks skip (02:00 CET -> 03:00 CEST) does not run.
    skipped = Schedule(
        ScheduleConfig(
            timezone="Europe/Berlin",
            windows=[ScheduleWindow(days=["sun"], start="02:00", end="03:00")],
        )
    )
    assert not any(skipped.holds(_utc(2026, 3, 29, 0, m)) for m in range(0, 60, 5))
    assert not skipped.holds(_utc(2026, 3, 29, 1, 0))  # 03:00 CEST


def test_the_readme_example_covers_nights_and_weekends() -> None:
    """Regression (audit): without a Monday window ending at 06:00 the example left Sunday
    night to Monday 06:00 unwatched."""
    config = (
        load_pipeline_text(
            _rules(
                """\
      timezone: UTC
      windows:
        - {days: [mon, tue, wed, thu, fri], start: "18:00", end: "06:00"}
        - {days: [sat, sun]}
        - {days: [mon], end: "06:00"}
"""
            ),
            env={},
        )
        .rules[0]
        .schedule
    )
    assert config is not None
    schedule = Schedule(config)
    every_half_hour = [
        _at(day, hour, minute) for day in range(7) for hour in range(24) for minute in (0, 30)
    ]
    off = [t for t in every_half_hour if not schedule.holds(t)]
    assert off, "working hours must be off"
    for t in off:  # every hour off is a weekday's working day
        moment = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
        assert moment.weekday() < 5 and 6 <= moment.hour < 18, moment


def _rules(schedule: str) -> str:
    return f"""\
sources:
  - {{id: cam, type: file, path: cam.mp4}}
zones:
  - {{id: pen, type: polygon, points: [[40, 0], [119, 0], [119, 79], [40, 79]]}}
rules:
  - id: r
    type: inside
    zone: pen
    min_duration_s: 0
    schedule:
{schedule}
"""


def test_unquoted_times_read_as_times() -> None:
    windows = "      windows:\n        - {days: [mon], start: 18:00, end: 6:30}\n"
    config = load_pipeline_text(_rules(windows), env={})
    schedule = config.rules[0].schedule
    assert schedule is not None
    assert (schedule.windows[0].start, schedule.windows[0].end) == ("18:00", "6:30")


@pytest.mark.parametrize(
    ("windows", "where", "message"),
    [
        ("start: '25:00'", "rules[0].schedule.windows[0].start", "expected a time of day as HH:MM"),
        ("start: 8", "rules[0].schedule.windows[0].start", "expected a time of day as HH:MM"),
        ("days: [monday]", "rules[0].schedule.windows[0].days[0]", "'mon', 'tue'"),
        ("days: [mon, mon]", "rules[0].schedule.windows[0].days", "mon listed twice"),
        ("start: '08:00', end: '08:00'", "rules[0].schedule.windows[0]", "both 08:00"),
    ],
)
def test_bad_windows_are_errors_at_their_line(windows: str, where: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_pipeline_text(_rules(f"      windows:\n        - {{{windows}}}\n"), env={})
    [issue] = info.value.issues
    assert issue.key_path == where and message in issue.message
    assert issue.line == 12


def test_an_unknown_time_zone_is_an_error() -> None:
    text = _rules("      timezone: Europe/Atlantis\n      windows: [{days: [mon]}]\n")
    with pytest.raises(ConfigError, match="got 'Europe/Atlantis', a time zone this machine does"):
        load_pipeline_text(text, env={})


SCHEDULED = """\
zones:
  - {id: pen, type: polygon, points: [[40, 0], [119, 0], [119, 79], [40, 79]]}
rules:
  - id: inside
    type: inside
    zone: pen
    min_duration_s: 0
    update_interval_s: null
    schedule:
      timezone: UTC
      windows:
        - {days: [mon], start: "08:00", end: "08:01"}
        - {days: [mon], start: "08:02", end: "08:03"}
  - id: enter
    type: enter
    zone: pen
    min_duration_s: 0
    state_hold_s: 0
    schedule: {timezone: UTC, windows: [{days: [mon], start: "08:00", end: "08:01"}]}
"""


def _feed(kit: Kit, engine: Any, xs: list[int]) -> list[tuple[float, Event]]:
    """One frame a second from :data:`MONDAY_0759`, a person at each x (events with their
    frame's seconds after 07:59:55)."""
    events: list[tuple[float, Event]] = []
    image = np.zeros((80, 120, 3), dtype=np.uint8)
    for index, x in enumerate(xs):
        frame = Frame("cam", index, float(index), MONDAY_0759 + index, image)
        detections = kit.detections([(1, x, 30, x + 9, 49)])
        events += [(float(index), event) for event in engine.evaluate(frame, detections)]
    return events


def test_a_rule_runs_only_in_its_windows(kit: Kit) -> None:
    engine, recorder = kit.engine(SCHEDULED)
    # Inside the pen all along: 07:59:55 to 08:02:09.
    events = [(t, e) for t, e in _feed(kit, engine, [80] * 135) if e.rule_id == "inside"]
    assert [(t, e.type) for t, e in events] == [
        (5.0, "start"),  # 08:00:00, when the window opened (nothing before)
        (65.0, "end"),  # 08:01:00, when it closed
        (125.0, "start"),  # 08:02:00, afresh: a new occurrence
    ]
    assert events[1][1].details == {"reason": "schedule"}
    assert events[0][1].event_id == events[1][1].event_id != events[2][1].event_id
    states = [active for stream, rule, active in recorder.states if rule == "inside"]
    assert states == [False, True, False, True]


def test_a_window_that_opens_on_an_object_inside_raises_no_enter(kit: Kit) -> None:
    engine, _ = kit.engine(SCHEDULED)
    # Inside from before 08:00; out at 08:00:10, back in at 08:00:20; out at 08:01:30 (closed).
    xs = [80] * 15 + [5] * 10 + [80] * 70 + [5] * 5 + [80] * 5
    enters = [t for t, e in _feed(kit, engine, xs) if e.rule_id == "enter" and e.type == "start"]
    assert enters == [25.0]


def test_a_head_count_opening_on_a_hidden_animal_still_counts_it(kit: Kit) -> None:
    """Regression (audit): the rule built afresh at the window's opening had not seen the cow
    the tracker held hidden behind another, and counted one: a false "fewer than 2"."""
    engine, _ = kit.engine(
        """\
        zones:
          - {id: pen, type: polygon, points: [[40, 0], [119, 0], [119, 79], [40, 79]]}
        rules:
          - {id: headcount, type: count, zone: pen, classes: [cow], below: 2, min_duration_s: 2,
             lost_timeout_s: 1, schedule: {timezone: UTC, windows: [{start: "08:00"}]}}
        """
    )
    image = np.zeros((80, 120, 3), dtype=np.uint8)
    events: list[Event] = []
    for i in range(60):  # 07:59:40 to 08:00:39, a frame a second
        objects: list[tuple[Any, ...]] = [(1, 60, 30, 79, 49, "cow")]
        hidden: tuple[int, ...] = ()
        if i < 15 or i >= 40:
            objects.append((2, 85, 30, 99, 49, "cow"))
        else:  # 07:59:55 to 08:00:19: behind cow 1, held hidden by the tracker
            hidden = (2,)
        detections = kit.detections(objects)
        detections.metadata[HIDDEN_TRACK_IDS] = hidden
        frame = Frame("cam", i, float(i), _at(0, 7, 59) + 40 + i, image)
        events += engine.evaluate(frame, detections)
    assert events == []


def test_without_a_time_zone_the_windows_are_in_local_time(monkeypatch: pytest.MonkeyPatch) -> None:
    office = [ScheduleWindow(days=["mon"], start="08:00", end="09:00")]
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        local = Schedule(ScheduleConfig(windows=office))
        assert local.holds(_at(0, 7, 30))  # 08:30 in Berlin
        assert not local.holds(_at(0, 8, 30))  # 09:30 there
    finally:
        monkeypatch.undo()
        time.tzset()

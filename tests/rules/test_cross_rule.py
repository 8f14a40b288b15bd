"""cross: sides as drawn, direction filters, jitter and the hysteresis band, segment ends, the
first side and missed frames."""

from __future__ import annotations

from typing import Any

import pytest

Kit = Any  # the `kit` fixture (tests/rules/conftest.py)

# A horizontal line drawn left to right at row 40: looking from A to B, "left" is above it.
HORIZONTAL = """\
zones:
  - {id: line, type: line, points: [[0, 40], [119, 40]]}
rules:
"""


def walker(bottoms: list[int], x: int = 50, track_id: int = 1) -> list[list[tuple[Any, ...]]]:
    """A 10x20 person whose box bottom (its bottom-centre anchor) is at each row in turn."""
    return [[(track_id, x, bottom - 19, x + 9, bottom)] for bottom in bottoms]


DOWN = [20] * 5 + [60] * 5  # from above the line (left) to below it (right)
UP = list(reversed(DOWN))


@pytest.mark.parametrize(
    ("direction", "path", "fires"),
    [
        ("left_to_right", DOWN, True),
        ("left_to_right", UP, False),
        ("right_to_left", UP, True),
        ("right_to_left", DOWN, False),
        ("any", DOWN, True),
        ("any", UP, True),
    ],
)
def test_direction_as_drawn(kit: Kit, direction: str, path: list[int], fires: bool) -> None:
    engine, _ = kit.engine(
        HORIZONTAL + f"  - {{id: c, type: cross, zone: line, direction: {direction}, "
        "min_duration_s: 0.2}\n"
    )
    events = kit.run(engine, walker(path))
    if not fires:
        assert events == []
        return
    start, end = events
    assert (start.type, end.type) == ("start", "end") and start.event_id == end.event_id
    assert start.frame_index == 7  # the new side from frame 5 (0.5 s), held 0.2 s
    # Seen on every frame: no unseen_since_pts (the details are exactly these).
    assert start.started_pts == pytest.approx(0.5)
    expected = "left_to_right" if path is DOWN else "right_to_left"
    assert start.details == {"direction": expected, "anchor": "bottom_center"}
    assert start.zone_id == "line" and start.track_ids == (1,)


def test_a_line_drawn_upwards_has_left_on_the_screen_left(kit: Kit) -> None:
    engine, _ = kit.engine(
        "zones:\n"
        "  - {id: gate, type: line, points: [[60, 79], [60, 0]]}\n"
        "rules:\n"
        "  - {id: c, type: cross, zone: gate, direction: left_to_right, min_duration_s: 0}\n"
    )
    left_to_right = [[(1, x, 30, x + 9, 49)] for x in (20, 30, 40, 70, 80)]
    events = kit.run(engine, left_to_right)
    assert [(e.type, e.details["direction"]) for e in events] == [
        ("start", "left_to_right"),
        ("end", "left_to_right"),
    ]


def test_jitter_within_the_band_never_fires(kit: Kit) -> None:
    """Regression: an object standing on the line, its box bottom flickering 2 px either side."""
    engine, _ = kit.engine(
        HORIZONTAL + "  - {id: c, type: cross, zone: line, margin_px: 3, min_duration_s: 0}\n"
    )
    assert kit.run(engine, walker([20] * 3 + [38, 42] * 10)) == []


def test_fast_oscillation_shorter_than_min_duration_never_fires(kit: Kit) -> None:
    engine, _ = kit.engine(
        HORIZONTAL + "  - {id: c, type: cross, zone: line, min_duration_s: 0.3}\n"
    )
    assert kit.run(engine, walker([20] * 5 + [30, 50] * 10 + [30] * 5)) == []
    # ...while a real crossing after it does.
    events = kit.run(engine, walker([60] * 5), start=30)
    assert [e.type for e in events] == ["start", "end"]


def test_each_crossing_is_one_occurrence_and_cooldown_drops_quick_returns(kit: Kit) -> None:
    engine, _ = kit.engine(
        HORIZONTAL + "  - {id: c, type: cross, zone: line, min_duration_s: 0, cooldown_s: 1}\n"
    )
    path = [20] * 3 + [60] * 3 + [20] * 3 + [60] * 10 + [20] * 3
    events = kit.run(engine, walker(path))
    starts = [e for e in events if e.type == "start"]
    # Crossings at frames 3, 6, 9 and 19: 6 and 9 fall within the cooldown of frame 3's.
    assert [e.frame_index for e in starts] == [3, 19]
    assert [e.details["direction"] for e in starts] == ["left_to_right", "right_to_left"]


def test_passing_beyond_the_segment_end_is_not_a_crossing(kit: Kit) -> None:
    engine, _ = kit.engine(
        "zones:\n"
        "  - {id: short, type: line, points: [[0, 40], [40, 40]]}\n"
        "rules:\n"
        "  - {id: c, type: cross, zone: short, min_duration_s: 0}\n"
    )
    assert kit.run(engine, walker(DOWN, x=80)) == []
    assert len(kit.run(engine, walker(DOWN, x=10, track_id=2), start=10)) == 2


def test_unconfirmed_tracks_do_not_cross(kit: Kit) -> None:
    engine, _ = kit.engine(HORIZONTAL + "  - {id: c, type: cross, zone: line, min_duration_s: 0}\n")
    assert kit.run(engine, walker(DOWN, track_id=-1)) == []


def test_centroid_anchor_uses_the_mask(kit: Kit) -> None:
    """An L-shaped mask whose box bottom is below the line but most pixels above it."""
    engine, _ = kit.engine(
        HORIZONTAL + "  - {id: c, type: cross, zone: line, anchor: centroid, min_duration_s: 0}\n"
    )
    body = kit.rect(50, 10, 69, 35)  # 20 x 26, above the line
    foot = kit.rect(50, 36, 52, 45)  # a thin foot reaching below it
    below = kit.rect(50, 50, 69, 70)
    frames = [[kit.Obj(1, "person", body | foot)]] * 3 + [[kit.Obj(1, "person", below)]] * 2
    events = kit.run(engine, frames)
    assert [e.frame_index for e in events] == [3, 3]  # the foot alone did not cross


def test_a_track_first_seen_next_to_the_line_starts_there_and_crosses(kit: Kit) -> None:
    """The first side raises nothing and needs no wait: a track born just above the line that
    goes below it and stays there crosses."""
    engine, _ = kit.engine(
        HORIZONTAL + "  - {id: c, type: cross, zone: line, min_duration_s: 0.2}\n"
    )
    events = kit.run(engine, walker([35] + [60] * 4))
    assert [(e.type, e.frame_index) for e in events] == [("start", 3), ("end", 3)]
    assert events[0].started_pts == pytest.approx(0.1)  # dated to its first frame below
    # Seen on one side only, it never crosses.
    assert kit.run(engine, walker([35] * 8, track_id=2), start=10) == []


def test_missed_frames_at_the_line_count_towards_the_time_on_the_new_side(kit: Kit) -> None:
    """Seen above the line on frames 0-4, missed on 5-7, below it on 8-10, then gone: it crossed
    around frame 6, and by frame 10 it has been below for 0.35 s (0.2 s seen)."""
    engine, _ = kit.engine(
        HORIZONTAL + "  - {id: c, type: cross, zone: line, min_duration_s: 0.3}\n"
    )
    timeline = walker([20] * 5) + [[]] * 3 + walker([60] * 3)
    events = kit.run(engine, timeline)
    assert [(e.type, e.frame_index) for e in events] == [("start", 10), ("end", 10)]
    assert events[0].started_pts == pytest.approx(0.8)
    assert events[0].details["unseen_since_pts"] == pytest.approx(0.4)  # frame 4, above


def test_one_frame_on_the_other_side_after_a_long_gap_is_not_a_crossing(kit: Kit) -> None:
    """At most half of min_duration_s is credited for the unseen frames: a single frame below
    the line after a long gap (and a flicker back) does not cross."""
    engine, _ = kit.engine(
        HORIZONTAL + "  - {id: c, type: cross, zone: line, min_duration_s: 0.3}\n"
    )
    timeline = walker([20] * 5) + [[]] * 10 + walker([60, 60, 20, 20, 20])
    assert kit.run(engine, timeline) == []


def test_going_round_the_end_of_the_line_is_not_a_crossing(kit: Kit) -> None:
    """Regression: a track above the line, then past its end, then below it (it never crossed
    the segment) fired left_to_right: past the ends it was on neither side, but the side it had
    been on still counted."""
    engine, _ = kit.engine(
        "zones:\n"
        "  - {id: short, type: line, points: [[0, 40], [60, 40]]}\n"
        "rules:\n"
        "  - {id: c, type: cross, zone: short, min_duration_s: 0}\n"
    )
    # Above the line (x 30), along it past the end (x 90), down, then back below it (x 30).
    frames = [[(1, 25, 1, 34, 20)]] * 3  # bottom-centre (29.5, 20): left, within the segment
    frames += [[(1, 85, 1, 94, 20)]] * 3  # (89.5, 20): beyond the end
    frames += [[(1, 85, 41, 94, 60)]] * 3  # (89.5, 60): beyond the end, below
    frames += [[(1, 25, 41, 34, 60)]] * 3  # (29.5, 60): right, within the segment
    assert kit.run(engine, frames) == []
    # Straight across within the segment still fires.
    assert len(kit.run(engine, walker(DOWN, x=20, track_id=2), start=20)) == 2


def test_a_track_the_tracker_holds_hidden_keeps_its_side(kit: Kit) -> None:
    """Regression: a player hidden behind another object for 1 s (lost_timeout_s 0.5) while
    crossing was forgotten, so their return on the other side was a first side, no crossing."""
    engine, _ = kit.engine(
        HORIZONTAL + "  - {id: c, type: cross, zone: line, min_duration_s: 0.2, "
        "lost_timeout_s: 0.5}\n"
    )
    frames = walker([20] * 5) + [[] for _ in range(10)] + walker([60] * 5)
    events = kit.run(engine, frames, hidden=dict.fromkeys(range(5, 15), (1,)))
    # Confirmed on its second frame beyond: the unseen gap gives half of min_duration_s credit.
    assert [(e.type, e.frame_index) for e in events] == [("start", 16), ("end", 16)]
    assert events[0].details["direction"] == "left_to_right"
    assert events[0].started_pts == pytest.approx(1.5)
    assert events[0].details == {
        "direction": "left_to_right",
        "anchor": "bottom_center",
        "unseen_since_pts": pytest.approx(0.4),
    }


def test_a_crossing_made_unseen_says_so_when_the_track_comes_back_in_the_band(kit: Kit) -> None:
    """Audit: a track back in the band (no side) after a gap lost its unseen_since_pts by the
    time a side confirmed the crossing."""
    engine, _ = kit.engine(
        HORIZONTAL + "  - {id: c, type: cross, zone: line, min_duration_s: 0.2, margin_px: 3}\n"
    )
    frames = walker([20] * 5) + [[] for _ in range(5)] + walker([42, 42] + [60] * 5)
    events = kit.run(engine, frames)
    assert [(e.type, e.frame_index) for e in events] == [("start", 14), ("end", 14)]
    assert events[0].details["unseen_since_pts"] == pytest.approx(0.4)

"""inside / enter / exit / dwell: hysteresis, cooldown, leaving and re-entering, lost tracks."""

from __future__ import annotations

from typing import Any

import pytest

Kit = Any  # the `kit` fixture (tests/rules/conftest.py)

ZONE = """\
zones:
  - {id: yard, type: polygon, points: [[40, 0], [80, 0], [80, 79], [40, 79]]}
rules:
"""

OUT = (0, 30, 9, 49)  # a 10x20 person left of the zone
IN = (50, 30, 59, 49)  # the same person inside it


def person(where: tuple[int, int, int, int], track_id: int = 1) -> list[tuple[int, ...]]:
    return [(track_id, *where)]


def timeline(*spans: tuple[int, tuple[int, int, int, int] | None]) -> list[list[tuple[int, ...]]]:
    """Frames: (count, where) spans; ``None`` = the track is not detected."""
    frames: list[list[tuple[int, ...]]] = []
    for count, where in spans:
        frames += [person(where) if where else [] for _ in range(count)]
    return frames


def test_inside_needs_min_duration_to_start_and_to_end(kit: Kit) -> None:
    engine, _ = kit.engine(
        ZONE + "  - {id: in, type: inside, zone: yard, min_duration_s: 0.3, "
        "update_interval_s: null}\n"
    )
    frames = timeline(
        (5, OUT),  # 0-4
        (2, IN),  # 5-6: in for 0.1 s, too short
        (1, OUT),  # 7
        (5, IN),  # 8-12: pending from 0.8, starts at 1.1
        (2, OUT),  # 13-14: a short exit does not end it
        (5, IN),  # 15-19
        (5, OUT),  # 20-24: out from 2.0, ends at 2.3
    )
    events = kit.run(engine, frames)
    assert kit.kinds(events) == [("in", "start"), ("in", "end")]
    start, end = events
    assert start.frame_index == 11 and start.started_pts == pytest.approx(0.8)
    assert start.started_at == pytest.approx(1000.8)
    assert start.track_ids == (1,) and start.class_names == ("person",)
    assert start.details == {"basis": "mask", "overlap": 1.0}
    assert end.frame_index == 23 and end.event_id == start.event_id and end.seq == 1
    assert end.ended_at == pytest.approx(1001.9)  # the last frame it was inside
    assert end.details["reason"] == "left"


def test_inside_periodic_updates(kit: Kit) -> None:
    engine, _ = kit.engine(
        ZONE + "  - {id: in, type: inside, zone: yard, min_duration_s: 0, update_interval_s: 0.5}\n"
    )
    events = kit.run(engine, timeline((12, IN), (1, OUT)))
    assert [e.type for e in events] == ["start", "update", "update", "end"]
    assert [e.frame_index for e in events] == [0, 5, 10, 12]
    assert [e.seq for e in events] == [0, 1, 2, 3]
    assert len({e.event_id for e in events}) == 1


def test_an_update_of_a_track_not_seen_says_when_its_figures_are_from(kit: Kit) -> None:
    """Regression: the update of a worker hidden behind a machine for 2 s still reported
    ``overlap: 1.0`` as if measured on that frame."""
    rule = (
        "  - {id: in, type: inside, zone: yard, min_duration_s: 0, lost_timeout_s: 0.5, "
        "update_interval_s: 0.5}\n"
    )
    engine, _ = kit.engine(ZONE + rule)
    frames = timeline((5, IN), (10, None), (5, IN))
    events = kit.run(engine, frames, hidden=dict.fromkeys(range(5, 15), (1,)))
    updates = [(e.frame_index, e.details) for e in events if e.type == "update"]
    stale = {"basis": "mask", "overlap": 1.0, "last_seen_pts": pytest.approx(0.4), "hidden": True}
    assert updates[:2] == [(5, stale), (10, stale)]
    assert updates[2] == (15, {"basis": "mask", "overlap": 1.0})  # seen again: this frame's


def test_cooldown_delays_the_next_start(kit: Kit) -> None:
    engine, _ = kit.engine(
        ZONE + "  - {id: in, type: inside, zone: yard, min_duration_s: 0, cooldown_s: 1.0}\n"
    )
    events = kit.run(engine, timeline((3, IN), (2, OUT), (15, IN)))
    assert [(e.type, e.frame_index) for e in events] == [("start", 0), ("end", 3), ("start", 13)]
    # The second occurrence starts when the cooldown is over, dated then.
    assert events[2].started_pts == pytest.approx(1.3)
    assert events[2].event_id != events[0].event_id


def test_leaving_and_reentering_gives_two_occurrences(kit: Kit) -> None:
    engine, _ = kit.engine(ZONE + "  - {id: in, type: inside, zone: yard, min_duration_s: 0}\n")
    events = kit.run(engine, timeline((3, IN), (3, OUT), (3, IN), (1, OUT)))
    assert [(e.type, e.frame_index) for e in events] == [
        ("start", 0),
        ("end", 3),
        ("start", 6),
        ("end", 9),
    ]
    assert events[0].event_id == events[1].event_id != events[2].event_id == events[3].event_id


def test_track_lost_inside_ends_after_lost_timeout(kit: Kit) -> None:
    engine, recorder = kit.engine(
        ZONE + "  - {id: in, type: inside, zone: yard, min_duration_s: 0, lost_timeout_s: 0.5}\n"
    )
    events = kit.run(engine, timeline((5, IN), (10, None)))
    assert [(e.type, e.frame_index) for e in events] == [("start", 0), ("end", 10)]
    end = events[1]
    assert end.details == {"reason": "lost", "last_seen_pts": pytest.approx(0.4)}
    assert end.ended_at == pytest.approx(1000.4)
    assert recorder.states == [("cam", "in", False), ("cam", "in", True), ("cam", "in", False)]


def test_a_track_lost_just_after_leaving_ends_when_it_was_last_inside(kit: Kit) -> None:
    """Regression: a person who walked out and out of view faster than min_duration_s ended
    "inside" at their last sighting, outside the zone."""
    engine, _ = kit.engine(
        ZONE + "  - {id: in, type: inside, zone: yard, min_duration_s: 0.5, lost_timeout_s: 2}\n"
    )
    events = kit.run(engine, timeline((10, IN), (3, OUT), (25, None)))
    assert [(e.type, e.frame_index) for e in events] == [("start", 5), ("end", 33)]
    end = events[1]
    assert end.details == {"reason": "lost", "last_seen_pts": pytest.approx(1.2)}
    assert end.ended_at == pytest.approx(1000.9)  # the last frame inside, not 1001.2


def test_track_back_within_lost_timeout_keeps_its_occurrence(kit: Kit) -> None:
    engine, _ = kit.engine(
        ZONE + "  - {id: in, type: inside, zone: yard, min_duration_s: 0, lost_timeout_s: 0.5}\n"
    )
    events = kit.run(engine, timeline((5, IN), (4, None), (5, IN)))
    assert [e.type for e in events] == ["start"]
    assert engine.rules[0].active


def test_a_track_the_tracker_holds_hidden_keeps_its_open_occurrence(kit: Kit) -> None:
    """Unseen for 1.5 s (lost_timeout_s 0.5) but reported hidden behind another object: the
    occurrence stays open; it ends (reason lost, at the last sighting) once the tracker drops
    the track, and one that comes back continues the same occurrence."""
    rule = "  - {id: in, type: inside, zone: yard, min_duration_s: 0, lost_timeout_s: 0.5}\n"
    engine, _ = kit.engine(ZONE + rule)
    frames = timeline((5, IN), (15, None), (5, IN))
    events = kit.run(engine, frames, hidden=dict.fromkeys(range(5, 20), (1,)))
    assert [e.type for e in events] == ["start"] and engine.rules[0].active
    engine, _ = kit.engine(ZONE + rule)
    frames = timeline((5, IN), (20, None))
    events = kit.run(engine, frames, hidden=dict.fromkeys(range(5, 15), (1,)))
    assert [(e.type, e.frame_index) for e in events] == [("start", 0), ("end", 15)]
    assert events[1].details == {"reason": "lost", "last_seen_pts": pytest.approx(0.4)}


@pytest.mark.parametrize(("kind", "before", "after"), [("enter", OUT, IN), ("exit", IN, OUT)])
def test_a_track_the_tracker_holds_hidden_keeps_its_side(
    kit: Kit, kind: str, before: tuple[int, int, int, int], after: tuple[int, int, int, int]
) -> None:
    """Regression: a worker hidden behind a machine for 1 s (lost_timeout_s 0.5) who comes out
    on the other side of the zone's edge raised nothing: only tracks with an open occurrence
    were held, so an enter/exit track was forgotten and its return was its first state."""
    rule = f"  - {{id: r, type: {kind}, zone: yard, min_duration_s: 0, lost_timeout_s: 0.5}}\n"
    engine, _ = kit.engine(ZONE + rule)
    frames = timeline((5, before), (10, None), (5, after))
    events = kit.run(engine, frames, hidden=dict.fromkeys(range(5, 15), (1,)))
    assert [(e.rule_id, e.type, e.frame_index) for e in events] == [
        ("r", "start", 15),
        ("r", "end", 15),
    ]
    # It happened unseen: after its last frame before the gap (0.4 s), by the first after.
    assert events[0].started_pts == pytest.approx(1.5)
    assert events[0].details["unseen_since_pts"] == pytest.approx(0.4)
    # Not reported hidden (simply undetected), it is forgotten after lost_timeout_s: its
    # return is its first state, no transition.
    engine, _ = kit.engine(ZONE + rule)
    assert kit.run(engine, frames) == []


def test_unconfirmed_tracks_and_other_classes_do_not_count(kit: Kit) -> None:
    engine, _ = kit.engine(
        ZONE + "  - {id: in, type: inside, zone: yard, classes: [person], min_duration_s: 0}\n"
    )
    frames = [[(-1, *IN), (2, *IN, "truck")] for _ in range(5)]
    assert kit.run(engine, frames) == []


@pytest.mark.parametrize(
    ("kind", "frames_in_order", "expected_frame", "expected_started"),
    [
        ("enter", [(8, OUT), (8, IN), (8, OUT)], 10, 0.8),
        ("exit", [(8, OUT), (8, IN), (8, OUT)], 18, 1.6),
    ],
)
def test_enter_and_exit_are_instantaneous_debounced_transitions(
    kit: Kit,
    kind: str,
    frames_in_order: list[tuple[int, tuple[int, int, int, int]]],
    expected_frame: int,
    expected_started: float,
) -> None:
    engine, recorder = kit.engine(
        ZONE + f"  - {{id: r, type: {kind}, zone: yard, min_duration_s: 0.2, state_hold_s: 0}}\n"
    )
    # A flicker into the other state (one frame) must not fire either transition.
    frames = timeline(*frames_in_order)
    frames[5] = person(IN)
    frames[12] = person(OUT)
    events = kit.run(engine, frames)
    assert [(e.type, e.frame_index) for e in events] == [
        ("start", expected_frame),
        ("end", expected_frame),
    ]
    start, end = events
    assert start.event_id == end.event_id and (start.seq, end.seq) == (0, 1)
    assert start.started_pts == pytest.approx(expected_started)
    assert end.ended_at == start.started_at
    # With state_hold_s 0, a pulse: the rule is on, then off, on that frame (after the
    # initial off).
    assert recorder.states == [("cam", "r", False), ("cam", "r", True), ("cam", "r", False)]


def test_a_track_first_seen_inside_has_not_entered(kit: Kit) -> None:
    engine, _ = kit.engine(ZONE + "  - {id: r, type: enter, zone: yard, min_duration_s: 0}\n")
    assert kit.run(engine, timeline((5, IN))) == []
    events = kit.run(engine, timeline((3, OUT), (3, IN)), start=5)
    assert [(e.type, e.frame_index) for e in events] == [("start", 8), ("end", 8)]


@pytest.mark.parametrize(("kind", "first", "then"), [("enter", OUT, IN), ("exit", IN, OUT)])
def test_a_track_seen_on_its_first_side_for_less_than_min_duration_still_transitions(
    kit: Kit, kind: str, first: tuple[int, int, int, int], then: tuple[int, int, int, int]
) -> None:
    """Regression: the first side also had to hold for min_duration_s, so a person seen
    outside for 0.3 s who then walked in and stayed never "entered" (the first debounced state
    was inside)."""
    engine, _ = kit.engine(ZONE + f"  - {{id: r, type: {kind}, zone: yard, min_duration_s: 0.5}}\n")
    events = kit.run(engine, timeline((4, first), (20, then)))
    assert [(e.type, e.frame_index) for e in events] == [("start", 9), ("end", 9)]
    assert events[0].started_pts == pytest.approx(0.4)


def test_exit_is_not_raised_for_a_track_lost_inside(kit: Kit) -> None:
    engine, _ = kit.engine(
        ZONE + "  - {id: r, type: exit, zone: yard, min_duration_s: 0, lost_timeout_s: 0.2}\n"
    )
    assert kit.run(engine, timeline((3, OUT), (3, IN), (10, None))) == []


def test_cooldown_drops_transitions(kit: Kit) -> None:
    engine, _ = kit.engine(
        ZONE + "  - {id: r, type: enter, zone: yard, min_duration_s: 0, cooldown_s: 1.0}\n"
    )
    events = kit.run(engine, timeline((2, OUT), (2, IN), (2, OUT), (2, IN), (8, OUT), (2, IN)))
    # Entries at frames 2, 6 and 16: the one at 6 falls within 1 s of the first and is dropped.
    assert [e.frame_index for e in events if e.type == "start"] == [2, 16]


def test_dwell_starts_after_dwell_s_and_ends_on_leaving(kit: Kit) -> None:
    engine, _ = kit.engine(
        ZONE + "  - {id: d, type: dwell, zone: yard, dwell_s: 1.0, min_duration_s: 0}\n"
    )
    events = kit.run(engine, timeline((3, OUT), (17, IN), (5, OUT), (12, IN)))
    assert [(e.type, e.frame_index) for e in events] == [("start", 13), ("end", 20), ("start", 35)]
    start, end = events[:2]
    assert start.details["dwell_s"] == pytest.approx(1.0)
    assert start.details["entered_pts"] == pytest.approx(0.3)
    assert end.details == {"reason": "left", "dwell_s": pytest.approx(1.6)}


@pytest.mark.parametrize(
    ("basis", "overlap", "arm_fires", "machine_fires"),
    [
        ("mask", "min_overlap: 0.1", True, False),
        ("bottom_center", None, False, True),
        ("center", None, False, True),
        ("any_pixel", None, True, True),
    ],
)
def test_mask_basis_against_anchor_bases(
    kit: Kit, basis: str, overlap: str | None, arm_fires: bool, machine_fires: bool
) -> None:
    """An arm reaching into the zone from a body outside it: the box's bottom-centre and
    centre stay outside, 11 % of the pixels are in. A long machine whose box centre and
    bottom-centre are in the zone but only 7 % of its pixels (a thin boom along the ground)."""
    extra = f", {overlap}" if overlap else ""
    engine, _ = kit.engine(
        "zones:\n"
        "  - {id: z, type: polygon, points: [[55, 0], [119, 0], [119, 79], [55, 79]]}\n"
        "rules:\n"
        f"  - {{id: r, type: inside, zone: z, basis: {basis}, min_duration_s: 0{extra}}}\n"
    )
    body = kit.rect(30, 20, 49, 79)  # 20 x 60 = 1200 px, outside
    arm = kit.rect(50, 30, 69, 39)  # 20 x 10 = 200 px, 15 x 10 = 150 px inside
    worker = kit.Obj(1, "person", body | arm)
    hull = kit.rect(0, 60, 40, 79)  # the machine's body, far left and low
    boom = kit.rect(41, 70, 119, 70)  # a thin boom along the bottom, 65 px in the zone
    machine = kit.Obj(2, "excavator", hull | boom)
    overlap_worker = 150 / (1200 + 200)
    overlap_machine = 65 / (41 * 20 + 79)
    assert overlap_worker >= 0.1 > overlap_machine
    events = kit.run(engine, [[worker, machine]])
    fired = {e.track_ids[0] for e in events}
    assert (1 in fired, 2 in fired) == (arm_fires, machine_fires)


def test_an_instantaneous_rule_state_is_held_on_and_extended(kit: Kit) -> None:
    engine, recorder = kit.engine(
        ZONE + "  - {id: r, type: enter, zone: yard, min_duration_s: 0, state_hold_s: 0.5}\n"
    )
    two = [(1, *OUT), (2, *OUT)]
    frames = [two] * 3  # 0-2: both outside
    frames += [[(1, *IN), (2, *OUT)]] * 3  # 3: track 1 enters
    frames += [[(1, *IN), (2, *IN)]] * 6  # 6: track 2 enters, within the hold
    frames += [[(1, *IN), (2, *IN)]] * 6  # 12 ... 17
    events = kit.run(engine, frames)
    assert [(e.type, e.frame_index) for e in events] == [
        ("start", 3),
        ("end", 3),
        ("start", 6),
        ("end", 6),
    ]
    # On at frame 3, still on at 6 (a new enter restarts the hold), off at 11: the first
    # frame 0.5 s after the second enter.
    assert recorder.states == [("cam", "r", False), ("cam", "r", True), ("cam", "r", False)]
    engine, recorder = kit.engine(
        ZONE + "  - {id: r, type: enter, zone: yard, min_duration_s: 0, state_hold_s: 0.5}\n"
    )
    assert recorder.states == [("cam", "r", False)]  # before any frame
    reported_at = []
    for index, objects in enumerate(frames):
        before = len(recorder.states)
        kit.run(engine, [objects], start=index)
        reported_at += [index] * (len(recorder.states) - before)
    assert reported_at == [3, 11]


def test_a_rule_held_on_when_the_stream_ends_reports_off(kit: Kit) -> None:
    engine, recorder = kit.engine(
        ZONE + "  - {id: r, type: exit, zone: yard, min_duration_s: 0, state_hold_s: 5}\n"
    )
    kit.run(engine, timeline((3, IN), (3, OUT)))
    assert recorder.states == [("cam", "r", False), ("cam", "r", True)]
    engine.close()
    assert recorder.states[-1] == ("cam", "r", False)


PARTLY_IN = (35, 30, 44, 49)  # 5 of its 10 columns in the zone: overlap 0.5
MOSTLY_IN = (38, 30, 47, 49)  # 8 of 10: overlap 0.8


def _dense(detections: Any) -> Any:
    """The same detections with a dense (N, H, W) mask instead of the CompactMask."""
    if len(detections) and detections.mask is not None:
        detections.mask = detections.mask.to_dense()
    return detections


@pytest.mark.parametrize("masks", ["compact", "dense"])
@pytest.mark.parametrize(
    ("kind", "first", "then"), [("enter", OUT, MOSTLY_IN), ("exit", MOSTLY_IN, PARTLY_IN)]
)
def test_transitions_measured_on_part_of_a_mask_are_raised(
    kit: Kit,
    monkeypatch: pytest.MonkeyPatch,
    masks: str,
    kind: str,
    first: tuple[int, int, int, int],
    then: tuple[int, int, int, int],
) -> None:
    """Regression: a partial overlap was a numpy float, so the debounced state became a numpy
    bool, and ``state is not target`` dropped every enter / exit confirmed on a frame where the
    object straddled the zone's edge (a person walking in or out, seen partly inside)."""
    if masks == "dense":
        detections = kit.detections
        monkeypatch.setattr(kit, "detections", staticmethod(lambda s: _dense(detections(s))))
    engine, _ = kit.engine(
        ZONE + f"  - {{id: r, type: {kind}, zone: yard, min_overlap: 0.6, min_duration_s: 0.2}}\n"
    )
    events = kit.run(engine, timeline((4, first), (6, then)))
    assert [(e.type, e.frame_index) for e in events] == [("start", 6), ("end", 6)]
    assert events[0].started_pts == pytest.approx(0.4)
    assert events[0].details["overlap"] == pytest.approx(0.8 if kind == "enter" else 0.5)


def test_a_run_mixing_whole_and_partial_overlaps_is_not_restarted(kit: Kit) -> None:
    """Regression: a frame wholly inside (a Python bool) and one partly inside (a numpy bool)
    were different values to the debounce's ``is`` test, which restarted its wait on each."""
    engine, _ = kit.engine(
        ZONE + "  - {id: r, type: inside, zone: yard, min_overlap: 0.6, min_duration_s: 0.3}\n"
    )
    frames = timeline((3, OUT), *[(1, IN if k % 2 else MOSTLY_IN) for k in range(6)])
    events = kit.run(engine, frames)
    assert [(e.type, e.frame_index) for e in events] == [("start", 6)]
    assert events[0].started_pts == pytest.approx(0.3)


def test_a_track_back_after_a_stream_stall_longer_than_lost_timeout_starts_afresh(kit: Kit) -> None:
    """Regression (differential audit): with no frame between a track's last sighting and its
    return (the stream stalled 9.8 s), nothing noticed the loss, so the track kept its
    occurrence across the stall, and a track outside before it raised 'enter' on its first
    frame after it."""
    engine, _ = kit.engine(
        ZONE + "  - {id: in, type: inside, zone: yard, min_duration_s: 0, lost_timeout_s: 2}\n"
        "  - {id: entered, type: enter, zone: yard, min_duration_s: 0, lost_timeout_s: 2}\n"
    )
    events = kit.run(engine, [person(IN), person(IN), person(OUT, 2), person(OUT, 2)])
    # The stall: the next frames come 9.8 s later, both tracks seen again, both inside.
    events += kit.run(engine, [person(IN) + person(IN, 2)] * 2, start=100)
    ins = [(e.type, e.track_ids, e.frame_index) for e in events if e.rule_id == "in"]
    assert ins == [
        ("start", (1,), 0),
        ("end", (1,), 100),  # lost: longer than lost_timeout_s unseen
        ("start", (1,), 100),  # afresh
        ("start", (2,), 100),
    ]
    lost = events[[e.rule_id for e in events].index("in", 1)]
    assert lost.details == {"reason": "lost", "last_seen_pts": pytest.approx(0.1)}
    # Where a track is first seen after a loss is no transition.
    assert [e for e in events if e.rule_id == "entered"] == []


def test_a_start_held_back_by_cooldown_does_not_come_while_the_track_is_outside(
    kit: Kit,
) -> None:
    """Regression (differential audit): the debounced state is still 'inside' during the
    min_duration_s wait on the way out; a start the cooldown had held back came then, dated to
    that frame, and its end was dated earlier (to the last frame inside): duration < 0."""
    engine, _ = kit.engine(
        ZONE + "  - {id: in, type: inside, zone: yard, min_duration_s: 0.5, cooldown_s: 1}\n"
    )
    # In 0-0.9 (start at 0.5), out 1.0-1.5 (end at 1.5, cooldown until 2.5), in 1.6-2.1, out
    # from 2.2: the cooldown ends at 2.5 while the track is outside, waiting to be out.
    frames = timeline((10, IN), (6, OUT), (6, IN), (10, OUT))
    events = kit.run(engine, frames)
    assert [(e.type, e.frame_index) for e in events] == [("start", 5), ("end", 15)]
    assert all(e.ended_at is None or e.ended_at >= e.started_at for e in events)


def test_dwell_is_not_raised_for_a_visit_that_is_already_over(kit: Kit) -> None:
    """Regression (differential audit): dwell_s was reached during the min_duration_s wait on
    the way out, so a visit of 0.8 s raised a dwell of 1 s, ended before it started."""
    engine, _ = kit.engine(
        ZONE + "  - {id: stay, type: dwell, zone: yard, dwell_s: 1, min_duration_s: 0.5}\n"
    )
    events = kit.run(engine, timeline((9, IN), (11, OUT)))
    assert events == []
    # Back inside before the wait is over: the visit goes on, and the dwell comes then.
    engine, _ = kit.engine(
        ZONE + "  - {id: stay, type: dwell, zone: yard, dwell_s: 1, min_duration_s: 0.5}\n"
    )
    events = kit.run(engine, timeline((9, IN), (3, OUT), (5, IN), (10, OUT)))
    assert [(e.type, e.frame_index) for e in events] == [("start", 12), ("end", 22)]
    start, end = events
    assert start.details["dwell_s"] == pytest.approx(1.2)
    assert end.ended_at >= start.started_at


def test_a_hidden_track_back_on_the_first_frame_past_lost_timeout_is_kept(kit: Kit) -> None:
    """Audit: a track reported hidden on every frame of its gap that came back on the first
    frame past lost_timeout_s (when the tracker, having found it, no longer lists it hidden)
    was lost all the same: its inside stay split in two, its enter was never raised."""
    rules = (
        "  - {id: in, type: inside, zone: yard, min_duration_s: 0, lost_timeout_s: 0.5}\n"
        "  - {id: enter, type: enter, zone: yard, min_duration_s: 0, lost_timeout_s: 0.5,"
        " state_hold_s: 0}\n"
    )
    engine, _ = kit.engine(ZONE + rules)
    # In at frame 4 (0.4 s), hidden on frames 5-9, back at frame 10 (1.0 s): 0.6 s unseen.
    frames = timeline((4, OUT), (1, IN), (5, None), (5, IN))
    events = kit.run(engine, frames, hidden=dict.fromkeys(range(5, 10), (1,)))
    assert [(e.rule_id, e.type, e.frame_index) for e in events] == [
        ("in", "start", 4),
        ("enter", "start", 4),
        ("enter", "end", 4),
    ]


def test_a_change_waiting_before_a_long_hold_waits_again_after_it(kit: Kit) -> None:
    """Audit: a track seen inside on one frame, held hidden 10 s, then back inside, entered at
    once with started_pts 10 s before the message (two frames of evidence for min_duration_s,
    and a start beyond what the clips' pre-event ring keeps). Back from a hold longer than
    lost_timeout_s, it waits min_duration_s again, and the entry says it happened unseen."""
    engine, _ = kit.engine(
        ZONE + "  - {id: r, type: enter, zone: yard, min_duration_s: 0.3, lost_timeout_s: 0.5,"
        " state_hold_s: 0}\n"
    )
    frames = timeline((5, OUT), (1, IN), (100, None), (5, IN))
    events = kit.run(engine, frames, hidden=dict.fromkeys(range(6, 106), (1,)))
    assert [(e.type, e.frame_index) for e in events] == [("start", 109), ("end", 109)]
    assert events[0].started_pts == pytest.approx(10.6)
    assert events[0].details["unseen_since_pts"] == pytest.approx(0.5)


def test_a_track_the_tracker_retracts_is_forgotten_at_once(kit: Kit) -> None:
    """A track shown at once on a fresh start and withdrawn by the tracker on the next frame
    (``RETRACTED_TRACK_IDS``: a flicker) ends its occurrence there, as lost, instead of being
    kept for ``lost_timeout_s`` (an unseen track may come back; a withdrawn one does not)."""
    from streamseg.types import RETRACTED_TRACK_IDS

    engine, _ = kit.engine(
        ZONE + "  - {id: in, type: inside, zone: yard, min_duration_s: 0, lost_timeout_s: 2}\n"
    )
    events = engine.evaluate(kit.frame(0, 0.0), kit.detections(person(IN, 2)))
    withdrawn = kit.detections([])
    withdrawn.metadata[RETRACTED_TRACK_IDS] = (2,)
    events += engine.evaluate(kit.frame(1, 0.1), withdrawn)
    assert [(e.type, e.frame_index, e.details.get("reason")) for e in events] == [
        ("start", 0, None),
        ("end", 1, "lost"),
    ]

"""count: above/below for N seconds, updates when the tracks inside change, lost tolerance."""

from __future__ import annotations

from typing import Any

import pytest

Kit = Any  # the `kit` fixture (tests/rules/conftest.py)

PEN = """\
zones:
  - {id: pen, type: polygon, points: [[40, 0], [119, 0], [119, 79], [40, 79]]}
rules:
"""


def cows(inside: int, outside: int = 0, first_id: int = 1) -> list[tuple[Any, ...]]:
    """``inside`` 6x6 cows in the pen and ``outside`` cows left of it, ids from first_id."""
    herd: list[tuple[Any, ...]] = []
    for n in range(inside):
        x, y = 45 + (n % 8) * 9, 5 + (n // 8) * 9
        herd.append((first_id + n, x, y, x + 5, y + 5, "cow"))
    for n in range(outside):
        y = 5 + n * 9
        herd.append((first_id + inside + n, 5, y, 10, y + 5, "cow"))
    return herd


OUTAGE_TRACKER = "tracker: {min_confirm_s: 0.3, lost_buffer_s: 2.0}\n"
"""The tracker of the outage tests: a gap over 2 s drops every track, new ids take 0.3 s."""


def back_after_outage(inside: int, first_id: int, confirmed: int) -> list[list[tuple[Any, ...]]]:
    """A camera's return after an outage (10 frames a second, :data:`OUTAGE_TRACKER`): the
    ``inside`` cows unconfirmed for 3 frames, then ``confirmed`` frames under new ids."""
    unconfirmed = [(-1, *cow[1:]) for cow in cows(inside)]
    return [unconfirmed] * 3 + [cows(inside, first_id=first_id)] * confirmed


def test_above_for_min_duration(kit: Kit) -> None:
    engine, recorder = kit.engine(
        PEN + "  - {id: crowd, type: count, zone: pen, classes: [cow], above: 2, "
        "min_duration_s: 0.3, update_interval_s: null}\n"
    )
    frames = (
        [cows(2, 1)] * 5  # 0-4: two inside, not above 2
        + [cows(3)] * 2  # 5-6: three, but only 0.1 s
        + [cows(2, 1)]  # 7
        + [cows(3)] * 12  # 8-19: three from 0.8: starts at 1.1
        + [cows(4)] * 5  # 20-24: a fourth one comes in: update, 1 s after the start
        + [cows(1, 3)] * 6  # 25-30: one left inside from 2.5: ends at 2.8
    )
    events = kit.run(engine, frames)
    assert [(e.type, e.frame_index) for e in events] == [
        ("start", 11),
        ("update", 21),
        ("end", 28),
    ]
    start, update, end = events
    assert start.started_pts == pytest.approx(0.8) and start.zone_id == "pen"
    assert start.track_ids == (1, 2, 3) and start.class_names == ("cow", "cow", "cow")
    assert start.details == {"count": 3, "above": 2}
    assert update.track_ids == (1, 2, 3, 4) and update.details["count"] == 4
    assert end.details == {"count": 1, "above": 2, "reason": "cleared"}
    assert end.ended_at == pytest.approx(1002.4)
    assert ("cam", "crowd", True) in recorder.states
    assert recorder.states[-1] == ("cam", "crowd", False)


def test_below_fires_when_animals_are_missing(kit: Kit) -> None:
    engine, _ = kit.engine(
        PEN + "  - {id: missing, type: count, zone: pen, classes: [cow], below: 3, "
        "min_duration_s: 0.5, lost_timeout_s: 0.2}\n"
    )
    frames = [cows(3)] * 5 + [cows(2, 1)] * 10
    events = kit.run(engine, frames)
    assert [(e.type, e.frame_index) for e in events] == [("start", 10)]
    assert events[0].details == {"count": 2, "below": 3}
    assert events[0].started_pts == pytest.approx(0.5)


def test_below_waits_for_the_tracker_to_confirm_what_is_in_view(kit: Kit) -> None:
    """Regression: with ``tracker.min_confirm_s`` 0.5, "fewer than 3" started and ended on
    every stream start, with the 3 animals there all along (no ids yet, so none counted)."""
    engine, recorder = kit.engine(
        "tracker: {min_confirm_s: 0.5}\n"
        + PEN
        + "  - {id: missing, type: count, zone: pen, classes: [cow], below: 3, "
        "min_duration_s: 0.3, lost_timeout_s: 0.2}\n"
    )
    unconfirmed = [(-1, *cow[1:]) for cow in cows(3)]
    assert kit.run(engine, [unconfirmed] * 5 + [cows(3)] * 10) == []
    assert not [s for s in recorder.states if s[2]]
    # After the warm-up an absence counts again: cow 3, last seen at 1.4 s, is gone from 1.7 s
    # (lost_timeout_s), and the occurrence starts 0.3 s later.
    events = kit.run(engine, [cows(2)] * 10, start=15)
    assert [(e.type, e.frame_index) for e in events] == [("start", 20)]


def test_below_waits_again_when_the_camera_comes_back_after_an_outage(kit: Kit) -> None:
    """Regression: after a gap longer than the tracker's ``lost_buffer_s`` (a camera outage)
    the tracker starts afresh, and "fewer than 3" fired (with ``min_duration_s: 0``) while it
    gave the animals new ids; the retained zone count dipped to 0 and back."""
    engine, recorder = kit.engine(
        OUTAGE_TRACKER
        + PEN
        + "  - {id: missing, type: count, zone: pen, classes: [cow], below: 3, "
        "min_duration_s: 0, lost_timeout_s: 0.2}\n"
    )
    assert kit.run(engine, [cows(3)] * 10) == []  # 0.0-0.9 s
    # Back at 10 s: new tracks, unconfirmed for 0.3 s, then new ids.
    back = back_after_outage(3, first_id=4, confirmed=5)
    assert kit.run(engine, back, start=100) == []
    assert [c[3] for c in recorder.counts if c[1:3] == ("pen", "cow")] == [0, 3]
    # A real absence after the warm-up still counts: cow 6, last seen at 10.7 s, is gone past
    # lost_timeout_s at 11.0 s.
    events = kit.run(engine, [cows(2, first_id=4)] * 5, start=108)
    assert [(e.type, e.frame_index) for e in events] == [("start", 110)]


def test_a_gap_shorter_than_the_lost_buffer_does_not_restart_the_warm_up(kit: Kit) -> None:
    """The tracker keeps its tracks through a gap of up to ``lost_buffer_s``: an absence
    right after it counts at once."""
    engine, _ = kit.engine(
        OUTAGE_TRACKER
        + PEN
        + "  - {id: missing, type: count, zone: pen, classes: [cow], below: 3, "
        "min_duration_s: 0, lost_timeout_s: 0.2}\n"
    )
    assert kit.run(engine, [cows(3)] * 10) == []
    events = kit.run(engine, [cows(2)] * 3, start=25)  # 1.6 s later
    assert [(e.type, e.frame_index) for e in events] == [("start", 25)]


def test_an_open_below_occurrence_stands_through_an_outage(kit: Kit) -> None:
    """An occurrence open before a camera outage neither ends nor reports the tracker's empty
    warm-up (an ``update``, track-set or periodic, with no tracks inside) when the camera comes
    back."""
    engine, _ = kit.engine(
        OUTAGE_TRACKER
        + PEN
        + "  - {id: missing, type: count, zone: pen, classes: [cow], below: 3, "
        "min_duration_s: 0, lost_timeout_s: 0.2, update_interval_s: 0.1}\n"
    )
    events = kit.run(engine, [cows(2)] * 10)
    assert (events[0].type, events[0].frame_index) == ("start", 3)
    back = back_after_outage(2, first_id=4, confirmed=12)
    events = kit.run(engine, back, start=100)
    first = events[0]
    assert (first.type, first.frame_index, first.track_ids) == ("update", 103, (4, 5))
    assert {e.details["count"] for e in events} == {2}
    events = kit.run(engine, [cows(3, first_id=4)] * 2, start=115)
    assert [(e.type, e.details["count"]) for e in events] == [("end", 3)]


def test_a_change_waiting_before_an_outage_waits_afresh_after_it(kit: Kit) -> None:
    """Regression: a dip seen for 0.2 s before an outage, with ``min_duration_s`` 1, counted
    the outage and the warm-up towards its wait and started on the first frame judged, dated
    before the outage."""
    engine, _ = kit.engine(
        OUTAGE_TRACKER
        + PEN
        + "  - {id: missing, type: count, zone: pen, classes: [cow], below: 3, "
        "min_duration_s: 1.0, lost_timeout_s: 0.1}\n"
    )
    assert kit.run(engine, [cows(3)] * 7 + [cows(2)] * 3) == []  # 2 inside from 0.8 s
    back = back_after_outage(2, first_id=4, confirmed=12)
    events = kit.run(engine, back, start=100)
    assert [(e.type, e.frame_index) for e in events] == [("start", 113)]
    assert events[0].started_pts == pytest.approx(10.3)


def test_an_open_above_occurrence_stands_through_an_outage(kit: Kit) -> None:
    """Regression: a "more than 2" open before an outage ended (count 0) on the first frame
    after it and started again under a new event id once the tracker had confirmed the same
    animals, while the zone count stood at 4."""
    engine, recorder = kit.engine(
        OUTAGE_TRACKER + PEN + "  - {id: crowd, type: count, zone: pen, classes: [cow], above: 2, "
        "min_duration_s: 0, lost_timeout_s: 0.1, update_interval_s: null}\n"
    )
    events = kit.run(engine, [cows(4)] * 5)
    assert [e.type for e in events] == ["start"]
    back = back_after_outage(4, first_id=5, confirmed=5)
    events = kit.run(engine, back, start=100)
    assert [(e.type, e.track_ids) for e in events] == [("update", (5, 6, 7, 8))]
    assert [c[3] for c in recorder.counts if c[1:3] == ("pen", "cow")] == [0, 4]
    # A crowd seen from the start is judged once the warm-up is over (0.5 s: ids given at
    # once on the first frame may belong to flickers the tracker withdraws).
    engine, _ = kit.engine(
        "tracker: {min_confirm_s: 0.5}\n"
        + PEN
        + "  - {id: crowd, type: count, zone: pen, classes: [cow], above: 2, "
        "min_duration_s: 0}\n"
    )
    assert [(e.type, e.frame_index) for e in kit.run(engine, [cows(4)] * 7)] == [("start", 5)]


def test_below_waits_for_weak_detections_that_must_stay_put(kit: Kit) -> None:
    """Regression: with ``persist_threshold`` the tracker starts a track for a weakly
    detected animal only once it stayed put for ``persist_s``, and "fewer than 3" fired on
    every stream start before then."""
    engine, _ = kit.engine(
        "tracker: {min_confirm_s: 0.1, persist_threshold: 0.2, persist_s: 0.6}\n"
        + PEN
        + "  - {id: missing, type: count, zone: pen, classes: [cow], below: 3, "
        "min_duration_s: 0, lost_timeout_s: 0.2}\n"
    )
    weak = [(-1, *cow[1:]) for cow in cows(1, first_id=3)]
    assert kit.run(engine, [cows(2) + weak] * 6 + [cows(3)] * 5) == []


def test_the_warm_up_is_what_the_tracker_needs_to_give_ids(kit: Kit) -> None:
    from streamseg.config import TrackerConfig
    from streamseg.rules import RuleEngine

    assert TrackerConfig().acquire_s == pytest.approx(0.1)
    assert TrackerConfig(persist_threshold=0.2, persist_s=0.5).acquire_s == pytest.approx(0.5)
    assert TrackerConfig(persist_threshold=0.2, persist_s=0.05).acquire_s == pytest.approx(0.1)
    assert TrackerConfig(persist_s=0.5).acquire_s == pytest.approx(0.1)  # persistence off
    rule = "  - {id: missing, type: count, zone: pen, classes: [cow], below: 3}\n"
    engine = RuleEngine.from_config(kit.config("tracker: {lost_buffer_s: 4}\n" + PEN + rule), "cam")
    assert (engine.warmup_s, engine.restart_gap_s) == (pytest.approx(0.1), 4.0)


def test_a_briefly_hidden_animal_still_counts(kit: Kit) -> None:
    """Regression: an occlusion of a few frames made a "head count below" rule fire."""
    engine, _ = kit.engine(
        PEN + "  - {id: missing, type: count, zone: pen, classes: [cow], below: 3, "
        "min_duration_s: 0.3, lost_timeout_s: 1.0}\n"
    )
    hidden = [c for c in cows(3) if c[0] != 2]  # cow 2 not detected
    frames = [cows(3)] * 3 + [hidden] * 8 + [cows(3)] * 3
    assert kit.run(engine, frames) == []
    # Gone for longer than lost_timeout_s: it no longer counts.
    events = kit.run(engine, [hidden] * 20, start=14)
    assert [e.type for e in events] == ["start"]
    assert events[0].track_ids == (1, 3)


def test_an_animal_the_tracker_holds_hidden_keeps_counting(kit: Kit) -> None:
    """Unseen for 2 s (lost_timeout_s 1) while the tracker reports it hidden behind another
    object: it still counts; once the tracker drops it, it stops counting."""
    engine, _ = kit.engine(
        PEN + "  - {id: missing, type: count, zone: pen, classes: [cow], below: 3, "
        "min_duration_s: 0.3, lost_timeout_s: 1.0}\n"
    )
    unseen = [c for c in cows(3) if c[0] != 2]
    frames = [cows(3)] * 3 + [unseen] * 40
    events = kit.run(engine, frames, hidden=dict.fromkeys(range(23), (2,)))
    # Hidden until frame 22; at frame 23 it has been unseen 2 s > lost_timeout_s: it stops
    # counting, and "below 3" starts 0.3 s later.
    assert [(e.type, e.frame_index) for e in events] == [("start", 26)]


def test_other_classes_and_unconfirmed_tracks_are_not_counted(kit: Kit) -> None:
    engine, _ = kit.engine(
        PEN + "  - {id: crowd, type: count, zone: pen, classes: [cow], above: 1, "
        "min_duration_s: 0}\n"
    )
    frame = [(1, 50, 10, 55, 15, "cow"), (2, 60, 10, 65, 15, "sheep"), (-1, 70, 10, 75, 15, "cow")]
    assert kit.run(engine, [frame] * 3) == []


def test_a_start_held_back_by_cooldown_does_not_come_once_the_count_is_back(kit: Kit) -> None:
    """Regression (differential audit): a start the cooldown held back came on a frame where
    the count no longer held (the debounced state still did, waiting min_duration_s), and its
    end was dated before it."""
    engine, _ = kit.engine(
        PEN + "  - {id: crowd, type: count, zone: pen, classes: [cow], above: 2, "
        "min_duration_s: 0.5, cooldown_s: 1}\n"
    )
    # Three inside 0-0.9 (judged after the stream's 0.1 s warm-up: start at 0.6), two 1.0-1.5
    # (end at 1.5, cooldown until 2.5), three 1.6-2.1, two from 2.2: the cooldown ends while
    # the count is back at two.
    frames = [cows(3)] * 10 + [cows(2, 1)] * 6 + [cows(3)] * 6 + [cows(2, 1)] * 10
    events = kit.run(engine, frames)
    assert [(e.type, e.frame_index) for e in events] == [("start", 6), ("end", 15)]
    assert all(e.ended_at is None or e.ended_at >= e.started_at for e in events)


def test_the_real_tracker_at_the_start_and_after_an_outage_raises_no_count_below(kit: Kit) -> None:
    """End to end with :class:`MaskTracker`: three cows the model scores weakly (0.4, so each
    starts a track only once it stayed put for ``persist_s``), in view from the start, then
    10 s without frames (the tracker drops every track and starts them again under new ids):
    no "fewer than 3" at the start nor on the camera's return."""
    import numpy as np
    import supervision as sv

    from streamseg.rules import RuleEngine
    from streamseg.track import MaskTracker

    config: Any = kit.config(
        "tracker: {persist_threshold: 0.2, persist_s: 0.3}\n"
        + PEN
        + "  - {id: missing, type: count, zone: pen, classes: [cow], below: 3, "
        "min_duration_s: 0}\n"
    )
    engine = RuleEngine.from_config(config, "cam")
    tracker = MaskTracker(config.tracker)
    herd = kit.detections(cows(3))
    untracked = sv.Detections(
        xyxy=herd.xyxy, mask=herd.mask, confidence=np.full(3, 0.4), data=dict(herd.data)
    )
    events, ids = [], []
    for index in [*range(10), *range(150, 160)]:  # 15 fps: 0-0.6 s, then 10-10.6 s
        pts = index / 15
        tracked = tracker.update(untracked, timestamp=pts)
        assert tracked.tracker_id is not None
        ids.append(sorted(tracked.tracker_id.tolist()))
        events += engine.evaluate(kit.frame(index, pts), tracked)
    assert ids[0] == [-1, -1, -1] and ids[9] == [1, 2, 3]  # ids from persist_s on
    assert ids[10] == [-1, -1, -1] and ids[-1] == [4, 5, 6]  # the tracker started afresh
    assert events == []


def test_a_flicker_shown_at_once_on_the_first_frame_is_not_counted(kit: Kit) -> None:
    """Regression (audit): a duplicate mask of one cow on the stream's first frame got an id at
    once; the tracker withdrew it on the next frame, but the count kept it for lost_timeout_s
    and "more than 1" fired. The tracker reports it retracted and the rules forget it."""
    import numpy as np
    import supervision as sv

    from streamseg.rules import RuleEngine
    from streamseg.track import MaskTracker
    from streamseg.types import RETRACTED_TRACK_IDS

    config: Any = kit.config(
        PEN + "  - {id: crowd, type: count, zone: pen, classes: [cow], above: 1, "
        "min_duration_s: 0.2}\n"
    )
    engine = RuleEngine.from_config(config, "cam")
    tracker = MaskTracker(config.tracker)
    one = kit.detections([(1, 50, 10, 60, 30, "cow")])
    two = kit.detections([(1, 50, 10, 60, 30, "cow"), (2, 51, 11, 61, 31, "cow")])
    events, retracted = [], []
    for index in range(15):
        shown = two if index == 0 else one
        untracked = sv.Detections(
            xyxy=shown.xyxy,
            mask=shown.mask,
            confidence=np.full(len(shown), 0.9),
            data=dict(shown.data),
        )
        tracked = tracker.update(untracked, timestamp=index / 15)
        retracted.append(tracked.metadata[RETRACTED_TRACK_IDS])
        events += engine.evaluate(kit.frame(index, index / 15), tracked)
    assert retracted[:3] == [(), (2,), ()]
    assert events == []

"""Contract of MaskTracker (issue #4): identities through occlusion, crossings, dropouts, frame
rates, bad input; ids, classes, confirmation and isolation. Scenes come from ``conftest.py``."""

from __future__ import annotations

import copy
import gc
import logging
import weakref
from types import SimpleNamespace

import numpy as np
import pytest
import supervision as sv

from streamseg.config import TrackerConfig
from streamseg.track import MaskTracker


def _tracker(**options: object) -> MaskTracker:
    return MaskTracker(TrackerConfig(**options))  # type: ignore[arg-type]


# ------------------------------------------------------------------------- occlusion, dropout


@pytest.mark.parametrize(("lost_buffer_s", "keeps"), [(2.0, True), (0.3, False)])
def test_short_full_occlusion_keeps_identity(
    scene_kit: SimpleNamespace, lost_buffer_s: float, keeps: bool
) -> None:
    """An object hidden for 0.5 s (less than the buffer) comes back with its id; with a buffer
    shorter than the occlusion the same scene gives a new id (the test can fail)."""
    walker = scene_kit.SceneObject(
        1, "box", (20, 40), scene_kit.linear(40, 90, 60), hidden=((1.0, 1.5),)
    )
    run = scene_kit.run(_tracker(lost_buffer_s=lost_buffer_s), [walker], scene_kit.times(3, 15))
    assert (len(run.distinct_ids(1)) == 1) is keeps
    assert run.ids_of(1)[-1] >= 1


def test_occlusion_behind_another_object_keeps_both(scene_kit: SimpleNamespace) -> None:
    """A walker passes behind a parked truck for ~0.7 s; both keep their ids."""
    truck = scene_kit.SceneObject(2, "box", (60, 70), scene_kit.linear(170, 90, 0), class_id=2)
    walker = scene_kit.SceneObject(1, "box", (16, 36), scene_kit.linear(60, 95, 80))
    run = scene_kit.run(_tracker(), [walker, truck], scene_kit.times(3, 15))
    assert len(run.distinct_ids(1)) == 1 and len(run.distinct_ids(2)) == 1
    hidden = [f.t for f in run.frames if 1 not in f.gids.tolist()]
    assert hidden and max(hidden) - min(hidden) >= 0.4  # it really was fully hidden


def _machine(scene_kit: SimpleNamespace, class_id: int = 2) -> SimpleNamespace:
    """A wide parked machine, box x 100-220, y 50-130."""
    return scene_kit.SceneObject(2, "box", (120, 80), scene_kit.linear(160, 90, 0), class_id)


def _worker_behind_machine(scene_kit: SimpleNamespace, wait_s: float = 3.0) -> SimpleNamespace:
    """A worker (class 0) who walks behind the machine's left edge, waits there ``wait_s`` and
    walks back out: fully hidden from about 1.5 s to 2.5 s + ``wait_s``."""
    path = [(0.0, 60.0, 100.0), (2.0, 125.0, 100.0), (2.0 + wait_s, 125.0, 100.0)]
    path.append((4.0 + wait_s, 60.0, 100.0))
    return scene_kit.SceneObject(1, "box", (16, 36), scene_kit.piecewise(path))


@pytest.mark.parametrize(
    ("machine_class", "hidden_buffer_s", "keeps"),
    [(2, 5.0, True), (2, None, False), (0, 5.0, False)],
    ids=["hidden", "hidden-buffer-off", "behind-its-own-class"],
)
def test_a_worker_behind_a_machine_keeps_its_identity_longer(
    scene_kit: SimpleNamespace, machine_class: int, hidden_buffer_s: float | None, keeps: bool
) -> None:
    """Hidden about 4 s: lost while touching an object of another class, a track survives
    ``hidden_buffer_s`` (5 s) and is resumed when the worker comes out. Without the hidden
    buffer, or behind an object of its own class (which could be mistaken for it), the 2 s
    ``lost_buffer_s`` ends it."""
    scene = [_worker_behind_machine(scene_kit), _machine(scene_kit, machine_class)]
    run = scene_kit.run(_tracker(hidden_buffer_s=hidden_buffer_s), scene, scene_kit.times(8, 15))
    hidden = [f.t for f in run.frames if 1 not in f.gids.tolist()]
    assert 3.5 <= max(hidden) - min(hidden) <= 4.5  # hidden longer than lost_buffer_s
    assert len(run.distinct_ids(2)) == 1
    assert (len(run.distinct_ids(1)) == 1) is keeps
    assert run.ids_of(1)[-1] >= 1  # tracked again once out


def test_the_tracker_reports_a_worker_behind_a_machine_as_hidden(
    scene_kit: SimpleNamespace,
) -> None:
    """While the worker is out of sight behind the machine, its confirmed track id is in the
    output's HIDDEN_TRACK_IDS (what keeps the rules' occurrences open); never while seen."""
    scene = [_worker_behind_machine(scene_kit), _machine(scene_kit)]
    run = scene_kit.run(_tracker(), scene, scene_kit.times(8, 15))
    worker_id = run.ids_of(1)[0]
    unseen = [k for k, f in enumerate(run.frames) if 1 not in f.gids.tolist()]
    assert unseen
    assert all(run.hidden[k] == (worker_id,) for k in unseen)
    seen = [k for k in range(len(run.frames)) if k not in unseen]
    assert not any(run.hidden[k] for k in seen)


def test_a_relabelled_object_is_not_hidden_behind_itself() -> None:
    """Regression (tracker contract audit): a person the model calls an excavator for a few
    frames was reported hidden behind that 'excavator', i.e. behind itself: the rules kept its
    occurrences open and counted it in both classes for hidden_buffer_s."""
    from streamseg.types import HIDDEN_TRACK_IDS

    tracker = _tracker()
    classes = [0] * 6 + [1] * 6 + [0] * 6
    for i, cls in enumerate(classes):
        person = _one_box(20)
        person.class_id = np.array([cls])
        out = tracker.update(person, timestamp=i / 30)
        assert out.metadata.get(HIDDEN_TRACK_IDS, ()) == (), f"frame {i}"
    assert out.tracker_id.tolist() == [1]  # back under its own id


def test_detections_the_tracker_ignores_hide_nothing() -> None:
    """Regression (tracker contract audit): a detection below low_threshold (noise the tracker
    otherwise ignores) next to where a person vanished made the person 'hidden behind' it, so
    the person's alerts stayed open for hidden_buffer_s instead of lost_buffer_s."""
    from streamseg.types import HIDDEN_TRACK_IDS

    tracker = _tracker(min_confirm_s=0)
    assert tracker.update(_one_box(20), timestamp=0.0).tracker_id.tolist() == [1]
    noise = sv.Detections(
        xyxy=np.array([[30.0, 10.0, 90.0, 70.0]]),
        confidence=np.array([0.05]),  # below low_threshold (0.1)
        class_id=np.array([1]),
    )
    out = tracker.update(noise, timestamp=0.1)
    assert out.metadata.get(HIDDEN_TRACK_IDS, ()) == ()
    noise.confidence = np.array([0.5])  # one the tracker uses: an occluder
    tracker = _tracker(min_confirm_s=0)
    tracker.update(_one_box(20), timestamp=0.0)
    assert tracker.update(noise, timestamp=0.1).metadata.get(HIDDEN_TRACK_IDS, ()) == (1,)


def test_an_object_lost_in_the_open_gets_only_the_lost_buffer(scene_kit: SimpleNamespace) -> None:
    """Missed for 3.5 s with nothing of another class near it, a track is not hidden: it ends
    after ``lost_buffer_s`` and the object comes back with a new id."""
    worker = scene_kit.SceneObject(
        1, "box", (16, 36), scene_kit.linear(60, 100, 30), hidden=((2.0, 5.5),)
    )
    machine = scene_kit.SceneObject(2, "box", (40, 40), scene_kit.linear(280, 40, 0), 2)
    run = scene_kit.run(_tracker(), [worker, machine], scene_kit.times(7, 15))
    assert len(run.distinct_ids(1)) == 2
    assert not any(run.hidden)  # lost in the open: never reported hidden


def test_a_dormant_track_takes_no_detection_a_recent_track_can_have(
    scene_kit: SimpleNamespace,
) -> None:
    """A second worker is missed for 0.5 s while it turns back, so its track can only resume
    it by distance (recovery). The worker hidden behind the machine for 3.5 s (dormant) is
    nearer in its own, wider radius, but recent tracks choose first: the second keeps its id."""
    path = [(0.0, 40.0, 150.0), (5.3, 146.0, 150.0), (5.8, 126.0, 150.0), (7.0, 90.0, 150.0)]
    other = scene_kit.SceneObject(
        3, "box", (16, 36), scene_kit.piecewise(path), hidden=((5.3, 5.8),)
    )
    hidden = _worker_behind_machine(scene_kit, wait_s=4.0)
    run = scene_kit.run(_tracker(), [hidden, other, _machine(scene_kit)], scene_kit.times(6.5, 15))
    assert len(run.distinct_ids(3)) == 1
    assert not set(run.distinct_ids(1)) & set(run.distinct_ids(3))


@pytest.mark.parametrize(("lost_buffer_s", "keeps"), [(2.0, True), (0.01, False)])
def test_single_frame_dropout_creates_no_new_identity(
    scene_kit: SimpleNamespace, lost_buffer_s: float, keeps: bool
) -> None:
    fps = 30
    walker = scene_kit.SceneObject(
        1, "disc", (30, 30), scene_kit.linear(40, 90, 90), hidden=((0.5, 0.5 + 1 / fps),)
    )
    tracker = _tracker(lost_buffer_s=lost_buffer_s)
    run = scene_kit.run(tracker, [walker], scene_kit.times(1.5, fps))
    assert sum(1 not in f.gids.tolist() for f in run.frames) == 1
    assert (run.distinct_ids(1) == [1]) is keeps


# ------------------------------------------------------------------------- crossings


def _meet_and_part(scene_kit: SimpleNamespace, back: bool) -> list[SimpleNamespace]:
    """A ``/`` and a ``\\`` of the same class and box size meet, stand on the same spot for 1 s
    (identical boxes, disjoint visible masks) and part: each back where it came from, or on
    through the other."""
    left, mid, right, y = 80.0, 160.0, 240.0, 90.0
    end_a, end_b = (left, right) if back else (right, left)
    a = scene_kit.piecewise([(0, left, y), (1.2, mid, y), (2.2, mid, y), (3.4, end_a, y)])
    b = scene_kit.piecewise([(0, right, y), (1.2, mid, y), (2.2, mid, y), (3.4, end_b, y)])
    return [
        scene_kit.SceneObject(1, "slash", (40, 40), a),
        scene_kit.SceneObject(2, "backslash", (40, 40), b),
    ]


@pytest.mark.parametrize("back", [True, False], ids=["part-back", "part-through"])
def test_crossing_objects_with_different_masks_keep_identities(
    scene_kit: SimpleNamespace, back: bool
) -> None:
    """While the two boxes coincide box IoU cannot tell the objects apart: the box-only tracker
    swaps them; the mask term keeps each identity."""
    objects = _meet_and_part(scene_kit, back)
    stamps = scene_kit.times(3.4, 15)
    overlap = scene_kit.render(objects, 1.7)
    xyxy = overlap.detections.xyxy
    assert np.abs(xyxy[0] - xyxy[1]).max() <= 1  # the boxes really coincide
    masked = scene_kit.run(_tracker(), objects, stamps)
    assert masked.distinct_ids(1) == [1] and masked.distinct_ids(2) == [2]
    boxed = scene_kit.run(_tracker(type="box"), objects, stamps)
    assert len(boxed.distinct_ids(1)) > 1 or boxed.distinct_ids(1) != masked.distinct_ids(1)


def test_crossing_at_speed_keeps_identities(scene_kit: SimpleNamespace) -> None:
    a = scene_kit.SceneObject(1, "slash", (40, 40), scene_kit.linear(60, 90, 80))
    b = scene_kit.SceneObject(2, "backslash", (40, 40), scene_kit.linear(260, 90, -80))
    run = scene_kit.run(_tracker(), [a, b], scene_kit.times(2.5, 15))
    assert run.distinct_ids(1) == [1] and run.distinct_ids(2) == [2]


# ------------------------------------------------------------------------- frame rate


def _busy_scene(scene_kit: SimpleNamespace) -> list[SimpleNamespace]:
    """Three objects: a crossing pair of strokes and a walker occluded for 0.5 s."""
    return [
        scene_kit.SceneObject(1, "slash", (36, 36), scene_kit.linear(50, 60, 70)),
        scene_kit.SceneObject(2, "backslash", (36, 36), scene_kit.linear(270, 60, -70)),
        scene_kit.SceneObject(
            3, "box", (18, 40), scene_kit.linear(60, 140, 50), class_id=1, hidden=((1.0, 1.5),)
        ),
    ]


def test_same_identities_at_15_30_and_60_fps(scene_kit: SimpleNamespace) -> None:
    objects = _busy_scene(scene_kit)
    runs = {
        fps: scene_kit.run(_tracker(), objects, scene_kit.times(3, fps)) for fps in (15, 30, 60)
    }
    canon = {fps: run.canonical() for fps, run in runs.items()}
    assert canon[15] == canon[30] == canon[60]
    assert all(len(ids) == 1 for ids in canon[15].values())
    for fps, run in runs.items():
        assert len(run.all_ids()) == 3, fps
        assert (run.ids[0] >= 1).all(), fps  # the stream's first frame: ids at once


@pytest.mark.parametrize("fps", [15, 30, 60])
def test_confirmation_waits_the_same_stream_time_at_every_rate(
    scene_kit: SimpleNamespace, fps: int
) -> None:
    """An object that appears after the stream's first frame waits ``min_confirm_s`` (0.1 s)
    of stream time at every rate."""
    walker = scene_kit.SceneObject(
        1, "box", (20, 40), scene_kit.linear(40, 90, 30), hidden=((0, 0.5),)
    )
    run = scene_kit.run(_tracker(), [walker], scene_kit.times(1, fps))
    first = min(f.t for f, ids in zip(run.frames, run.ids, strict=True) if (ids >= 1).any())
    appeared = min(f.t for f in run.frames if len(f.detections))
    assert 0.1 - 1e-9 <= first - appeared <= 0.1 + 1 / fps + 1e-9


@pytest.mark.parametrize("fps", [10, 30])
def test_confirmation_delay_is_in_seconds(scene_kit: SimpleNamespace, fps: int) -> None:
    """Counted from the object's first detection, after the stream's first frame (hidden on
    it: on the first frame ids come at once)."""
    walker = scene_kit.SceneObject(
        1, "box", (20, 40), scene_kit.linear(40, 90, 30), hidden=((0, 0.5 / fps),)
    )
    run = scene_kit.run(_tracker(min_confirm_s=0.3), [walker], scene_kit.times(1, fps))
    flat = [int(ids[0]) if len(ids) else 0 for ids in run.ids]
    first = flat.index(1)
    assert flat[0] == 0 and all(i == -1 for i in flat[1:first]) and set(flat[first:]) == {1}
    assert first == 1 + round(0.3 * fps)


def test_the_streams_first_frame_gives_ids_at_once(scene_kit: SimpleNamespace) -> None:
    """As in ByteTrack: on the stream's first frame nothing came before to tell an object
    from a one-frame flicker, and waiting would hide the stream's first moments from the
    rules. An object that appears later waits ``min_confirm_s``."""
    first = scene_kit.SceneObject(1, "box", (20, 40), scene_kit.linear(40, 90, 30))
    later = scene_kit.SceneObject(
        2, "box", (20, 40), scene_kit.linear(200, 90, -30), hidden=((0, 0.25),)
    )
    run = scene_kit.run(_tracker(min_confirm_s=0.3), [first, later], scene_kit.times(1, 20))
    assert [int(i) for i in run.ids[0]] == [1]
    appeared = next(k for k, f in enumerate(run.frames) if len(f.detections) == 2)
    assert appeared == 5
    assert [int(i) for i in run.ids[appeared]] == [1, -1]
    assert [int(i) for i in run.ids[appeared + 6]] == [1, 2]  # 0.3 s at 20 fps


def test_no_confirmation_delay_gives_ids_at_once(scene_kit: SimpleNamespace) -> None:
    walker = scene_kit.SceneObject(1, "box", (20, 40), scene_kit.linear(40, 90, 30))
    run = scene_kit.run(_tracker(min_confirm_s=0), [walker], scene_kit.times(0.5, 15))
    assert [int(ids[0]) for ids in run.ids] == [1] * len(run.ids)


# ------------------------------------------------------------------------- bad input


def _one_box(x: float = 20.0) -> sv.Detections:
    return sv.Detections(
        xyxy=np.array([[x, 20.0, x + 30, 60]]), confidence=np.array([0.9]), class_id=np.array([0])
    )


def test_empty_frames_before_between_and_after() -> None:
    tracker = _tracker(min_confirm_s=0)
    for t in (0.0, 0.1):
        out = tracker.update(sv.Detections.empty(), timestamp=t)
        assert len(out) == 0 and out.tracker_id is not None and out.tracker_id.shape == (0,)
    assert tracker.update(_one_box(), timestamp=0.2).tracker_id.tolist() == [1]
    assert len(tracker.update(sv.Detections.empty(), timestamp=0.3)) == 0
    assert tracker.update(_one_box(22), timestamp=0.4).tracker_id.tolist() == [1]


@pytest.mark.parametrize("stall_s", [3.0, 100.0])
@pytest.mark.parametrize("other_object", [False, True])
def test_a_stalled_stream_hands_no_id_over(stall_s: float, other_object: bool) -> None:
    """Regression (tracker contract audit): a track matched on the last frame before a stall
    (no frame at all for longer than lost_buffer_s) was never marked lost, so it survived the
    gap: the same object kept its id, and another person two box sizes away took it over (an
    alert keyed by the id went on under someone else). With one empty frame before the stall
    both got new ids, as documented. The frame after the stall is a fresh start, as the
    stream's first: ids at once."""
    tracker = _tracker()  # lost_buffer_s 2 s
    for i in range(6):
        assert tracker.update(_one_box(20), timestamp=i / 30).tracker_id.tolist() == [1]
    after = tracker.update(_one_box(80 if other_object else 20), timestamp=5 / 30 + stall_s)
    assert after.tracker_id.tolist() == [2]  # a new track
    later = tracker.update(_one_box(80 if other_object else 20), timestamp=5 / 30 + stall_s + 0.2)
    assert later.tracker_id.tolist() == [2]


def _boxes(boxes: list[list[float]], confidence: list[float]) -> sv.Detections:
    return sv.Detections(
        xyxy=np.array(boxes, dtype=float).reshape(-1, 4),
        confidence=np.array(confidence, dtype=float),
        class_id=np.zeros(len(boxes), dtype=int),
    )


def test_a_flicker_on_the_first_frame_does_not_keep_the_id_it_was_shown() -> None:
    """Regression (audit): a one-frame false detection on the stream's first frame (a
    duplicate the NMS missed, a flicker) was confirmed at once and then held as a lost track
    for lost_buffer_s: counted by count rules, raising a false exit, and handed to another
    object that came by. Shown at once, it is still on trial for min_confirm_s: missed, it is
    dropped as a tentative track is."""
    obj, dup, far = [20, 20, 60, 100], [22, 24, 62, 100], [300, 20, 340, 100]
    tracker = _tracker()
    assert tracker.update(
        _boxes([obj, dup, far], [0.9, 0.8, 0.7]), timestamp=0.0
    ).tracker_id.tolist() == [1, 2, 3]
    assert tracker.update(_boxes([obj], [0.9]), timestamp=1 / 15).tracker_id.tolist() == [1]
    assert tracker.num_tracks == 1  # dropped, not lost
    # Another object where the flicker was: a new track that waits min_confirm_s, id 4.
    near = _boxes([obj, [305, 20, 345, 100]], [0.9, 0.9])
    assert tracker.update(near, timestamp=1.0).tracker_id.tolist() == [1, -1]
    assert tracker.update(near, timestamp=1.1).tracker_id.tolist() == [1, 4]
    # One that stayed past min_confirm_s (0.1 s) is an ordinary confirmed track: lost, kept.
    tracker = _tracker()
    for t in (0.0, 1 / 15, 2 / 15):
        tracker.update(_boxes([obj, far], [0.9, 0.7]), timestamp=t)
    assert tracker.update(_boxes([obj], [0.9]), timestamp=3 / 15).tracker_id.tolist() == [1]
    assert tracker.num_tracks == 2
    assert tracker.update(_boxes([obj, far], [0.9, 0.7]), timestamp=4 / 15).tracker_id.tolist() == [
        1,
        2,
    ]


def test_weak_detections_get_no_id_at_once_on_a_fresh_start() -> None:
    """Regression (audit): the fresh start's ids at once are for confident detections; a weak
    one starts a track only after persist_s, and one remembered before a gap longer than
    lost_buffer_s proves nothing after it."""
    box = [20, 20, 60, 100]
    tracker = _tracker(persist_threshold=0.2, persist_s=0.0)
    ids = [
        tracker.update(_boxes([box], [0.3]), timestamp=i / 15).tracker_id.tolist() for i in range(3)
    ]
    assert ids == [[-1]] * 3  # as for one appearing later (persist_s 0 with min_confirm_s 0.1)
    tracker = _tracker(persist_threshold=0.2, persist_s=0.3)
    assert tracker.update(_boxes([box], [0.3]), timestamp=0.0).tracker_id.tolist() == [-1]
    assert tracker.update(_boxes([box], [0.3]), timestamp=3.0).tracker_id.tolist() == [-1]


def test_a_gap_within_the_lost_buffer_is_no_fresh_start() -> None:
    """After a gap the tracks survive, a new object waits ``min_confirm_s`` as usual."""
    tracker = _tracker()  # lost_buffer_s 2 s, min_confirm_s 0.1
    assert tracker.update(_one_box(20), timestamp=0.0).tracker_id.tolist() == [1]
    two = sv.Detections(
        xyxy=np.array([[20.0, 20, 50, 60], [200.0, 20, 230, 60]]),
        confidence=np.array([0.9, 0.9]),
        class_id=np.array([0, 0]),
    )
    assert tracker.update(two, timestamp=1.5).tracker_id.tolist() == [1, -1]
    assert tracker.update(two, timestamp=1.6).tracker_id.tolist() == [1, 2]


def test_an_absurd_timestamp_jump_is_not_fatal() -> None:
    """Regression (audit): a step of 1e200 s overflowed the Kalman prediction (dt ** 3)."""
    tracker = _tracker(min_confirm_s=0)
    assert tracker.update(_one_box(), timestamp=0.0).tracker_id.tolist() == [1]
    assert tracker.update(_one_box(), timestamp=1e200).tracker_id.tolist() == [2]


@pytest.mark.parametrize(
    ("bad", "kind"),
    [
        (float("nan"), "non-finite"),
        (float("inf"), "non-finite"),
        (None, "non-finite"),
        ("soon", "non-finite"),
        (0.2, "not increasing"),  # repeats the previous timestamp
        (0.05, "not increasing"),  # goes backwards
    ],
)
def test_bad_timestamps_warn_and_never_crash(
    caplog: pytest.LogCaptureFixture, bad: object, kind: str
) -> None:
    tracker = _tracker(min_confirm_s=0)
    stamps: list[object] = [0.0, 0.1, 0.2, bad, 0.4, 0.5]
    with caplog.at_level(logging.WARNING, logger="streamseg.track.clock"):
        ids = [
            tracker.update(_one_box(20 + 2 * i), timestamp=t).tracker_id.tolist()  # type: ignore[arg-type]
            for i, t in enumerate(stamps)
        ]
    assert ids == [[1]] * len(stamps)  # tracking goes on through the bad stamp
    assert tracker.timestamp_problems == {kind: 1}
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 1 and kind in messages[0]


def test_a_stream_of_bad_timestamps_is_logged_sparingly(caplog: pytest.LogCaptureFixture) -> None:
    tracker = _tracker(min_confirm_s=0)
    with caplog.at_level(logging.WARNING, logger="streamseg.track.clock"):
        for i in range(120):
            tracker.update(_one_box(20 + i % 3), timestamp=float("nan"))
    assert tracker.timestamp_problems == {"non-finite": 120}
    # The first call has nothing to compare with but is still NaN: 1st, 10th, 100th reported.
    assert len(caplog.records) == 3


def test_two_instances_share_nothing(scene_kit: SimpleNamespace) -> None:
    objects_a = _busy_scene(scene_kit)
    objects_b = [scene_kit.SceneObject(7, "disc", (30, 30), scene_kit.linear(300, 40, -60))]
    stamps = scene_kit.times(2, 15)
    alone_a = scene_kit.run(_tracker(), objects_a, stamps)
    alone_b = scene_kit.run(_tracker(), objects_b, stamps)
    tracker_a, tracker_b = _tracker(), _tracker()
    for i, t in enumerate(stamps):
        frame_a = scene_kit.render(objects_a, t)
        frame_b = scene_kit.render(objects_b, t)
        assert len(frame_b.detections) == 1
        ids_a = tracker_a.update(frame_a.detections, timestamp=t).tracker_id
        ids_b = tracker_b.update(frame_b.detections, timestamp=t + 100.0).tracker_id  # own clock
        assert ids_a.tolist() == alone_a.ids[i].tolist()
        assert ids_b.tolist() == alone_b.ids[i].tolist()
    assert alone_b.all_ids() == {1}  # each instance numbers from 1


# ------------------------------------------------------------------------- masks, input


def test_dense_compact_and_no_masks_are_accepted(scene_kit: SimpleNamespace) -> None:
    objects = _meet_and_part(scene_kit, back=True)
    stamps = scene_kit.times(3.4, 15)
    compact = scene_kit.run(_tracker(), objects, stamps, masks="compact")
    dense = scene_kit.run(_tracker(), objects, stamps, masks="dense")
    none = scene_kit.run(_tracker(), objects, stamps, masks="none")
    boxed = scene_kit.run(_tracker(type="box"), objects, stamps, masks="compact")
    assert [ids.tolist() for ids in dense.ids] == [ids.tolist() for ids in compact.ids]
    assert compact.distinct_ids(1) == [1]  # the masks were used ...
    # ... and without them the tracker is the box tracker.
    assert [ids.tolist() for ids in none.ids] == [ids.tolist() for ids in boxed.ids]


@pytest.mark.parametrize("masks", ["compact", "dense", "none"])
def test_input_is_not_mutated_and_rows_keep_their_order(
    scene_kit: SimpleNamespace, masks: str
) -> None:
    objects = _busy_scene(scene_kit)
    tracker = _tracker(min_confirm_s=0)
    for t in scene_kit.times(0.6, 15):
        frame = scene_kit.render(objects, t, masks)
        detections = frame.detections
        detections.data["class_name"] = np.array(["thing"] * len(detections))
        before = copy.deepcopy(detections)
        out = tracker.update(detections, timestamp=t)
        assert out is not detections
        assert detections.tracker_id is None
        np.testing.assert_array_equal(detections.xyxy, before.xyxy)
        np.testing.assert_array_equal(detections.confidence, before.confidence)
        np.testing.assert_array_equal(detections.class_id, before.class_id)
        assert detections.data.keys() == before.data.keys()
        if masks != "none":
            np.testing.assert_array_equal(np.asarray(detections.mask), np.asarray(before.mask))
        # Same rows, same order, everything but tracker_id untouched.
        np.testing.assert_array_equal(out.xyxy, detections.xyxy)
        np.testing.assert_array_equal(out.class_id, detections.class_id)
        np.testing.assert_array_equal(out.data["class_name"], detections.data["class_name"])
        assert out.mask is detections.mask
        out.xyxy[:] = 0  # a later stage editing the output cannot reach the input
        assert (detections.xyxy == before.xyxy).all()


def test_type_box_ignores_masks(scene_kit: SimpleNamespace) -> None:
    objects = _meet_and_part(scene_kit, back=True)
    stamps = scene_kit.times(3.4, 15)
    a = scene_kit.run(_tracker(type="box"), objects, stamps, masks="compact")
    b = scene_kit.run(_tracker(mask_weight=0.0), objects, stamps, masks="compact")
    assert [i.tolist() for i in a.ids] == [i.tolist() for i in b.ids]


@pytest.mark.parametrize(("new_class", "same_id"), [(0, True), (1, False)])
def test_matching_is_class_consistent(
    scene_kit: SimpleNamespace, new_class: int, same_id: bool
) -> None:
    """A detection at a track's place but of another class never extends that track."""
    first = scene_kit.SceneObject(1, "box", (30, 30), scene_kit.linear(100, 90, 20), class_id=0)
    second = scene_kit.SceneObject(
        2, "box", (30, 30), scene_kit.linear(100, 90, 20), class_id=new_class
    )
    tracker = _tracker()
    run_a = scene_kit.run(tracker, [first], scene_kit.times(1, 15))
    later = [t + 1 for t in scene_kit.times(1, 15)]
    run_b = scene_kit.run(tracker, [second], later)
    assert run_a.distinct_ids(1) == [1]
    assert (run_b.distinct_ids(2) == [1]) is same_id


def test_ids_are_never_reused(scene_kit: SimpleNamespace) -> None:
    """Objects come and go (each lives 0.6 s, the buffer is 0.2 s): every new object gets a
    new, larger id, and an id once given never goes to another object."""
    objects = [
        scene_kit.SceneObject(
            g,
            "disc",
            (24, 24),
            scene_kit.linear(40 + 50 * (g % 5), 50 + 20 * (g % 4), 10),
            hidden=((0.0, 0.8 * g), (0.8 * g + 0.6, 1e9)),
        )
        for g in range(1, 8)
    ]
    run = scene_kit.run(_tracker(lost_buffer_s=0.2), objects, scene_kit.times(6.5, 15))
    firsts = [run.distinct_ids(g) for g in range(1, 8)]
    assert all(len(ids) == 1 for ids in firsts)
    assert [ids[0] for ids in firsts] == list(range(1, 8))


def test_low_confidence_detections_only_extend_confirmed_tracks(
    scene_kit: SimpleNamespace,
) -> None:
    """ByteTrack's second stage (persist_threshold off): a faint detection keeps a confirmed
    track going but never starts one; below low_threshold a detection is ignored."""
    solid = scene_kit.SceneObject(1, "box", (20, 40), scene_kit.linear(40, 90, 40), confidence=0.9)
    tracker = _tracker(high_threshold=0.5, low_threshold=0.2, persist_threshold=None)
    run = scene_kit.run(tracker, [solid], scene_kit.times(1, 15))
    faint = scene_kit.SceneObject(1, "box", (20, 40), scene_kit.linear(40, 90, 40), confidence=0.3)
    later = [1 + t for t in scene_kit.times(1, 15)]
    assert scene_kit.run(tracker, [faint], later).distinct_ids(1) == run.distinct_ids(1) == [1]
    fresh = scene_kit.run(
        _tracker(high_threshold=0.5, low_threshold=0.2, persist_threshold=None), [faint], later
    )
    assert fresh.all_ids() == set()
    ignored = scene_kit.SceneObject(
        1, "box", (20, 40), scene_kit.linear(40, 90, 40), confidence=0.1
    )
    assert (
        scene_kit.run(tracker, [ignored], [2 + t for t in scene_kit.times(0.3, 15)]).all_ids()
        == set()
    )


@pytest.mark.parametrize(("new_track_threshold", "tracked"), [(None, True), (0.6, False)])
def test_new_tracks_need_the_new_track_confidence(
    scene_kit: SimpleNamespace, new_track_threshold: float | None, tracked: bool
) -> None:
    walker = scene_kit.SceneObject(
        1, "box", (20, 40), scene_kit.linear(40, 90, 40), confidence=0.55
    )
    tracker = _tracker(high_threshold=0.5, new_track_threshold=new_track_threshold)
    run = scene_kit.run(tracker, [walker], scene_kit.times(1, 15))
    assert (run.distinct_ids(1) == [1]) is tracked


@pytest.mark.parametrize(("isolated_threshold", "tracked"), [(0.5, True), (None, False)])
def test_isolated_middling_detection_starts_a_track(
    scene_kit: SimpleNamespace, isolated_threshold: float | None, tracked: bool
) -> None:
    """A lone detection between isolated_threshold and high_threshold is as good as a confident
    one: nothing near it can be confused with it."""
    walker = scene_kit.SceneObject(
        1, "box", (20, 40), scene_kit.linear(40, 90, 40), confidence=0.55
    )
    tracker = _tracker(
        high_threshold=0.6, isolated_threshold=isolated_threshold, persist_threshold=None
    )
    run = scene_kit.run(tracker, [walker], scene_kit.times(1, 15))
    assert (run.distinct_ids(1) == [1]) is tracked


def test_middling_detection_in_a_crowd_starts_no_track(scene_kit: SimpleNamespace) -> None:
    """Regression: a 0.5-0.6 detection overlapping a confident neighbour (in the bench's crowds,
    a merged or partial mask) started a track of its own that later took over the neighbour's
    identity; now it only extends a confirmed track (second stage)."""
    solid = scene_kit.SceneObject(1, "box", (20, 40), scene_kit.linear(40, 90, 0), confidence=0.9)
    middling = scene_kit.SceneObject(
        2, "box", (20, 40), scene_kit.linear(52, 100, 0), confidence=0.55
    )
    tracker = _tracker(high_threshold=0.6, isolated_threshold=0.5, persist_threshold=None)
    run = scene_kit.run(tracker, [solid, middling], scene_kit.times(1, 15))
    assert run.distinct_ids(1) == [1]
    assert run.distinct_ids(2) == []


@pytest.mark.parametrize(("isolated_max_iou", "tracked"), [(0.0, False), (0.1, True)])
def test_middling_detection_barely_touching_a_neighbour_counts_as_isolated(
    scene_kit: SimpleNamespace, isolated_max_iou: float, tracked: bool
) -> None:
    """A 0.5-0.6 detection whose box only grazes a confident neighbour's (corner to corner: an
    animal in a herd, where every box touches another) starts a track of its own once
    isolated_max_iou allows that much overlap."""
    solid = scene_kit.SceneObject(1, "box", (20, 40), scene_kit.linear(40, 90, 0), confidence=0.9)
    middling = scene_kit.SceneObject(
        2, "box", (20, 40), scene_kit.linear(57, 128, 0), confidence=0.55
    )
    tracker = _tracker(
        high_threshold=0.6,
        isolated_threshold=0.5,
        isolated_max_iou=isolated_max_iou,
        persist_threshold=None,
    )
    run = scene_kit.run(tracker, [solid, middling], scene_kit.times(1, 15))
    assert run.distinct_ids(1) == [1]
    assert len(run.distinct_ids(2)) == (1 if tracked else 0)


@pytest.mark.parametrize(("recovery_threshold", "resumed"), [(None, False), (0.4, True)])
def test_weaker_detection_resumes_a_lost_track_by_distance(
    scene_kit: SimpleNamespace, recovery_threshold: float | None, resumed: bool
) -> None:
    """An animal that comes out of the herd a box width from where it vanished, scored only
    0.45 (the crowd still touches it), is out of the box gate and too weak to start a track:
    with recovery_threshold it resumes its lost track by distance, as a confident one would."""
    before = scene_kit.SceneObject(
        1, "box", (20, 40), scene_kit.linear(100, 90, 0), hidden=((0.5, 9.0),), confidence=0.9
    )
    after = scene_kit.SceneObject(
        1, "box", (20, 40), scene_kit.linear(135, 90, 0), hidden=((0.0, 0.8),), confidence=0.45
    )
    tracker = _tracker(
        isolated_threshold=None, recovery_threshold=recovery_threshold, persist_threshold=None
    )
    run = scene_kit.run(tracker, [before, after], scene_kit.times(1.5, 15))
    assert run.distinct_ids(1) == [1]
    assert (run.ids[-1].tolist() == [1]) is resumed  # else -1: no track after it came back


def _herd_pair(
    scene_kit: SimpleNamespace, hidden: tuple[tuple[float, float], ...] = ()
) -> list[SimpleNamespace]:
    """A confident animal and a 0.45 neighbour whose box grazes it (IoU about 0.03: in a herd
    every box touches another), both standing still."""
    return [
        scene_kit.SceneObject(1, "box", (20, 40), scene_kit.linear(40, 90, 0), confidence=0.9),
        scene_kit.SceneObject(
            2, "box", (20, 40), scene_kit.linear(57, 128, 0), hidden=hidden, confidence=0.45
        ),
    ]


@pytest.mark.parametrize(("persist_threshold", "tracked"), [(None, False), (0.4, True)])
def test_a_weak_detection_that_stays_put_starts_a_track(
    scene_kit: SimpleNamespace, persist_threshold: float | None, tracked: bool
) -> None:
    """A sheep the model scores 0.45 on every frame, touching its neighbour, is not isolated
    and never confident; with persist_threshold it gets a track once it has stayed for
    persist_s, and its id is shown at once (it was seen for longer than min_confirm_s)."""
    tracker = _tracker(persist_threshold=persist_threshold, persist_s=0.5, min_confirm_s=0.1)
    run = scene_kit.run(tracker, _herd_pair(scene_kit), scene_kit.times(1.5, 20))
    assert run.distinct_ids(1) == [1]
    if not tracked:
        assert run.distinct_ids(2) == []
        return
    assert len(run.distinct_ids(2)) == 1
    first = next(i for i, ids in enumerate(run.ids) if (ids >= 0).sum() == 2)
    assert run.frames[first].t == pytest.approx(0.5)
    # The second stage keeps it: a track on every later frame.
    assert all(len(ids) == 2 and (ids >= 0).all() for ids in run.ids[first:])


def test_a_flickering_weak_detection_starts_no_track(scene_kit: SimpleNamespace) -> None:
    """The evidence must be unbroken: a weak detection missing from one frame in every few
    (noise, or a mask the model only sometimes finds) never adds up to persist_s."""
    gaps = tuple((t, t + 0.05) for t in np.arange(0.3, 3.0, 0.4).tolist())
    tracker = _tracker(persist_threshold=0.4, persist_s=0.5)
    run = scene_kit.run(tracker, _herd_pair(scene_kit, gaps), scene_kit.times(3.0, 20))
    assert run.distinct_ids(2) == []


def test_a_weak_fragment_of_a_detected_object_starts_no_track(
    scene_kit: SimpleNamespace,
) -> None:
    """A weak detection overlapping a confident one by more than persist_max_iou (a fragment
    or a merged mask of it) starts nothing, however long it stays."""
    solid = scene_kit.SceneObject(1, "box", (20, 40), scene_kit.linear(40, 90, 0), confidence=0.9)
    part = scene_kit.SceneObject(2, "box", (20, 24), scene_kit.linear(42, 98, 0), confidence=0.45)
    tracker = _tracker(persist_threshold=0.4, persist_s=0.3, persist_max_iou=0.3)
    run = scene_kit.run(tracker, [solid, part], scene_kit.times(2.0, 20))
    assert run.distinct_ids(1) == [1]
    assert run.distinct_ids(2) == []


def test_a_weak_detection_that_stays_put_resumes_the_lost_track_near_it(
    scene_kit: SimpleNamespace,
) -> None:
    """What stayed put goes through recovery before it may start anything: an animal lost in
    the herd that stands a box width from where it vanished, scored 0.45, gets its own id
    back, not a new one."""
    before = scene_kit.SceneObject(
        1, "box", (20, 40), scene_kit.linear(100, 90, 0), hidden=((0.5, 9.0),), confidence=0.9
    )
    after = scene_kit.SceneObject(
        1, "box", (20, 40), scene_kit.linear(135, 90, 0), hidden=((0.0, 0.8),), confidence=0.45
    )
    tracker = _tracker(isolated_threshold=None, persist_threshold=0.4, persist_s=0.3)
    run = scene_kit.run(tracker, [before, after], scene_kit.times(2.0, 15))
    assert run.distinct_ids(1) == [1]
    assert run.ids[-1].tolist() == [1]


def test_frame_size_change_keeps_tracking() -> None:
    """Masks on another grid (the frame size changed) replace the stored ones without harm."""
    tracker = _tracker(min_confirm_s=0, mask_resolution=100)
    xyxy = np.array([[10.0, 10.0, 29.0, 29.0]])
    for t, size in [(0.0, (60, 80)), (0.1, (60, 80)), (0.2, (300, 400)), (0.3, (300, 400))]:
        dense = np.zeros((1, *size), dtype=bool)
        dense[0, 10:30, 10:30] = True
        dets = sv.Detections(xyxy=xyxy, mask=dense, confidence=np.array([0.9]))
        assert tracker.update(dets, timestamp=t).tracker_id.tolist() == [1]


def test_rejects_what_is_not_detections() -> None:
    with pytest.raises(TypeError, match=r"expected supervision\.Detections, got ndarray"):
        _tracker().update(np.zeros((1, 4)), timestamp=0.0)  # type: ignore[arg-type]


def test_remembered_masks_do_not_keep_the_frames_mask_array_alive() -> None:
    """Regression: a track's stored mask crop was a view into the frame's whole (N, H, W)
    mask array, so every remembered track kept a full frame of masks in memory."""
    tracker = MaskTracker(TrackerConfig(min_confirm_s=0.0, appearance_weight=0.0))
    boxes = np.array([[10.0, 10.0, 60.0, 90.0], [100.0, 20.0, 150.0, 100.0]])
    masks = np.zeros((2, 240, 320), dtype=bool)
    for j, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
        masks[j, y1:y2, x1:x2] = True
    frame_masks = weakref.ref(masks)
    detections = sv.Detections(xyxy=boxes, mask=masks, confidence=np.array([0.9, 0.8]))
    tracked = tracker.update(detections, timestamp=0.0)
    assert tracker.num_tracks == 2 and len(tracked) == 2
    del masks, detections, tracked
    gc.collect()
    assert frame_masks() is None
    # The tracks still match on their masks the next frame.
    again = np.zeros((2, 240, 320), dtype=bool)
    for j, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
        again[j, y1:y2, x1:x2] = True
    ids = tracker.update(
        sv.Detections(xyxy=boxes, mask=again, confidence=np.array([0.9, 0.8])), timestamp=0.1
    ).tracker_id
    assert ids is not None and sorted(ids.tolist()) == [1, 2]

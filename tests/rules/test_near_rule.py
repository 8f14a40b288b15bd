"""near: mask-to-mask distance in pixels and metres, per track of the first classes."""

from __future__ import annotations

from typing import Any

import pytest

# Every measure on both paths: the compiled kernels and the numpy code they replace.
pytestmark = pytest.mark.usefixtures("measure_path")

Kit = Any  # the `kit` fixture (tests/rules/conftest.py)

# 0.1 m per pixel across, 0.1 m per row down the frame (an overhead view).
CALIBRATION = (
    "{image_points: [[0, 0], [100, 0], [100, 50], [0, 50]], "
    "ground_points: [[0, 0], [10, 0], [10, 5], [0, 5]]}"
)


def scene(gap: int, worker: int = 1) -> list[tuple[Any, ...]]:
    """A machine at x 60..99 and a 10 px wide worker ``gap`` px left of it (rows 20..59)."""
    x2 = 59 - gap
    return [(worker, x2 - 9, 20, x2, 59, "person"), (7, 60, 10, 99, 59, "excavator")]


def test_pixels(kit: Kit) -> None:
    engine, _ = kit.engine(
        "rules:\n"
        "  - {id: close, type: near, classes: [person], other_classes: [excavator], "
        "max_distance: 10, min_duration_s: 0.2}\n"
    )
    frames = [scene(30)] * 3 + [scene(6)] * 5 + [scene(12)] * 4
    events = kit.run(engine, frames)
    assert [(e.type, e.frame_index) for e in events] == [("start", 5), ("end", 10)]
    start, end = events
    assert start.zone_id is None and start.track_ids == (1, 7)
    assert start.class_names == ("person", "excavator")
    # Columns 53 and 60: a gap of 6 px between the masks is a distance of 7 between centres.
    assert start.details == {"track_id": 1, "other_track_id": 7, "distance_px": 7.0}
    assert start.started_pts == pytest.approx(0.3)
    assert end.details["reason"] == "apart"


def test_metres_use_the_calibration(kit: Kit) -> None:
    engine, _ = kit.engine(
        "rules:\n"
        "  - {id: close, type: near, classes: [person], other_classes: [excavator], "
        "max_distance: 1.0, units: m, min_duration_s: 0}\n",
        calibration=CALIBRATION,
    )
    events = kit.run(engine, [scene(20), scene(8)])
    assert [(e.type, e.frame_index) for e in events] == [("start", 1)]
    assert events[0].details["distance_m"] == pytest.approx(0.9)


def test_each_worker_is_its_own_occurrence_and_same_class_pairs_skip_self(kit: Kit) -> None:
    engine, _ = kit.engine(
        "rules:\n"
        "  - {id: crowd, type: near, classes: [person], other_classes: [person], "
        "max_distance: 3, min_duration_s: 0}\n"
    )
    alone = [[(1, 10, 10, 19, 29)]] * 2
    pair = [[(1, 10, 10, 19, 29), (2, 21, 10, 30, 29)]] * 2
    events = kit.run(engine, alone + pair)
    starts = [e for e in events if e.type == "start"]
    assert sorted(e.details["track_id"] for e in starts) == [1, 2]
    assert all(e.track_ids == (1, 2) for e in starts)
    assert len({e.event_id for e in starts}) == 2


def test_a_machine_that_disappears_ends_it_but_a_lost_worker_is_lost(kit: Kit) -> None:
    """The machine gone for longer than lost_timeout_s (0.3 s): apart, dated to the last frame
    the worker was near it. The worker gone: lost."""
    engine, _ = kit.engine(
        "rules:\n"
        "  - {id: close, type: near, classes: [person], other_classes: [excavator], "
        "max_distance: 10, min_duration_s: 0, lost_timeout_s: 0.3}\n"
    )
    worker_only = [scene(5)[0]]
    events = kit.run(engine, [scene(5)] * 2 + [worker_only] * 5 + [scene(5)] * 2 + [[]] * 6)
    assert [(e.type, e.frame_index, e.details.get("reason")) for e in events] == [
        ("start", 0, None),
        ("end", 5, "apart"),  # the machine last seen at 0.1 s: gone at 0.5 s, past 0.4
        ("start", 7, None),
        ("end", 12, "lost"),
    ]
    assert events[1].ended_at == pytest.approx(1000.1)
    assert events[1].details == {"track_id": 1, "other_track_id": 7, "reason": "apart"}


def test_a_flickering_machine_does_not_end_the_alert(kit: Kit) -> None:
    """Regression: frames where only the machine's detection was missed counted as "apart",
    so a machine missed for min_duration_s ended the worker's alert while the worker stood
    next to it. Unseen within lost_timeout_s, the machine's distance is unknown: the alert
    stays open, one occurrence covers the stay, and updates then carry no distance."""
    engine, _ = kit.engine(
        "rules:\n"
        "  - {id: close, type: near, classes: [person], other_classes: [excavator], "
        "max_distance: 10, min_duration_s: 0.2, lost_timeout_s: 0.5, update_interval_s: 0.6}\n"
    )
    worker_only = [scene(5)[0]]
    frames = [scene(5)] * 5 + [worker_only] * 4 + [scene(5)] * 5 + [scene(30)] * 5
    events = kit.run(engine, frames)
    assert [(e.type, e.frame_index, e.details.get("reason")) for e in events] == [
        ("start", 2, None),
        ("update", 8, None),  # the machine unseen since frame 4
        ("update", 14, None),
        ("end", 16, "apart"),  # apart from frame 14, held 0.2 s
    ]
    assert events[1].details == {
        "track_id": 1,
        "other_track_id": 7,
        "other_last_seen_pts": pytest.approx(0.4),
    }


def test_a_machine_held_hidden_longer_than_lost_timeout_ends_the_alert(kit: Kit) -> None:
    """Audit: a machine the tracker held hidden (up to hidden_buffer_s) kept the alert open
    whatever the worker did, with the last distance in every update. Past lost_timeout_s the
    machine's distance is unknown for too long: apart, dated to the last frame it was near."""
    engine, _ = kit.engine(
        "rules:\n"
        "  - {id: close, type: near, classes: [person], other_classes: [excavator], "
        "max_distance: 10, min_duration_s: 0.2, lost_timeout_s: 0.5}\n"
    )
    walked_away = [(1, 0, 20, 9, 59, "person")]
    frames = [scene(5)] * 5 + [walked_away] * 15
    events = kit.run(engine, frames, hidden=dict.fromkeys(range(5, 20), (7,)))
    assert [(e.type, e.frame_index, e.details.get("reason")) for e in events] == [
        ("start", 2, None),
        ("end", 12, "apart"),  # the machine last seen at 0.4 s: unknown until 0.9, then apart
    ]
    assert events[1].ended_at == pytest.approx(1000.4)


def test_calibration_of_a_camera_that_sees_the_horizon_maps_its_own_marks() -> None:
    """The README's example calibration: the frame's top-left pixel lies above the horizon.

    OpenCV's homography has w = 1 at pixel (0, 0); left as is, every ground pixel of such a
    camera had w < 0 and was dropped as "behind the camera", so metre rules never fired.
    """
    import numpy as np

    from streamseg.config.zones import CalibrationConfig
    from streamseg.rules.geometry import GroundPlane

    image = [[102, 710], [1180, 705], [890, 402], [370, 405]]
    ground = [[0, 0], [12, 0], [12, 20], [0, 20]]
    plane = GroundPlane(CalibrationConfig(image_points=image, ground_points=ground))
    mapped = plane.to_ground(np.asarray(image, dtype=np.float64), (1280, 720))
    np.testing.assert_allclose(mapped, ground, atol=1e-3)
    # A pixel above the horizon (the sky) is still left out.
    assert len(plane.to_ground(np.asarray([[640.0, 5.0]]), (1280, 720))) == 0


def test_calibration_with_points_out_of_order_is_a_clear_error() -> None:
    from pydantic import ValidationError

    from streamseg.config.zones import CalibrationConfig

    # A bow-tie: the third and fourth ground points swapped.
    with pytest.raises(ValidationError, match="same order"):
        CalibrationConfig(
            image_points=[[102, 710], [1180, 705], [890, 402], [370, 405]],
            ground_points=[[0, 0], [12, 0], [0, 20], [12, 20]],
        )


def test_updates_and_end_name_the_nearest_machine_of_the_moment(kit: Kit) -> None:
    """Regression (differential audit): the docstring says track_ids are A and the nearest B
    when the message was made; updates and the end kept the start's B."""
    engine, _ = kit.engine(
        "rules:\n"
        "  - {id: close, type: near, classes: [person], other_classes: [excavator, truck], "
        "max_distance: 10, min_duration_s: 0, update_interval_s: 0.5}\n"
    )
    worker = (1, 40, 20, 49, 59, "person")
    digger = (7, 55, 10, 99, 59, "excavator")
    truck = (8, 0, 20, 35, 59, "truck")
    far_truck = (8, 0, 20, 20, 59, "truck")
    frames = [[worker, digger]] * 5 + [[worker, truck]] * 6 + [[worker, far_truck]] * 2
    events = kit.run(engine, frames)
    assert [(e.type, e.frame_index) for e in events] == [
        ("start", 0),
        ("update", 5),
        ("update", 10),
        ("end", 11),
    ]
    assert [(e.track_ids, e.class_names) for e in events] == [
        ((1, 7), ("person", "excavator")),
        ((1, 8), ("person", "truck")),
        ((1, 8), ("person", "truck")),
        ((1, 8), ("person", "truck")),
    ]
    assert [e.details.get("other_track_id") for e in events[:3]] == [7, 8, 8]


def _swinging(kit: Kit, arm_x: int | None) -> list[Any]:
    """The worker 5 px left of an excavator (x 60..99, rows 20..59) whose arm (30 x 10 px,
    rows 5..14) is at ``arm_x`` (None: no arm in view): a swing moves the arm while the
    tracks stand still."""
    mask = kit.rect(60, 20, 99, 59)
    if arm_x is not None:
        mask |= kit.rect(arm_x, 5, arm_x + 29, 14)
    return [(1, 45, 20, 54, 59, "person"), kit.Obj(7, "excavator", mask)]


def test_other_moving_counts_a_machine_only_while_it_moves(kit: Kit) -> None:
    """A worker beside a parked excavator raises nothing with other_moving (and an alert
    without it); the arm swinging starts one, the machine still for longer than
    motion_window_s ends it."""
    rules = (
        "rules:\n"
        "  - {id: close, type: near, classes: [person], other_classes: [excavator], "
        "max_distance: 10, min_duration_s: 0.2%s}\n"
    )
    parked = [_swinging(kit, 60)] * 20  # 2 s at 10 fps
    swing = [_swinging(kit, 60 + 2 * i) for i in range(1, 16)]  # frames 20..34, 2 px a frame
    stopped = [_swinging(kit, 90)] * 25  # frames 35..59
    moving_only, _ = kit.engine(rules % ", other_moving: true, motion_window_s: 1.0")
    events = kit.run(moving_only, parked + swing + stopped)
    assert [e.type for e in events] == ["start", "end"]
    start, end = events
    # Moving once the arm's mask differs by min_motion (0.1) from a sample of the last second:
    # 1 - IoU = 20 s / (1900 + 10 s) for an arm s px away, so from s = 10 px (frame 24 or 25);
    # started min_duration_s (2 frames) later.
    assert 26 <= start.frame_index <= 27
    assert start.details == {"track_id": 1, "other_track_id": 7, "distance_px": 6.0}
    # Still once the last second's samples are all near the arm's final place: within
    # motion_window_s of the stop (frame 34), apart min_duration_s later.
    assert end.details["reason"] == "apart"
    assert 35 <= end.frame_index <= 34 + 10 + 2
    assert 1000.0 + 3.4 <= end.ended_at <= 1000.0 + 4.4

    anything, _ = kit.engine(rules % "")
    assert [e.type for e in kit.run(anything, parked)] == ["start"]


def test_other_moving_tolerates_mask_noise_and_counts_a_driving_truck(kit: Kit) -> None:
    """A parked truck's mask jittering by a pixel is not motion; driving is."""
    engine, _ = kit.engine(
        "rules:\n"
        "  - {id: close, type: near, classes: [person], other_classes: [truck], "
        "max_distance: 10, min_duration_s: 0, other_moving: true, motion_window_s: 1.0}\n"
    )
    jitter = [
        [(1, 45, 20, 54, 59), (7, 60 + i % 2, 20 + i % 2, 99, 59, "truck")] for i in range(30)
    ]
    assert kit.run(engine, jitter) == []
    # The worker walks beside it as it drives off.
    driving = [
        [(1, 45 + 3 * i, 20, 54 + 3 * i, 59), (7, 60 + 3 * i, 20, 99 + 3 * i, 59, "truck")]
        for i in range(10)
    ]
    events = kit.run(engine, driving, start=30)
    assert [e.type for e in events] == ["start"]


def test_motion_settings_without_other_moving_are_an_error(kit: Kit) -> None:
    from streamseg.config import ConfigError

    with pytest.raises(ConfigError, match="min_motion applies only with other_moving: true"):
        kit.config(
            "rules:\n"
            "  - {id: close, type: near, classes: [person], other_classes: [truck], "
            "max_distance: 10, min_motion: 0.2}\n"
        )


def test_a_machine_back_after_longer_than_the_window_is_unknown_not_still(kit: Kit) -> None:
    """Regression: a truck unseen for 3 s (past motion_window_s 2 s, within lost_timeout_s 5 s)
    that came back driving slowly counted as still until its mask had changed enough, and the
    worker's alert ended and started again."""
    worker = (1, 45, 20, 54, 59)

    def driving(i: int) -> list[Any]:
        x = 60 + (i // 2) % 20  # half a pixel a frame
        return [worker, (7, x, 20, x + 39, 59, "truck")]

    timeline = [driving(i) for i in range(40)] + [[worker]] * 30
    timeline += [driving(i) for i in range(70, 110)]
    engine, _ = kit.engine(
        "rules:\n"
        "  - {id: close, type: near, classes: [person], other_classes: [truck], "
        "max_distance: 40, lost_timeout_s: 5, other_moving: true}\n"
    )
    assert [e.type for e in kit.run(engine, timeline)] == ["start"]


def test_a_machine_thinner_than_the_sampling_grid_is_measured(kit: Kit) -> None:
    """Regression: a 1-pixel-wide truck at an odd column (entering at the frame's last column)
    failed an assertion, and the stream's rules skipped the frame."""
    engine, _ = kit.engine(
        "rules:\n"
        "  - {id: close, type: near, classes: [person], other_classes: [truck], "
        "max_distance: 80, other_moving: true}\n"
    )
    edge = [[(1, 45, 20, 54, 59), (7, kit.width - 1, 20, kit.width - 1, 59, "truck")]] * 5
    assert kit.run(engine, edge) == []


@pytest.mark.parametrize("units", ["px", "m"])
def test_other_moving_with_one_class_counts_only_the_one_walking(kit: Kit, units: str) -> None:
    """Person near a walking person: the one standing is near a mover, the walker is near
    someone who stands still; in pixels and in metres (each measured its own way)."""
    engine, _ = kit.engine(
        "rules:\n"
        "  - {id: close, type: near, classes: [person], other_classes: [person], "
        f"max_distance: {3.0 if units == 'm' else 30}, units: {units}, min_duration_s: 0.2, "
        "other_moving: true, motion_window_s: 1.0}\n",
        calibration=CALIBRATION,
    )
    standing = (1, 40, 20, 49, 59)
    timeline = [[standing, (2, 55 + i % 10, 20, 64 + i % 10, 59)] for i in range(30)]
    starts = [e for e in kit.run(engine, timeline) if e.type == "start"]
    assert [e.details["track_id"] for e in starts] == [1]
    assert starts[0].details["other_track_id"] == 2

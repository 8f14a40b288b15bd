"""The renderer: determinism, ground truth consistency, identities, motion, perspective."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np
import pytest

from streamseg.synth import (
    CLASS_NAMES,
    KIND_CLASSES,
    SCENE_KINDS,
    SceneRenderer,
    SynthFrame,
    random_training_frame,
)
from streamseg.synth.camera import GroundCamera
from streamseg.synth.scene import Exposure

RES = (256, 144)


def _frames(kind: str, seed: int, n: int, **kwargs: object) -> list[SynthFrame]:
    return list(SceneRenderer(kind, seed, RES, **kwargs).frames(n))  # type: ignore[arg-type]


def _same(a: SynthFrame, b: SynthFrame) -> bool:
    if not np.array_equal(a.image, b.image) or len(a.objects) != len(b.objects):
        return False
    return all(
        oa.track_id == ob.track_id
        and oa.class_id == ob.class_id
        and np.array_equal(oa.mask, ob.mask)
        and np.array_equal(oa.xyxy, ob.xyxy)
        for oa, ob in zip(a.objects, b.objects, strict=True)
    )


@pytest.mark.parametrize("kind", SCENE_KINDS)
def test_same_seed_same_pixels_and_masks(kind: str) -> None:
    first = _frames(kind, 11, 4, difficulty="occlusion")
    second = _frames(kind, 11, 4, difficulty="occlusion")
    assert all(_same(a, b) for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize("kind", SCENE_KINDS)
def test_different_seed_different_scene(kind: str) -> None:
    a = _frames(kind, 1, 1)[0]
    b = _frames(kind, 2, 1)[0]
    assert np.mean(np.abs(a.image.astype(int) - b.image.astype(int))) > 5.0


def test_start_replays_the_motion() -> None:
    """Frame i is the same whether reached from 0 or asked for with start=i."""
    renderer = SceneRenderer("pitch", 5, RES, difficulty="occlusion")
    whole = list(renderer.frames(9))
    tail = list(renderer.frames(3, start=6))
    assert [f.index for f in tail] == [6, 7, 8]
    assert all(_same(a, b) for a, b in zip(whole[6:], tail, strict=True))
    assert tail[0].pts_s == pytest.approx(6 / renderer.fps)


@pytest.mark.parametrize("kind", SCENE_KINDS)
@pytest.mark.parametrize("difficulty", ["easy", "occlusion"])
def test_ground_truth_is_consistent(kind: str, difficulty: str) -> None:
    for frame in _frames(kind, 3, 3, difficulty=difficulty):
        assert frame.image.shape == (RES[1], RES[0], 3) and frame.image.dtype == np.uint8
        assert frame.objects, "every default scene shows something"
        union = np.zeros(frame.image.shape[:2], dtype=np.int32)
        ids = [obj.track_id for obj in frame.objects]
        assert ids == sorted(set(ids))
        for obj in frame.objects:
            assert obj.mask.shape == frame.image.shape[:2] and obj.mask.dtype == np.bool_
            assert obj.mask.sum() >= 12
            assert CLASS_NAMES[obj.class_id] == obj.class_name
            assert obj.class_name in KIND_CLASSES[kind]
            ys, xs = np.nonzero(obj.mask)
            assert obj.xyxy.dtype == np.float32
            assert obj.xyxy.tolist() == [xs.min(), ys.min(), xs.max(), ys.max()]
            union += obj.mask
        assert union.max() == 1, "visible masks overlap"


@pytest.mark.parametrize("kind", SCENE_KINDS)
def test_each_kind_yields_its_classes(kind: str) -> None:
    seen: set[str] = set()
    for seed in (0, 1):
        for frame in _frames(kind, seed, 2):
            seen.update(obj.class_name for obj in frame.objects)
    assert seen == set(KIND_CLASSES[kind])


def test_identities_keep_their_class_and_move_smoothly() -> None:
    classes: dict[int, set[str]] = defaultdict(set)
    tracks: dict[int, list[tuple[int, float, float, int]]] = defaultdict(list)
    for frame in _frames("field", 4, 30, fps=15.0):
        for obj in frame.objects:
            classes[obj.track_id].add(obj.class_name)
            ys, xs = np.nonzero(obj.mask)
            tracks[obj.track_id].append((frame.index, xs.mean(), ys.mean(), len(xs)))
    assert len(tracks) >= 5
    assert all(len(names) == 1 for names in classes.values())
    steps = []
    for points in tracks.values():
        for (i0, x0, y0, n0), (i1, x1, y1, n1) in itertools.pairwise(points):
            # Occlusion changes the visible part abruptly; compare unoccluded steps only.
            if i1 == i0 + 1 and 0.85 < n1 / n0 < 1.18:
                steps.append(math.hypot(x1 - x0, y1 - y0))
    assert len(steps) > 100
    # Animals walk at most ~1.4 m/s: a few pixels per frame at this size.
    assert max(steps) < 6.0
    assert np.median(steps) < 1.5
    assert max(steps) > 0.05, "nothing moved"


def test_objects_keep_moving_over_time() -> None:
    frames = _frames("yard", 2, 40)
    first = {o.track_id: o.mask for o in frames[0].objects if o.class_name == "person"}
    last = {o.track_id: o.mask for o in frames[-1].objects if o.class_name == "person"}
    common = set(first) & set(last)
    assert common
    moved = [not np.array_equal(first[t], last[t]) for t in common]
    assert any(moved)


def test_excavator_arm_swings() -> None:
    renderer = SceneRenderer("yard", 6, RES, num_objects=1)
    world = renderer.world()
    assert [a.class_name for a in world.agents] == ["excavator"]
    swings = []
    for _ in range(int(16 * renderer.fps)):  # one dig cycle is at most 16 s
        swings.append(world.agents[0].swing)
        world.step()
    assert max(swings) - min(swings) > math.radians(80)
    frames = list(renderer.frames(2, start=int(4 * renderer.fps)))
    assert [o.class_name for o in frames[0].objects] == ["excavator"]


def test_perspective_far_objects_are_smaller() -> None:
    camera = SceneRenderer("yard", 0, (640, 360)).scene.camera
    region = SceneRenderer("yard", 0, (640, 360)).scene.region
    ratio = camera.ppm(region.z_min) / camera.ppm(region.z_max)
    assert 2.3 < ratio < 3.6
    # And in pixels: people whose feet are lower in the frame are drawn taller.
    feet, heights = [], []
    for frame in SceneRenderer("pitch", 8, (480, 270), num_objects=17).frames(2):
        for obj in frame.objects:
            if obj.class_name == "person":
                feet.append(obj.xyxy[3])
                heights.append(obj.xyxy[3] - obj.xyxy[1])
    assert len(feet) > 8
    assert np.corrcoef(feet, heights)[0, 1] > 0.5


def _overlapping_pairs(frames: list[SynthFrame]) -> int:
    pairs = 0
    for frame in frames:
        boxes = np.stack([o.xyxy for o in frame.objects])
        x1 = np.maximum(boxes[:, None, 0], boxes[None, :, 0])
        y1 = np.maximum(boxes[:, None, 1], boxes[None, :, 1])
        x2 = np.minimum(boxes[:, None, 2], boxes[None, :, 2])
        y2 = np.minimum(boxes[:, None, 3], boxes[None, :, 3])
        touching = (x2 >= x1) & (y2 >= y1)
        pairs += int((touching.sum() - len(boxes)) // 2)
    return pairs


@pytest.mark.parametrize("kind", ["field", "pitch"])
def test_occlusion_difficulty_crowds_objects(kind: str) -> None:
    easy = sum(_overlapping_pairs(_frames(kind, s, 2, num_objects=12)) for s in range(3))
    hard = sum(
        _overlapping_pairs(_frames(kind, s, 2, num_objects=12, difficulty="occlusion"))
        for s in range(3)
    )
    assert hard > 1.5 * easy + 3


def test_num_objects_is_exact() -> None:
    for kind in SCENE_KINDS:
        for n in (1, 5, 17):
            assert len(SceneRenderer(kind, 0, RES, num_objects=n).world().agents) == n


def test_lighting_drifts_slowly() -> None:
    exposure = SceneRenderer("field", 9, RES).scene.exposure
    assert isinstance(exposure, Exposure)
    gains = np.array([exposure.channel_gains(i / 15.0) for i in range(15 * 60)])
    assert np.abs(np.diff(gains, axis=0)).max() < 0.01  # per frame: imperceptible
    assert gains.max() - gains.min() > 0.05  # over a minute: visible


def test_sensor_noise_changes_every_frame() -> None:
    """A still scene (grazing can pause everything) still differs frame to frame by noise."""
    frames = _frames("field", 1, 2)
    diff = frames[0].image.astype(int) - frames[1].image.astype(int)
    assert np.abs(diff).mean() > 0.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "farm"}, "kind must be one of"),
        ({"difficulty": "hard"}, "difficulty must be one of"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"resolution_wh": (16, 16)}, "resolution_wh must be between"),
        ({"num_objects": 0}, "num_objects must be None or in 1..254"),
        ({"num_objects": 300}, "num_objects must be None or in 1..254"),
        ({"fps": 0.0}, "fps must be a number"),
        ({"min_visible_px": 0}, "min_visible_px must be >= 1"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"kind": "yard", "seed": 0, "resolution_wh": RES}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        SceneRenderer(**args)  # type: ignore[arg-type]


def test_frames_rejects_negative_counts_eagerly() -> None:
    renderer = SceneRenderer("yard", 0, RES)
    with pytest.raises(ValueError, match="num_frames must be >= 0, got -1"):
        renderer.frames(-1)
    with pytest.raises(ValueError, match="start must be >= 0, got -2"):
        renderer.frames(1, start=-2)


def test_random_training_frames_are_reproducible_and_varied() -> None:
    a = [random_training_frame(np.random.default_rng(42), (384, 224)) for _ in range(2)]
    assert _same(a[0], a[1])
    rng = np.random.default_rng(7)
    seen: set[str] = set()
    for _ in range(15):
        frame = random_training_frame(rng, (384, 224))
        assert frame.image.shape == (224, 384, 3)
        union = np.zeros((224, 384), dtype=np.int32)
        for obj in frame.objects:
            union += obj.mask
        assert union.max() <= 1
        seen.update(o.class_name for o in frame.objects)
    assert seen == set(CLASS_NAMES)


def test_to_detections_matches_the_objects() -> None:
    frame = _frames("yard", 3, 1)[0]
    det = frame.to_detections()
    assert len(det) == len(frame.objects)
    assert det.tracker_id is not None and det.class_id is not None and det.mask is not None
    assert det.tracker_id.tolist() == [o.track_id for o in frame.objects]
    assert det.class_id.tolist() == [o.class_id for o in frame.objects]
    assert list(det.data["class_name"]) == [o.class_name for o in frame.objects]
    dense = np.asarray(det.mask.to_dense() if hasattr(det.mask, "to_dense") else det.mask)
    for i, obj in enumerate(frame.objects):
        assert np.array_equal(dense[i], obj.mask)


def test_camera_rejects_bad_geometry() -> None:
    with pytest.raises(ValueError, match="tilt must be in"):
        GroundCamera(640, 360, 20.0, tilt=1.2)
    with pytest.raises(ValueError, match="horizon_frac must be negative"):
        GroundCamera(640, 360, 20.0, horizon_frac=0.1)


def _share_behind_machines(difficulty: str) -> float:
    behind = total = 0
    for seed in range(3):
        world = SceneRenderer("yard", seed, RES, difficulty=difficulty, num_objects=10).world()
        machines = [a for a in world.agents if a.class_name in ("excavator", "truck")]
        for _ in range(150):
            world.step()
            for worker in (a for a in world.agents if a.class_name == "person"):
                total += 1
                behind += any(
                    m.z < worker.z < m.z + m.radius + 4.0 and abs(worker.x - m.x) < m.radius + 1.0
                    for m in machines
                )
    return behind / total


def test_occlusion_difficulty_sends_workers_behind_machines() -> None:
    assert _share_behind_machines("occlusion") > 2.0 * _share_behind_machines("easy")


@pytest.mark.parametrize("kind", SCENE_KINDS)
def test_attributes_are_the_same_keys_from_the_first_frame(kind: str) -> None:
    """Regression: field animals had no ``state`` on frame 0, so the COCO ``attributes`` of the
    first image lacked a key every later one had."""
    frames = list(SceneRenderer(kind, 2, (320, 180), difficulty="occlusion").frames(3))
    keys = [{obj.track_id: set(obj.attributes) for obj in frame.objects} for frame in frames]
    for track_id, first in keys[0].items():
        later = [k[track_id] for k in keys[1:] if track_id in k]
        assert all(first == other for other in later), (kind, track_id, first, later)

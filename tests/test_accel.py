"""The optional compiled kernels: when they load, when they do not, and the same results.

The measures' own tests (``tests/test_rle.py``, ``tests/rules/test_near_speedups.py``,
``test_rule_measures.py``, ``test_near_rule.py``) run on both paths (the ``measure_path``
fixture). Here: the switch, the fallbacks, and the two paths side by side on larger random
frames than those tests use.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import supervision as sv

import streamseg
from streamseg import accel, rle
from streamseg.config.zones import CalibrationConfig
from streamseg.rules.geometry import GroundPlane
from streamseg.rules.measures import FrameObjects

KERNELS = ("_window_sums", "_bottoms_at", "_footprints", "_to_ground", "_nearest_each")
"""The compiled functions of streamseg._kernels."""


@pytest.fixture(autouse=True)
def fresh_kernels() -> Iterator[None]:
    """Each test decides afresh whether the kernels load, and leaves them as it found them."""
    accel.kernels.cache_clear()
    yield
    accel.kernels.cache_clear()


def test_a_dev_install_has_the_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(accel.ENV_SWITCH, raising=False)
    compiled = accel.kernels()
    assert compiled is not None
    assert {"window_sums", "bottoms_at", "footprints", "to_ground", "nearest_each"} <= set(
        dir(compiled)
    )


@pytest.mark.parametrize("value", ["0", " 0 "])
def test_the_environment_turns_them_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(accel.ENV_SWITCH, value)
    assert accel.kernels() is None


def test_without_numba_the_numpy_paths_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """An install without the ``fast`` extra: importing the kernels fails, nothing else."""
    monkeypatch.delenv(accel.ENV_SWITCH, raising=False)
    monkeypatch.delitem(sys.modules, "streamseg._kernels", raising=False)
    monkeypatch.delattr(streamseg, "_kernels", raising=False)
    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` raises ImportError
    assert accel.kernels() is None


def test_a_kernel_with_nowhere_to_cache_compiles_uncached(monkeypatch: pytest.MonkeyPatch) -> None:
    """numba refuses ``cache=True`` (RuntimeError: no locator) for a package it cannot write
    next to when ``NUMBA_CACHE_DIR`` is not set: the kernel then compiles in each process
    instead of failing the import. Simulated: this test runs as a user who can write here."""
    import numba

    from streamseg import _kernels

    real = numba.njit
    calls: list[dict[str, Any]] = []

    def njit(*args: Any, **options: Any) -> Any:
        if args:  # numba's own modules, imported while compiling, decorate with it too
            return real(*args, **options)
        calls.append(options)
        if options.get("cache"):
            raise RuntimeError("cannot cache function 'f': no locator available for file 'x'")
        return real(**options)

    monkeypatch.setattr(numba, "njit", njit)

    def add_one(x: int) -> int:
        return x + 1

    compiled = _kernels._jit(add_one)
    assert compiled(41) == 42
    assert [c.get("cache", False) for c in calls] == [True, False]


CALIBRATION = CalibrationConfig(
    image_points=[[20, 190], [300, 190], [250, 40], [70, 40]],
    ground_points=[[0, 0], [20, 0], [20, 40], [0, 40]],
)
"""The 320 x 200 crowded frame's ground plane."""


def _tracked(masks: list[np.ndarray], names: list[str] | None = None) -> sv.Detections:
    """Tracked detections of dense masks (track ids 1..N), boxes from the masks, CompactMask
    crops as a tracker hands them over; classes from ``names`` when given."""
    height, width = masks[0].shape
    boxes = []
    for m in masks:
        cols, rows = np.flatnonzero(m.any(0)), np.flatnonzero(m.any(1))
        boxes.append([cols[0], rows[0], cols[-1], rows[-1]])
    xyxy = np.array(boxes, dtype=np.float32)
    mask = sv.CompactMask.from_dense(np.stack(masks), xyxy, image_shape=(height, width))
    n = len(masks)
    if names is None:
        return sv.Detections(xyxy=xyxy, mask=mask, tracker_id=np.arange(1, n + 1))
    return sv.Detections(
        xyxy=xyxy,
        mask=mask,
        confidence=np.ones(n, dtype=np.float32),
        class_id=np.array([sorted(set(names)).index(c) for c in names]),
        tracker_id=np.arange(1, n + 1),
        data={"class_name": np.array(names)},
    )


def _crowded_detections(seed: int) -> tuple[sv.Detections, list[np.ndarray]]:
    """A 320 x 200 frame of 30 tracked blob masks (overlapping, wide, holed)."""
    rng = np.random.default_rng(seed)
    width, height = 320, 200
    masks = []
    for _ in range(30):
        mask = np.zeros((height, width), dtype=bool)
        for _ in range(int(rng.integers(1, 4))):
            x, y = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
            mask[y : y + int(rng.integers(2, 60)), x : x + int(rng.integers(2, 90))] = True
        mask &= ~(rng.random((height, width)) < 0.05)
        masks.append(mask)
    return _tracked(masks, ["person", "excavator", "truck"] * 10), masks


def _both(monkeypatch: pytest.MonkeyPatch, measure: Any) -> tuple[Any, Any]:
    compiled = measure()
    with monkeypatch.context() as patch:
        patch.setattr(accel, "kernels", lambda: None)
        plain = measure()
    return compiled, plain


@pytest.mark.parametrize("seed", range(4))
def test_the_two_paths_agree_on_a_crowded_frame(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """Zone pixels, footprints and nearest footprints on the ground: identical, bit for bit."""
    assert accel.kernels() is not None
    detections, masks = _crowded_detections(seed)
    objects = FrameObjects(detections, (320, 200))
    runs = objects._compact_runs()
    assert runs is not None
    rng = np.random.default_rng(seed)
    zone = rng.random((201, 320)) < 0.5
    column_counts = np.zeros((201, 320), dtype=np.int32)
    np.cumsum(zone[:200], axis=0, out=column_counts[1:])
    origins = objects._compact.bbox_xyxy[:, :2]
    sums, plain_sums = _both(monkeypatch, lambda: rle.run_window_sums(runs, origins, column_counts))
    assert sums.tolist() == plain_sums.tolist()
    crop = np.repeat(np.arange(len(masks)), runs.widths)
    column = np.concatenate([np.arange(w) for w in runs.widths.tolist()])
    bottoms, plain_bottoms = _both(monkeypatch, lambda: rle.run_bottoms_at(runs, crop, column))
    assert bottoms.tolist() == plain_bottoms.tolist()
    matrix = GroundPlane(CALIBRATION).matrix((320, 200))

    def ground() -> Any:
        fresh = FrameObjects(detections, (320, 200))  # nothing cached from the other path
        return fresh.footprints(), fresh.ground_footprints(matrix)

    (feet, on_ground), (plain_feet, plain_ground) = _both(monkeypatch, ground)
    np.testing.assert_array_equal(feet.points, plain_feet.points)
    np.testing.assert_array_equal(feet.offsets, plain_feet.offsets)
    np.testing.assert_array_equal(on_ground.xy, plain_ground.xy)
    np.testing.assert_array_equal(on_ground.offsets, plain_ground.offsets)
    np.testing.assert_array_equal(on_ground.bounds, plain_ground.bounds)
    people = objects.of_classes(frozenset({"person"}))
    machines = objects.of_classes(frozenset({"excavator", "truck", "person"}))
    for limit in (0.5, 2.0, 8.0, math.inf):
        near, plain_near = _both(
            monkeypatch,
            lambda limit=limit: objects.nearest_ground_each(people, machines, matrix, limit),
        )
        assert near == plain_near
        if limit == 8.0:
            assert any(j is not None for _, j in near)  # the frame has near pairs to find


def test_one_compiled_version_serves_a_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building an engine compiles every kernel; a frame of zone rules and a ``near`` in metres
    then adds no other version (a second compilation would stall that frame for about half a
    second: a non-contiguous array or an int where a float goes is enough)."""
    from streamseg.config import load_pipeline_text
    from streamseg.rules import RuleEngine
    from streamseg.types import Frame

    monkeypatch.delenv(accel.ENV_SWITCH, raising=False)
    config = load_pipeline_text(
        "sources:\n"
        "  - {id: cam, type: file, path: cam.mp4, calibration: {"
        "image_points: [[20, 190], [300, 190], [250, 40], [70, 40]], "
        "ground_points: [[0, 0], [20, 0], [20, 40], [0, 40]]}}\n"
        "zones:\n"
        "  - {id: pit, type: polygon, points: [[40, 40], [250, 30], [280, 180], [30, 170]]}\n"
        "rules:\n"
        "  - {id: in, type: inside, zone: pit, classes: [person]}\n"
        "  - {id: close, type: near, classes: [person], other_classes: [excavator, truck],\n"
        "     max_distance: 3, units: m}\n"
    )
    engine = RuleEngine.from_config(config, "cam")
    compiled = accel.kernels()
    assert compiled is not None
    kernels = [getattr(compiled, name) for name in KERNELS]
    assert [len(k.signatures) for k in kernels] == [1] * len(KERNELS)
    detections, _ = _crowded_detections(3)
    image = np.zeros((200, 320, 3), dtype=np.uint8)
    events = []
    for index in range(30):  # 3 s: past min_duration_s
        frame = Frame("cam", index, index / 10, 1000 + index / 10, image)
        events += engine.evaluate(frame, detections)
    assert events  # the frame had work for the kernels
    assert [len(k.signatures) for k in kernels] == [1] * len(KERNELS)


def test_an_index_out_of_range_raises_as_numpy_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression (differential audit): the kernels ran without bounds checks, so an object
    index one past the end returned a made-up distance, and a far one crashed the process;
    numpy raises IndexError. Bounds are checked now, on both paths alike."""
    assert accel.kernels() is not None
    detections, _ = _crowded_detections(0)
    matrix = GroundPlane(CALIBRATION).matrix((320, 200))
    for path in ("compiled", "numpy"):
        with monkeypatch.context() as patch:
            if path == "numpy":
                patch.setattr(accel, "kernels", lambda: None)
            objects = FrameObjects(detections, (320, 200))
            with pytest.raises(IndexError):
                objects.nearest_ground_each([0], [30], matrix, 3.0)
            with pytest.raises(IndexError):
                objects.nearest_ground_each([30], [0], matrix, 3.0)
            runs = objects._compact_runs()
            assert runs is not None
            with pytest.raises(IndexError):
                rle.run_bottoms_at(runs, np.array([30]), np.array([0]))


def test_a_degenerate_homography_gives_the_same_on_both_paths(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regression (differential audit): numba's min and max keep their first argument where
    numpy's propagate NaN, so a homography with an infinite entry gave footprint bounds of inf
    instead of NaN, and a NaN gap between bounds counted as within reach. The kernels use
    numpy's semantics now."""
    one = np.zeros((3, 2), dtype=bool)
    one[2, 0] = one[0, 1] = True
    detections, size = _tracked([one]), (2, 3)
    infinite = np.array([[1.0, math.inf, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    with np.errstate(all="ignore"):  # numpy's path warns about inf * 0 and overflow
        bounds, plain = _both(
            monkeypatch,
            lambda: FrameObjects(detections, size).ground_footprints(infinite).bounds,
        )
    np.testing.assert_array_equal(bounds, plain)  # NaN where numpy has NaN
    assert np.isnan(bounds).any()
    a = np.zeros((1, 5), dtype=bool)
    a[0, 0:4] = True
    b = np.zeros((1, 5), dtype=bool)
    b[0, 3:5] = True
    detections, size = _tracked([a, b]), (5, 1)
    huge = np.array([[1e308, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    with np.errstate(all="ignore"):
        near, plain_near = _both(
            monkeypatch,
            lambda: FrameObjects(detections, size).nearest_ground_each([1], [0], huge, 3.0),
        )
    assert near == plain_near == [(math.inf, None)]

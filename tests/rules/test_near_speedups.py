"""The vectorized footprints and ground distances against their per-object definitions.

``FrameObjects`` computes every object's footprint, maps them all to the ground and compares
the pairs left after pruning in one pass; these tests hold it to the straightforward
per-object computation it replaced (the same points, the same nearest object, the same
distance), crops and areas read from the runs to the decoded masks.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest
import supervision as sv

from streamseg.config.zones import CalibrationConfig
from streamseg.rules import footprints
from streamseg.rules.footprints import (
    FOOTPRINT_POINTS,
    first_minima,
    footprint_points,
    sample_columns,
    squared_distances,
)
from streamseg.rules.geometry import GroundPlane
from streamseg.rules.measures import FrameObjects

# Every measure on both paths: the compiled kernels and the numpy code they replace.
pytestmark = pytest.mark.usefixtures("measure_path")

Kit = Any  # the `kit` fixture (tests/rules/conftest.py)
W, H = 120, 80

# A camera looking down at the ground: the horizon is far above the frame.
OVERHEAD = CalibrationConfig(
    image_points=[[10, 70], [110, 70], [90, 20], [30, 20]],
    ground_points=[[0, 0], [10, 0], [10, 20], [0, 20]],
)
# A camera looking along the ground, rolled: columns right of x = 60 are beyond the horizon.
LEVEL = CalibrationConfig(
    image_points=[[0, 10], [0, 70], [40, 50], [40, 30]],
    ground_points=[[0, 0], [10, 0], [10, 20], [0, 20]],
)


def blobs(rng: np.random.Generator, count: int, wide: bool = False) -> list[npt.NDArray[np.bool_]]:
    """Non-empty masks: unions of rectangles with holes, some with empty columns; ``wide``
    ones have more than FOOTPRINT_POINTS columns."""
    masks = []
    for _ in range(count):
        mask = np.zeros((H, W), dtype=bool)
        for _ in range(int(rng.integers(1, 4))):
            x = int(rng.integers(0, W - FOOTPRINT_POINTS - 10 if wide else W - 10))
            y = int(rng.integers(0, H - 10))
            dx = (
                int(rng.integers(FOOTPRINT_POINTS + 1, W - x)) if wide else int(rng.integers(2, 25))
            )
            mask[y : y + int(rng.integers(2, 25)), x : x + dx] = True
        if rng.random() < 0.3:
            mask[:, int(rng.integers(0, W))] = False
        punched = mask & ~(rng.random((H, W)) < 0.1)
        masks.append(punched if punched.any() else mask)
    return masks


def reference_footprint(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """The footprint as defined per object: the lowest pixel of each column of the mask's box
    (w columns), or of FOOTPRINT_POINTS columns spread evenly over a wider one, its first and
    last included; empty columns give none."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    x1, y1 = cols[0], rows[0]
    crop = mask[y1 : rows[-1] + 1, x1 : cols[-1] + 1]
    width = crop.shape[1]
    sampled = np.unique(np.round(np.linspace(0, width - 1, min(width, FOOTPRINT_POINTS)), 6))
    filled = [int(c) for c in np.floor(sampled).tolist() if crop[:, int(c)].any()]
    bottoms = [np.flatnonzero(crop[:, c])[-1] for c in filled]
    return np.array([[c + x1, b + y1] for c, b in zip(filled, bottoms, strict=True)], float)


def reference_nearest(
    feet: list[npt.NDArray[np.float64]], a: int, others: list[int], limit: float
) -> tuple[float, int | None]:
    """Brute force over every point pair, ties as an argmin over k's points x the others'
    points (in order) breaks them; ``(inf, None)`` when nothing is nearer than ``limit``."""
    if not len(feet[a]):
        return math.inf, None
    owners = [b for b in others if b != a for _ in range(len(feet[b]))]
    if not owners:
        return math.inf, None
    points = np.concatenate([feet[b] for b in others if b != a])
    d2 = squared_distances(feet[a], points)
    flat = int(np.argmin(d2))
    best = math.sqrt(float(d2.flat[flat]))
    return (best, owners[flat % len(points)]) if best < limit else (math.inf, None)


def compact_objects(kit: Kit, masks: list[npt.NDArray[np.bool_]]) -> FrameObjects:
    return FrameObjects(
        kit.detections([kit.Obj(i + 1, "x", m) for i, m in enumerate(masks)]), (W, H)
    )


@pytest.mark.parametrize("seed", range(6))
def test_footprints_match_the_per_object_definition(kit: Kit, seed: int) -> None:
    rng = np.random.default_rng(seed)
    masks = blobs(rng, 8) + blobs(rng, 4, wide=True)
    detections = kit.detections([kit.Obj(i + 1, "x", m) for i, m in enumerate(masks)])
    compact = FrameObjects(detections, (W, H))
    dense = FrameObjects(
        sv.Detections(xyxy=detections.xyxy, mask=np.stack(masks), tracker_id=detections.tracker_id),
        (W, H),
    )
    for k, mask in enumerate(masks):
        expected = reference_footprint(mask)
        np.testing.assert_array_equal(compact.footprint(k), expected)
        np.testing.assert_array_equal(dense.footprint(k), expected)


def test_unconfirmed_tracks_are_skipped_in_the_concatenated_columns(kit: Kit) -> None:
    """Only confirmed rows are objects: their columns are picked out of every detection's."""
    masks = blobs(np.random.default_rng(7), 6, wide=True)
    track_ids = [-1, 3, -1, 4, 5, -1]
    objects = FrameObjects(
        kit.detections([kit.Obj(t, "x", m) for t, m in zip(track_ids, masks, strict=True)]), (W, H)
    )
    assert objects.track_ids == [3, 4, 5]
    for k, row in enumerate([1, 3, 4]):
        np.testing.assert_array_equal(objects.footprint(k), reference_footprint(masks[row]))


def test_sampled_columns_spread_over_each_object_alone() -> None:
    widths = np.array([3, 100, 1, 0, 49, 48, 60, 1000], dtype=np.int64)
    owner, column = sample_columns(widths)
    for k, width in enumerate(widths.tolist()):
        mine = column[owner == k]
        if width <= FOOTPRINT_POINTS:
            np.testing.assert_array_equal(mine, np.arange(width))  # every column
            continue
        assert len(mine) == FOOTPRINT_POINTS and len(set(mine.tolist())) == FOOTPRINT_POINTS
        assert mine[0] == 0 and mine[-1] == width - 1  # both edges of the box
        gaps = np.diff(mine)
        assert gaps.max() - gaps.min() <= 1  # evenly spread
    assert (np.diff(owner) >= 0).all()  # object after object


def test_footprint_points_leave_empty_columns_out() -> None:
    widths = np.array([3, 100, 1, 49, 60], dtype=np.int64)
    owner, column = sample_columns(widths)
    rng = np.random.default_rng(3)
    bottoms = np.where(rng.random(owner.size) < 0.8, rng.integers(0, 9, owner.size), -1)
    boxes = np.array([[i * 7, i, 0, 0] for i in range(len(widths))], dtype=np.int64)
    feet = footprint_points(bottoms, owner, column, boxes)
    for k in range(len(widths)):
        mine = (owner == k) & (bottoms >= 0)
        expected = np.stack([column[mine] + boxes[k, 0], bottoms[mine] + boxes[k, 1]], axis=1)
        np.testing.assert_array_equal(feet.of(k), expected.astype(float).reshape(-1, 2))


@pytest.mark.parametrize("calibration", [OVERHEAD, LEVEL], ids=["overhead", "level"])
def test_ground_footprints_map_each_point(kit: Kit, calibration: CalibrationConfig) -> None:
    masks = blobs(np.random.default_rng(5), 10) + blobs(np.random.default_rng(6), 3, wide=True)
    objects = compact_objects(kit, masks)
    matrix = GroundPlane(calibration).matrix((W, H))
    ground = objects.ground_footprints(matrix)
    for k in range(len(masks)):
        pixels = objects.footprint(k)
        ahead = pixels[pixels @ matrix[2, :2] + matrix[2, 2] > 1e-12]
        expected: npt.NDArray[Any] = np.zeros((0, 2))
        if len(ahead):
            expected = cv2.perspectiveTransform(ahead[None], matrix).reshape(-1, 2)
        got = objects.ground_footprint(k, matrix)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
        if len(got):
            bounds = [*got.min(axis=0), *got.max(axis=0)]
            np.testing.assert_array_equal(ground.bounds[:, k], bounds)
        else:
            assert np.isnan(ground.bounds[:, k]).all()
    if calibration is LEVEL:
        sizes = np.diff(ground.offsets)
        assert (sizes < np.diff(objects.footprints().offsets)).any()  # some points dropped


@pytest.mark.parametrize("calibration", [OVERHEAD, LEVEL], ids=["overhead", "level"])
@pytest.mark.parametrize("limit", [0.5, 2.0, 6.0, math.inf])
@pytest.mark.parametrize("seed", range(4))
def test_nearest_matches_brute_force(
    kit: Kit, calibration: CalibrationConfig, limit: float, seed: int
) -> None:
    rng = np.random.default_rng(20 + seed)
    masks = blobs(rng, 14) + blobs(rng, 3, wide=True)
    objects = compact_objects(kit, masks)
    matrix = GroundPlane(calibration).matrix((W, H))
    feet = [objects.ground_footprint(k, matrix) for k in range(len(masks))]
    ks = list(range(0, len(masks), 2))
    others = list(rng.permutation(len(masks))[:9])  # any order, some of ks among them
    found = objects.nearest_ground_each(ks, others, matrix, limit)
    for k, (value, index) in zip(ks, found, strict=True):
        best, expected = reference_nearest(feet, k, others, limit)
        assert index == expected
        if expected is None:
            assert value >= limit
        else:
            assert value == best  # the same arithmetic: bit for bit
        assert objects.nearest_ground_m(k, others, matrix, limit) == (value, index)


def test_exact_ties_go_to_the_earlier_other(kit: Kit) -> None:
    """Two others with the same mask are equally near: the first listed wins, as argmin over
    the concatenated points picks it."""
    person = kit.rect(50, 40, 55, 60)
    machine = kit.rect(60, 35, 90, 62)
    objects = compact_objects(kit, [person, machine, machine])
    matrix = GroundPlane(OVERHEAD).matrix((W, H))
    for others in ([1, 2], [2, 1]):
        ((value, index),) = objects.nearest_ground_each([0], others, matrix, 5.0)
        assert index == others[0] and value == objects.ground_distance_m(0, 1, matrix)


def test_first_minima_breaks_ties_by_point_then_other() -> None:
    group = np.array([0, 0, 0, 0, 1, 1, 2])
    value = np.array([2.0, 1.0, 1.0, 1.0, 5.0, 5.0, 3.0])
    point = np.array([0, 4, 2, 2, 1, 0, 9])
    other = np.array([0, 0, 3, 1, 0, 1, 2])
    assert first_minima(group, value, point, other) == [(0, 1.0, 1), (1, 5.0, 1), (2, 3.0, 2)]
    unique = np.array([3.0, 1.0, 2.0, 4.0, 5.0, 6.0, 0.5])
    assert first_minima(group, unique, point, other) == [(0, 1.0, 0), (1, 5.0, 0), (2, 0.5, 2)]


def test_comparisons_in_chunks_give_the_same_result(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    masks = blobs(np.random.default_rng(9), 12, wide=True)
    matrix = GroundPlane(OVERHEAD).matrix((W, H))
    whole = compact_objects(kit, masks).nearest_ground_each(range(12), range(12), matrix, 3.0)
    monkeypatch.setattr(footprints, "PAIR_CHUNK", 7)
    chunked = compact_objects(kit, masks).nearest_ground_each(range(12), range(12), matrix, 3.0)
    assert chunked == whole
    assert any(index is not None for _, index in whole)


def test_no_others_and_nothing_on_the_ground(kit: Kit) -> None:
    high = kit.rect(70, 20, 100, 60)  # beyond the horizon of LEVEL
    low = kit.rect(10, 30, 30, 50)
    objects = compact_objects(kit, [high, low])
    matrix = GroundPlane(LEVEL).matrix((W, H))
    assert objects.nearest_ground_each([], [1], matrix, 2.0) == []
    assert objects.nearest_ground_each([0, 1], [], matrix, 2.0) == [(math.inf, None)] * 2
    assert objects.nearest_ground_each([0, 1], [1, 0], matrix) == [(math.inf, None)] * 2
    assert len(objects.ground_footprint(0, matrix)) == 0


def test_crops_and_areas_read_from_the_runs(kit: Kit) -> None:
    masks = blobs(np.random.default_rng(11), 9)
    objects = compact_objects(kit, masks)
    for k, mask in enumerate(masks):
        x1, y1, x2, y2 = objects.boxes[k]
        assert objects.area(k) == int(mask.sum())
        np.testing.assert_array_equal(objects.crop(k), mask[y1 : y2 + 1, x1 : x2 + 1])


def test_crops_fall_back_to_the_public_decoder(kit: Kit) -> None:
    """Internals that are not as expected: crops, areas and footprints come from crop(i)."""
    masks = blobs(np.random.default_rng(12), 5)
    detections = kit.detections([kit.Obj(i + 1, "x", m) for i, m in enumerate(masks)])
    detections.mask._rles = tuple(detections.mask._rles)
    objects = FrameObjects(detections, (W, H))
    for k, mask in enumerate(masks):
        x1, y1, x2, y2 = objects.boxes[k]
        assert objects.area(k) == int(mask.sum())
        np.testing.assert_array_equal(objects.crop(k), mask[y1 : y2 + 1, x1 : x2 + 1])
        np.testing.assert_array_equal(objects.footprint(k), reference_footprint(mask))

"""Zone rasters, mask-in-zone fractions and mask-to-mask distances against brute force."""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest
import supervision as sv
from pydantic import ValidationError

from streamseg.config.zones import CalibrationConfig, LineZoneConfig, PolygonZoneConfig
from streamseg.rules.footprints import FOOTPRINT_POINTS
from streamseg.rules.geometry import GroundPlane, LineZone, PolygonZone, to_frame_px
from streamseg.rules.measures import FrameObjects

# Every measure on both paths: the compiled kernels and the numpy code they replace.
pytestmark = pytest.mark.usefixtures("measure_path")

Kit = Any  # the `kit` fixture (tests/rules/conftest.py)
W, H = 120, 80


def zone(points: list[list[float]], units: str = "px") -> PolygonZone:
    return PolygonZone(PolygonZoneConfig(id="z", type="polygon", points=points, units=units))


def blobs(rng: np.random.Generator, count: int) -> list[npt.NDArray[np.bool_]]:
    """Random non-empty masks: unions of rectangles with holes punched in (not convex)."""
    masks = []
    for _ in range(count):
        mask = np.zeros((H, W), dtype=bool)
        for _ in range(int(rng.integers(1, 4))):
            x, y = int(rng.integers(0, W - 10)), int(rng.integers(0, H - 10))
            mask[y : y + int(rng.integers(2, 25)), x : x + int(rng.integers(2, 25))] = True
        holes = rng.random((H, W)) < 0.1
        punched = mask & ~holes
        masks.append(punched if punched.any() else mask)
    return masks


def brute_distance(a: npt.NDArray[np.bool_], b: npt.NDArray[np.bool_]) -> float:
    pa = np.argwhere(a).astype(np.float64)
    pb = np.argwhere(b).astype(np.float64)
    return float(np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(axis=2).min()))


def test_polygon_raster_includes_edges_and_sums_boxes() -> None:
    raster = zone([[10, 10], [20, 10], [20, 20], [10, 20]]).raster((W, H))
    rows, cols = np.nonzero(raster.mask)
    assert (cols.min(), cols.max(), rows.min(), rows.max()) == (10, 20, 10, 20)
    assert raster.bbox == (10, 10, 20, 20)
    rng = np.random.default_rng(1)
    for _ in range(50):
        x1, y1 = int(rng.integers(-5, W)), int(rng.integers(-5, H))
        x2, y2 = x1 + int(rng.integers(0, 40)), y1 + int(rng.integers(0, 40))
        expected = raster.mask[max(y1, 0) : y2 + 1, max(x1, 0) : x2 + 1].sum()
        assert raster.box_sums(np.array([[x1, y1, x2, y2]])).tolist() == [expected]
    assert raster.contains(15.4, 10.0) and not raster.contains(9.4, 15) and raster.contains(9.6, 15)


def brute_raster(points: npt.NDArray[np.float64], w: int, h: int) -> npt.NDArray[np.bool_]:
    """Pixel centres inside the polygon or on its outline, one pointPolygonTest each."""
    contour = points.astype(np.float32).reshape(-1, 1, 2)
    return np.array(
        [[cv2.pointPolygonTest(contour, (x, y), False) >= 0 for x in range(w)] for y in range(h)]
    )


def test_polygon_raster_is_exactly_the_pixel_centres_inside_or_on_the_outline() -> None:
    """Regression (differential audit): cv2.fillPoly also filled the pixels its outline was
    drawn through, half a pixel past the right and bottom edges (a zone at x <= 30.5 took
    column 31, and an object there was 100 % inside). Random star-shaped (simple) polygons with
    vertices on a 1/4-pixel grid (exact in float32 too), partly outside the frame, against a
    point-in-polygon test of every pixel centre."""
    assert np.nonzero(
        zone([[10.5, 10.5], [30.5, 10.5], [30.5, 30.5], [10.5, 30.5]])
        .raster((W, H))
        .mask.any(axis=0)
    )[0].tolist() == list(range(11, 31))
    rng = np.random.default_rng(11)
    w, h = 48, 32
    tested = 0
    for _ in range(150):
        count = int(rng.integers(3, 9))
        angles = np.sort(rng.uniform(0, 2 * np.pi, count))
        radii = rng.uniform(2, 30, count)
        centre = rng.uniform([-5, -5], [w + 5, h + 5])
        points = centre + np.stack([np.cos(angles), np.sin(angles)], axis=1) * radii[:, None]
        points = np.round(points * 4) / 4
        if rng.random() < 0.2:  # axis-aligned edges on whole pixels
            points = np.round(points)
        try:
            polygon = zone(points.tolist())
        except ValidationError:  # rounding made it degenerate: the config refuses it
            continue
        np.testing.assert_array_equal(polygon.raster((w, h)).mask, brute_raster(points, w, h))
        tested += 1
    assert tested > 120


def test_box_sums_of_many_boxes_match_counting_pixels() -> None:
    """The integral-image sums against counting the mask's pixels, boxes partly or wholly
    outside the frame and empty boxes included."""
    raster = zone([[10, 5], [100, 20], [60, 75], [5, 60]]).raster((W, H))
    rng = np.random.default_rng(2)
    boxes = rng.integers(-30, W + 30, size=(3000, 4))
    boxes[:, 1] = rng.integers(-30, H + 30, size=3000)
    boxes[:, 2:] = boxes[:, :2] + rng.integers(-5, 70, size=(3000, 2))
    sums = raster.box_sums(boxes)
    counted = [
        int(raster.mask[max(y1, 0) : max(y2 + 1, 0), max(x1, 0) : max(x2 + 1, 0)].sum())
        for x1, y1, x2, y2 in boxes.tolist()
    ]
    assert sums.tolist() == counted
    assert (sums == 0).any() and (sums > 0).any()
    assert raster.box_sums(np.zeros((0, 4), dtype=np.int64)).shape == (0,)


def test_normalized_points_scale_to_the_last_pixel() -> None:
    points = to_frame_px([(0, 0), (1, 1), (0.5, 0.25)], "normalized", (W, H))
    assert points.tolist() == [[0, 0], [W - 1, H - 1], [(W - 1) / 2, (H - 1) / 4]]
    full = zone([[0, 0], [1, 0], [1, 1], [0, 1]], units="normalized").raster((W, H))
    assert full.mask.all()


def test_segment_sides_follow_the_picture() -> None:
    line = LineZone(LineZoneConfig(id="l", type="line", points=[[0, 40], [100, 40]]))
    segment = line.segment((W, H))
    assert segment.signed_distance(50, 30) == pytest.approx(-10)  # above: left
    assert segment.signed_distance(50, 45) == pytest.approx(5)  # below: right
    assert segment.along(0, 0) == 0 and segment.along(100, 7) == 1 and segment.along(150, 0) > 1


def test_overlap_matches_the_dense_computation(kit: Kit) -> None:
    rng = np.random.default_rng(7)
    masks = blobs(rng, 30)
    polygon = zone([[30, 5], [100, 20], [70, 75], [20, 60], [45, 40]])
    raster = polygon.raster((W, H))
    objects = FrameObjects(
        kit.detections([kit.Obj(i + 1, "x", m) for i, m in enumerate(masks)]), (W, H)
    )
    for k, mask in enumerate(masks):
        expected = (mask & raster.mask).sum() / mask.sum()
        assert objects.overlap(k, polygon) == pytest.approx(expected)
        assert objects.any_pixel_in(k, polygon) == bool((mask & raster.mask).any())


def test_overlap_skips_unconfirmed_rows(kit: Kit) -> None:
    """Objects are the confirmed rows only: each one's overlap is its own mask's, counted from
    the runs of every row."""
    rng = np.random.default_rng(11)
    masks = blobs(rng, 12)
    polygon = zone([[10, 10], [110, 15], [90, 70], [5, 60]])
    raster = polygon.raster((W, H))
    ids = [i + 1 if i % 3 else -1 for i in range(len(masks))]  # every third unconfirmed
    objects = FrameObjects(
        kit.detections([kit.Obj(t, "x", m) for t, m in zip(ids, masks, strict=True)]), (W, H)
    )
    confirmed = [m for t, m in zip(ids, masks, strict=True) if t >= 1]
    assert len(objects) == len(confirmed)
    for k, mask in enumerate(confirmed):
        expected = (mask & raster.mask).sum() / mask.sum()
        assert objects.overlap(k, polygon) == pytest.approx(expected)


def test_dense_masks_and_no_masks_are_accepted(kit: Kit) -> None:
    polygon = zone([[0, 0], [59, 0], [59, 79], [0, 79]])
    mask = kit.rect(50, 10, 69, 29)  # half of its 20 columns in the zone
    compact = kit.detections([kit.Obj(1, "x", mask)])
    dense = sv.Detections(
        xyxy=compact.xyxy, mask=mask[None], tracker_id=np.array([1]), class_id=np.array([0])
    )
    boxes_only = sv.Detections(xyxy=compact.xyxy, tracker_id=np.array([1]), class_id=np.array([0]))
    for detections in (compact, dense, boxes_only):
        objects = FrameObjects(detections, (W, H))
        assert objects.overlap(0, polygon) == pytest.approx(0.5)
        assert objects.class_names == ["x"] or objects.class_names == ["0"]


def test_masks_at_another_resolution_are_rescaled(kit: Kit) -> None:
    small = np.zeros((1, H // 2, W // 2), dtype=bool)
    small[0, 5:10, 25:35] = True  # frame pixels 50..69 x 10..19
    xyxy = np.array([[25, 5, 34, 9]], dtype=np.float32)
    detections = sv.Detections(
        xyxy=xyxy * 2,
        mask=sv.CompactMask.from_dense(small, xyxy, image_shape=(H // 2, W // 2)),
        tracker_id=np.array([3]),
    )
    objects = FrameObjects(detections, (W, H))
    assert objects.boxes == [(50, 10, 69, 19)]
    assert objects.overlap(0, zone([[0, 0], [59, 0], [59, 79], [0, 79]])) == pytest.approx(0.5)


def test_pixel_distance_is_exact(kit: Kit) -> None:
    rng = np.random.default_rng(3)
    masks = blobs(rng, 14)
    objects = FrameObjects(
        kit.detections([kit.Obj(i + 1, "x", m) for i, m in enumerate(masks)]), (W, H)
    )
    checked = 0
    for a in range(len(masks)):
        for b in range(len(masks)):
            if a == b:
                continue
            expected = brute_distance(masks[a], masks[b])
            assert objects.mask_distance_px(a, b) == pytest.approx(expected, abs=1e-4)
            limited = objects.mask_distance_px(a, b, limit=12.0)
            if expected < 12.0:
                assert limited == pytest.approx(expected, abs=1e-4)
            else:
                assert limited >= 12.0
            checked += 1
    assert checked == 14 * 13


def test_nearest_of_several_and_touching_masks(kit: Kit) -> None:
    a = kit.box(1, 10, 10, 19, 29)
    touching = kit.box(2, 20, 10, 29, 29)  # 4-adjacent: distance 1
    overlapping = kit.box(3, 15, 25, 24, 40)  # shares pixels: 0
    far = kit.box(4, 60, 10, 69, 29)
    objects = FrameObjects(kit.detections([a, touching, overlapping, far]), (W, H))
    assert objects.mask_distance_px(0, 1) == 1.0
    assert objects.mask_distance_px(0, 2) == 0.0
    assert objects.nearest_mask_px(0, [1, 3], limit=5) == (1.0, 1)
    assert objects.nearest_mask_px(0, [3], limit=5)[1] is None
    assert objects.nearest_mask_px(0, [1, 2, 3])[1] == 2


CALIBRATION = CalibrationConfig(
    image_points=[[10, 70], [110, 70], [90, 20], [30, 20]],
    ground_points=[[0, 0], [10, 0], [10, 20], [0, 20]],
)


def test_ground_plane_maps_the_calibration_points() -> None:
    plane = GroundPlane(CALIBRATION)
    ground = plane.to_ground(np.array(CALIBRATION.image_points, dtype=np.float64), (W, H))
    assert ground == pytest.approx(np.array(CALIBRATION.ground_points, dtype=np.float64))


def test_ground_distance_matches_brute_force(kit: Kit) -> None:
    rng = np.random.default_rng(11)
    masks = [m for m in blobs(rng, 12) if np.ptp(np.flatnonzero(m.any(axis=0))) < FOOTPRINT_POINTS]
    plane = GroundPlane(CALIBRATION)
    matrix = plane.matrix((W, H))
    objects = FrameObjects(
        kit.detections([kit.Obj(i + 1, "x", m) for i, m in enumerate(masks)]), (W, H)
    )

    def feet(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
        cols = np.flatnonzero(mask.any(axis=0))
        rows = [np.flatnonzero(mask[:, c]).max() for c in cols]
        pts = np.array([[c, r] for c, r in zip(cols, rows, strict=True)], dtype=np.float64)
        return cv2.perspectiveTransform(pts[None], matrix)[0]

    for a in range(len(masks)):
        for b in range(a + 1, len(masks)):
            fa, fb = feet(masks[a]), feet(masks[b])
            expected = math.sqrt(((fa[:, None, :] - fb[None, :, :]) ** 2).sum(axis=2).min())
            assert objects.ground_distance_m(a, b, matrix) == pytest.approx(expected, rel=1e-9)
            limited, index = objects.nearest_ground_m(a, [b], matrix, limit=3.0)
            if expected < 3.0:
                assert (limited, index) == (pytest.approx(expected), b)
            else:
                assert limited >= 3.0 and index is None


@pytest.mark.parametrize("basis", ["bottom_center", "center"])
def test_anchor_members_of_every_object_match_one_at_a_time(basis: str) -> None:
    """members() computes the box anchors of every object in one pass: the same answers as
    member() per object, for anchors on pixel-centre half-way points (x.5 rounds up, as in
    contains()) and outside the frame."""
    rng = np.random.default_rng(5)
    n = 60
    x1 = rng.integers(-20, W, n) + rng.choice([0.0, 0.25, 0.5], n)
    y1 = rng.integers(-20, H, n) + rng.choice([0.0, 0.5, 0.75], n)
    xyxy = np.stack([x1, y1, x1 + rng.integers(0, 40, n), y1 + rng.integers(0, 40, n)], axis=1)
    # Anchors half a pixel past the edges of the square zone below (pixels 10..20): x 20.5 or
    # y 20.5 round to 21, outside; x 9.5 rounds to 10, inside.
    edges = np.array([[20, 12, 21, 14], [9, 15, 10, 15.5], [12, 19.5, 13, 20.5], [15, 19, 16, 22]])
    xyxy = np.concatenate([xyxy, edges])
    n += len(edges)
    detections = sv.Detections(
        xyxy=xyxy.astype(np.float32), tracker_id=np.arange(1, n + 1), class_id=np.zeros(n, int)
    )
    for area in (
        zone([[10.5, 5], [100, 12.5], [90.5, 70], [20, 60.5]]),
        zone([[10, 10], [20, 10], [20, 20], [10, 20]]),
    ):
        objects = FrameObjects(detections, (W, H))  # members are cached by zone id
        inside, overlaps = objects.members(area, basis, 0.5)
        assert inside == [objects.member(k, area, basis, 0.5)[0] for k in range(n)]
        assert overlaps == [None] * n
        assert 0 < sum(inside) < n

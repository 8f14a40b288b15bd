"""Annotation: masks drawn where the objects are, coloured per track, zones with their state."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
import supervision as sv

from streamseg.outputs.annotate import (
    ZONE_ACTIVE,
    ZONE_IDLE,
    FrameAnnotator,
    OverlayState,
    ZoneDrawing,
    color_lookup,
    zone_label,
)

H, W = 120, 200


def detections(
    masks: list[npt.NDArray[np.bool_]],
    track_ids: list[int] | None = None,
    class_ids: list[int] | None = None,
) -> sv.Detections:
    """Detections from full-frame masks (boxes fitted to them), stored as a CompactMask."""
    xyxy = []
    for mask in masks:
        ys, xs = np.nonzero(mask)
        xyxy.append([xs.min(), ys.min(), xs.max(), ys.max()])
    boxes = np.array(xyxy, dtype=np.float32).reshape(-1, 4)
    dense = np.array(masks, dtype=bool).reshape(-1, H, W)
    n = len(masks)
    return sv.Detections(
        xyxy=boxes,
        confidence=np.full(n, 0.8, np.float32),
        class_id=np.array(class_ids if class_ids is not None else [0] * n),
        tracker_id=None if track_ids is None else np.array(track_ids),
        mask=sv.CompactMask.from_dense(dense, boxes, image_shape=(H, W)),
        data={"class_name": np.array(["cow"] * n)},
    )


def disc(cx: int, cy: int, r: int) -> npt.NDArray[np.bool_]:
    yy, xx = np.mgrid[0:H, 0:W]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def test_masks_are_drawn_inside_the_object_and_nowhere_else() -> None:
    """A round mask inside its box: pixels inside the disc change, box corners outside it not."""
    image = np.full((H, W, 3), 100, np.uint8)
    mask = disc(100, 60, 25)
    out = FrameAnnotator(boxes=False, labels=False).annotate(image, detections([mask], [3]))
    changed = np.abs(out.astype(int) - image).sum(axis=2) > 20
    assert changed[mask].mean() > 0.99
    corner = np.zeros_like(mask)
    corner[36:44, 76:84] = True  # inside the box, outside the disc
    assert not changed[corner & ~mask].any()
    assert not changed[:, :60].any() and not changed[:, 140:].any()
    assert np.array_equal(image, np.full((H, W, 3), 100, np.uint8))  # the input is untouched


def test_colour_follows_the_track_not_the_position() -> None:
    image = np.full((H, W, 3), 100, np.uint8)
    annotator = FrameAnnotator(boxes=False, labels=False)
    left, right = disc(50, 60, 20), disc(150, 60, 20)
    first = annotator.annotate(image, detections([left, right], [7, 8]))
    swapped = annotator.annotate(image, detections([left, right], [8, 7]))
    colour = lambda img, m: img[m].mean(axis=0)  # noqa: E731
    assert not np.allclose(colour(first, left), colour(first, right), atol=5)
    np.testing.assert_allclose(colour(first, left), colour(swapped, right), atol=1)


@pytest.mark.parametrize(
    ("track_ids", "class_ids", "expected"),
    [
        (None, [2, 5], [2, 5]),  # no tracker: class colours
        ([4, -1], [2, 5], [4, 5]),  # a pending detection keeps its class colour
        ([4, 9], [2, 5], [4, 9]),
    ],
)
def test_color_lookup(
    track_ids: list[int] | None, class_ids: list[int], expected: list[int]
) -> None:
    dets = detections([disc(50, 60, 10), disc(150, 60, 10)], track_ids, class_ids)
    assert color_lookup(dets).tolist() == expected


def test_zone_is_tinted_inside_outlined_and_red_while_active() -> None:
    image = np.full((H, W, 3), 100, np.uint8)
    zone = ZoneDrawing("pen", np.array([[20, 40], [180, 40], [180, 110], [20, 110]]))
    annotator = FrameAnnotator(zones=[zone])
    empty = sv.Detections.empty()
    idle = annotator.annotate(image, empty, OverlayState(counts={"pen": {"cow": 3}}))
    active = annotator.annotate(image, empty, OverlayState(active_zones=frozenset({"pen"})))

    def near(pixel: npt.NDArray[np.uint8], color: sv.Color) -> bool:
        return bool(np.abs(pixel.astype(int) - color.as_bgr()).sum() < 30)

    assert near(idle[110, 100], ZONE_IDLE) and near(active[110, 100], ZONE_ACTIVE)  # outline
    inside_idle, inside_active = idle[90, 100].astype(int), active[90, 100].astype(int)
    assert (inside_idle != 100).any() and inside_active[2] > inside_active[1] + 20  # tint
    assert (idle[20:36, 20:80] != 100).any()  # the label sits just above the zone
    assert np.array_equal(idle[115:, :], image[115:, :])  # nothing below the zone


def test_line_is_drawn_open() -> None:
    image = np.zeros((H, W, 3), np.uint8)
    line = ZoneDrawing("gate", np.array([[10, 100], [190, 100]]), is_line=True)
    out = FrameAnnotator(zones=[line]).annotate(image, sv.Detections.empty())
    assert np.abs(out[100, 60].astype(int) - ZONE_IDLE.as_bgr()).sum() < 30
    assert not out[107:, :].any()  # a line (label above it), not a filled polygon


def test_zone_label() -> None:
    assert zone_label("pen", {"sheep": 2, "cow": 1, "dog": 0}) == "pen: cow 1, sheep 2"
    assert zone_label("pen", None) == "pen"


@pytest.mark.parametrize(
    ("points", "is_line", "error"),
    [
        ([[0, 0], [5, 5]], False, r"points_xy must be \(3 or more, 2\)"),
        ([[0, 0]], True, r"points_xy must be \(2 or more, 2\)"),
        ([0, 1, 2], False, "got shape"),
        ([[0, 0], [5, 5], [9, 0]], False, None),
        ([[0.4, 0.6], [5, 5]], True, None),
    ],
)
def test_zone_drawing_validation(points: list[object], is_line: bool, error: str | None) -> None:
    if error is None:
        zone = ZoneDrawing("z", np.array(points), is_line=is_line)
        assert zone.points_xy.dtype == np.int32
    else:
        with pytest.raises(ValueError, match=error):
            ZoneDrawing("z", np.array(points), is_line=is_line)


def test_traces_follow_a_moving_track_per_stream() -> None:
    image = np.zeros((H, W, 3), np.uint8)
    annotator = FrameAnnotator(masks=False, boxes=False, labels=False, traces=True)
    out = image
    for step in range(6):
        out = annotator.annotate(image, detections([disc(40 + 20 * step, 60, 8)], [1]))
    # The bottom-centre path from x=40 to x=140 along y=68 is drawn.
    assert out[66:71, 45:135].any(axis=(0, 2)).mean() > 0.9
    fresh = annotator.fresh().annotate(image, detections([disc(140, 60, 8)], [1]))
    assert not fresh.any()  # another stream's annotator has no history


def test_labels_of_objects_on_top_of_each_other_stay_readable() -> None:
    """Regression: the labels of a herd's animals were drawn on top of one another (each at its
    box's corner), so only the last one could be read. Two objects with the same box: both
    labels' backgrounds (each track's colour) show in full."""
    mask = np.zeros((H, W), dtype=bool)
    mask[60:90, 80:120] = True
    dets = detections([mask, mask], track_ids=[1, 2])
    annotator = FrameAnnotator(masks=False, boxes=False, labels=True)
    scene = annotator.annotate(np.zeros((H, W, 3), np.uint8), dets)
    areas = []
    for index in (1, 2):
        bgr = np.array(sv.ColorPalette.DEFAULT.by_idx(index).as_bgr(), np.uint8)
        areas.append(int(np.all(scene == bgr, axis=2).sum()))
    assert min(areas) > 0.5 * max(areas) > 0

"""The colour term of MaskTracker (``appearance_weight``): histograms, their similarity, the
running average per track, and identities through a crossing that geometry alone gets wrong."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import numpy as np
import numpy.typing as npt
import pytest
import supervision as sv

from streamseg.config import TrackerConfig
from streamseg.track import MaskTracker, TrackerStage
from streamseg.track.appearance import (
    MIN_PIXELS,
    NUM_BINS,
    colour_histograms,
    histogram_similarity,
    part_similarity,
)
from streamseg.track.kalman import KalmanParams
from streamseg.track.masks import grid_masks
from streamseg.track.tracks import APPEARANCE_MOMENTUM, SIZE_MEMORY_S, TrackTable
from streamseg.types import Frame

RED = (40, 40, 200)  # BGR
BLUE = (190, 80, 30)
GREY = (110, 120, 115)
ORANGE = (20, 130, 240)


def _bin(bgr: tuple[int, int, int]) -> int:
    b, g, r = (v >> 6 for v in bgr)
    return (b << 4) | (g << 2) | r


# ------------------------------------------------------------------------- histograms


@pytest.mark.parametrize("form", ["compact", "dense", "none"])
def test_histogram_counts_the_pixels_under_the_mask(form: str) -> None:
    """Mask pixels are red, the rest of the box blue: with a mask the histogram is all red; with
    no mask the central part of the box (all red here) is used."""
    image = np.full((60, 80, 3), GREY, dtype=np.uint8)
    image[10:50, 20:60] = BLUE
    image[20:40, 30:50] = RED
    dense = np.zeros((1, 60, 80), dtype=bool)
    dense[0, 20:40, 30:50] = True
    xyxy = np.array([[20.0, 10.0, 59.0, 49.0]])
    if form == "none":
        masks = None
    else:
        mask = (
            sv.CompactMask.from_dense(dense, xyxy, image_shape=(60, 80))
            if form == "compact"
            else dense
        )
        masks = grid_masks(mask, xyxy, stride=1)
    hist, valid = colour_histograms(image, xyxy, masks)
    assert valid.tolist() == [True]
    assert hist.shape == (1, NUM_BINS)
    assert hist[0, _bin(RED)] == pytest.approx(1.0)


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_histogram_on_a_coarse_grid_and_large_masks(stride: int) -> None:
    """Large masks are subsampled; the grid stride maps cells back to frame pixels."""
    image = np.full((300, 400, 3), GREY, dtype=np.uint8)
    image[:, :200] = RED
    image[:, 200:] = BLUE
    dense = np.zeros((2, 300, 400), dtype=bool)
    dense[0, 20:280, 10:190] = True  # all red
    dense[1, 20:280, 100:300] = True  # half red, half blue
    xyxy = np.array([[10.0, 20.0, 189.0, 279.0], [100.0, 20.0, 299.0, 279.0]])
    hist, valid = colour_histograms(image, xyxy, grid_masks(dense, xyxy, stride))
    assert valid.all()
    np.testing.assert_allclose(hist.sum(axis=1), 1.0)
    assert hist[0, _bin(RED)] == pytest.approx(1.0)
    assert hist[1, _bin(RED)] == pytest.approx(0.5, abs=0.06)
    assert hist[1, _bin(BLUE)] == pytest.approx(0.5, abs=0.06)


def test_tiny_empty_and_outside_detections_have_no_histogram() -> None:
    image = np.full((40, 40, 3), GREY, dtype=np.uint8)
    xyxy = np.array(
        [[5.0, 5.0, 6.0, 6.0], [50.0, 50.0, 70.0, 70.0], [np.nan, 0, 1, 1], [0.0, 0.0, 39.0, 39.0]]
    )
    hist, valid = colour_histograms(image, xyxy, None)
    assert valid.tolist() == [False, False, False, True]
    assert not hist[:3].any()
    assert MIN_PIXELS > 1


@pytest.mark.parametrize(
    ("image", "error"),
    [
        (np.zeros((10, 10, 3), np.uint8), None),
        (np.zeros((10, 10), np.uint8), "image: expected an \\(H, W, 3\\) uint8"),
        (np.zeros((10, 10, 4), np.uint8), "image: expected an \\(H, W, 3\\) uint8"),
        (np.zeros((10, 10, 3), np.float32), "image: expected an \\(H, W, 3\\) uint8"),
    ],
)
def test_update_checks_the_image(image: npt.NDArray[np.generic], error: str | None) -> None:
    tracker = MaskTracker(TrackerConfig(appearance_weight=0.5))
    dets = sv.Detections(xyxy=np.array([[1.0, 1, 8, 8]]), confidence=np.array([0.9]))
    if error is None:
        assert len(tracker.update(dets, timestamp=0.0, image=image)) == 1  # type: ignore[arg-type]
    else:
        with pytest.raises(ValueError, match=error):
            tracker.update(dets, timestamp=0.0, image=image)  # type: ignore[arg-type]


def test_update_rejects_an_image_of_another_size_than_the_masks() -> None:
    tracker = MaskTracker(TrackerConfig(appearance_weight=0.5))
    dense = np.zeros((1, 30, 40), dtype=bool)
    dense[0, 2:9, 2:9] = True
    dets = sv.Detections(xyxy=np.array([[2.0, 2, 8, 8]]), mask=dense, confidence=np.array([0.9]))
    with pytest.raises(ValueError, match="image: expected the frame of the detections' masks"):
        tracker.update(dets, timestamp=0.0, image=np.zeros((60, 80, 3), np.uint8))
    assert len(tracker.update(dets, timestamp=0.1, image=np.zeros((30, 40, 3), np.uint8))) == 1


def test_similarity_is_bhattacharyya() -> None:
    a = np.zeros((2, NUM_BINS))
    a[0, 0] = 1.0
    a[1, :2] = 0.5
    b = np.zeros((2, NUM_BINS))
    b[0, 0] = 1.0
    b[1, 5] = 1.0
    np.testing.assert_allclose(histogram_similarity(a, b), [[1.0, 0.0], [np.sqrt(0.5), 0.0]])


def test_tracks_average_their_histograms() -> None:
    table = TrackTable(KalmanParams(0.05, 2.0, 2.0))
    table.append(
        np.array([[0.0, 0, 10, 10], [20.0, 0, 30, 10]]),
        np.zeros(2, np.int64),
        0.0,
        None,
        np.full(2, 100.0),
    )
    first = np.zeros((2, NUM_BINS))
    first[:, 0] = 1.0
    table.store_appearance(np.array([0, 1]), first, np.array([True, False]))
    assert table.has_appearance.tolist() == [True, False]
    second = np.zeros((1, NUM_BINS))
    second[0, 1] = 1.0
    table.store_appearance(np.array([0]), second, np.array([True]))
    assert table.appearance[0, 0] == pytest.approx(APPEARANCE_MOMENTUM)
    assert table.appearance[0, 1] == pytest.approx(1 - APPEARANCE_MOMENTUM)
    table.keep(np.array([False, True]))
    assert table.appearance.shape == (1, NUM_BINS) and table.has_appearance.tolist() == [False]


# ------------------------------------------------------------------------- tracking


def _bounce(scene_kit: SimpleNamespace) -> list[SimpleNamespace]:
    """Two discs of one size and class run at each other, meet (the front one hides most of the
    other) and bounce back where they came from. The motion model expects them to go on through
    each other, so after the turn each track's prediction lies on the other disc: geometry alone
    swaps them."""
    left, mid, right = 40.0, 160.0, 280.0
    a = scene_kit.piecewise([(0, left, 86), (1.0, mid, 86), (2.0, left, 86)])
    b = scene_kit.piecewise([(0, right, 94), (1.0, mid, 94), (2.0, right, 94)])
    return [
        scene_kit.SceneObject(1, "disc", (30, 30), a),
        scene_kit.SceneObject(2, "disc", (30, 30), b),
    ]


def _paint(
    scene_kit: SimpleNamespace,
    objects: Sequence[SimpleNamespace],
    colours: Sequence[tuple[int, int, int]],
    t: float,
    rng: np.random.Generator,
) -> npt.NDArray[np.uint8]:
    """The frame at ``t``: noisy grey ground, each visible object in its colour (later in front)."""
    from tests.track.conftest import shape_mask

    image = np.full((*scene_kit.hw, 3), GREY, dtype=np.int16)
    for obj, colour in zip(objects, colours, strict=True):
        if obj.visible(t):
            image[shape_mask(obj.shape, obj.position(t), obj.size_wh)] = colour
    image += rng.integers(-12, 13, size=image.shape, dtype=np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)


def _track(
    scene_kit: SimpleNamespace,
    objects: Sequence[SimpleNamespace],
    weight: float,
    colours: Sequence[tuple[int, int, int]] | None,
) -> SimpleNamespace:
    """Run the scene at 15 fps; ``colours`` None gives update() no image."""
    tracker = MaskTracker(TrackerConfig(appearance_weight=weight))
    rng = np.random.default_rng(0)
    run = SimpleNamespace(frames=[], ids=[])
    for t in scene_kit.times(2.0, 15):
        frame = scene_kit.render(objects, t)
        image = None if colours is None else _paint(scene_kit, objects, colours, t, rng)
        out = tracker.update(frame.detections, timestamp=t, image=image)
        run.frames.append(frame)
        run.ids.append(np.asarray(out.tracker_id))
    return run


def _distinct(run: SimpleNamespace, gid: int) -> list[int]:
    ids = [
        int(i)
        for frame, ids in zip(run.frames, run.ids, strict=True)
        for g, i in zip(frame.gids, ids, strict=True)
        if g == gid and i >= 0
    ]
    return list(dict.fromkeys(ids))


def test_colours_keep_identities_where_geometry_swaps(scene_kit: SimpleNamespace) -> None:
    """Regression for the pitch swaps (issue #4): same-shape objects that turn back where they
    met. Without the colour term the tracks follow the predicted motion onto the wrong object;
    with it, a red and a blue disc keep their ids."""
    objects = _bounce(scene_kit)
    overlap = scene_kit.render(objects, 1.0).detections.xyxy
    assert overlap[0, 2] > overlap[1, 0]  # the discs really overlap at the turn
    geometry = _track(scene_kit, objects, 0.0, (RED, BLUE))
    assert _distinct(geometry, 1) != [1] or _distinct(geometry, 2) != [2]  # the case is hard
    coloured = _track(scene_kit, objects, 0.5, (RED, BLUE))
    assert _distinct(coloured, 1) == [1] and _distinct(coloured, 2) == [2]


def test_same_colours_give_the_colour_term_nothing_to_go_on(scene_kit: SimpleNamespace) -> None:
    """Two red discs: the colour term changes no pairing (the bounce is as hard as without it)."""
    objects = _bounce(scene_kit)
    geometry = _track(scene_kit, objects, 0.0, (RED, RED))
    coloured = _track(scene_kit, objects, 0.5, (RED, RED))
    assert [ids.tolist() for ids in coloured.ids] == [ids.tolist() for ids in geometry.ids]


def test_without_an_image_the_colour_term_is_off(scene_kit: SimpleNamespace) -> None:
    """appearance_weight > 0 but no image: exactly the same ids as with the term off."""
    objects = _bounce(scene_kit)
    off = _track(scene_kit, objects, 0.0, None)
    no_image = _track(scene_kit, objects, 0.5, None)
    assert [ids.tolist() for ids in no_image.ids] == [ids.tolist() for ids in off.ids]
    with_image_off = _track(scene_kit, objects, 0.0, (RED, BLUE))
    assert [ids.tolist() for ids in with_image_off.ids] == [ids.tolist() for ids in off.ids]


def test_stage_passes_the_frame_image() -> None:
    """TrackerStage hands the frame's pixels to the tracker, so the colour term works in a run."""
    stage = TrackerStage("cam", TrackerConfig(appearance_weight=0.5, min_confirm_s=0))
    seen: list[object] = []
    update = stage.tracker.update

    def spy(detections: sv.Detections, timestamp: float, image: object = None) -> sv.Detections:
        seen.append(image)
        return update(detections, timestamp, image)  # type: ignore[arg-type]

    stage.tracker.update = spy  # type: ignore[method-assign]
    image = np.full((20, 20, 3), RED, dtype=np.uint8)
    dets = sv.Detections(xyxy=np.array([[2.0, 2, 12, 12]]), confidence=np.array([0.9]))
    out = stage.process(Frame("cam", 0, 0.0, 0.0, image), dets)
    assert out.tracker_id is not None and out.tracker_id.tolist() == [1]
    assert len(seen) == 1 and seen[0] is image


# ------------------------------------------------------------------------- partial views


def test_part_similarity_asks_only_for_a_part_of_the_colours() -> None:
    track = np.zeros((3, NUM_BINS))
    track[:, 0], track[:, 1] = 0.7, 0.3  # a vest (70 %) over trousers (30 %)
    det = np.zeros((3, NUM_BINS))
    det[0, 1] = 1.0  # the trousers alone, a quarter of the object visible
    det[1, 2] = 1.0  # a quarter of something else
    det[2, 0], det[2, 1] = 0.5, 0.5  # the whole object, other proportions
    score = part_similarity(track, det, np.array([0.25, 0.25, 1.0]))
    assert score[0] == pytest.approx(1.0)
    assert score[1] == pytest.approx(0.0)
    assert score[2] == pytest.approx(0.8)  # v = 1: the histogram intersection
    assert score[2] <= histogram_similarity(track[2:], det[2:])[0, 0]


def test_visible_fraction_compares_with_the_remembered_area() -> None:
    table = TrackTable(KalmanParams(0.05, 2.0, 2.0))
    table.append(np.array([[0.0, 0, 10, 40]]), np.zeros(1, np.int64), 0.0, None, np.array([400.0]))
    table.observe(np.array([0]), np.array([[0.0, 30, 10, 40]]), np.array([100.0]), 0.1)
    # The object looked four times bigger a tenth of a second ago: it is mostly hidden now, and
    # the remembered area fades towards the measured one (SIZE_MEMORY_S).
    assert table.area_peak[0] == pytest.approx(100 + 300 * np.exp(-0.1 / SIZE_MEMORY_S))
    fraction = table.visible_fraction(np.array([0]), np.array([100.0, 400.0, 800.0]))
    assert fraction[0, 0] == pytest.approx(100 / table.area_peak[0])
    assert fraction[0, 1:].tolist() == [1.0, 1.0]


def _half_hidden_run(
    min_visible: float,
    top: tuple[int, int, int],
    bottom: tuple[int, int, int],
    bottom_while_hidden: tuple[int, int, int] | None = None,
) -> tuple[list[list[int]], MaskTracker]:
    """A 40x120 object standing still for 1 s, then seen only by its bottom quarter for 1 s
    (the rest behind a grey machine), then whole again, at 15 fps. Colours: ``top`` over its
    upper 70 %, ``bottom`` below, so the bottom quarter alone shows ``bottom`` only (or
    ``bottom_while_hidden`` when given: something else stands there). Each frame has one
    detection, as a model would give it: the visible part's box and mask, same class. Returns
    the tracker ids per frame and the tracker."""
    tracker = MaskTracker(TrackerConfig(appearance_min_visible=min_visible))
    rng = np.random.default_rng(3)
    ids: list[list[int]] = []
    for k in range(45):
        hidden = 15 <= k < 30
        image = np.full((240, 320, 3), GREY, dtype=np.int16)
        image[60:144, 100:140] = top
        image[144:180, 100:140] = bottom_while_hidden if hidden and bottom_while_hidden else bottom
        y1 = 150 if hidden else 60
        image[:y1, 90:150] = GREY  # the machine in front
        image += rng.integers(-10, 11, size=image.shape, dtype=np.int16)
        mask = np.zeros((1, 240, 320), dtype=bool)
        mask[0, y1:180, 100:140] = True
        dets = sv.Detections(
            xyxy=np.array([[100.0, y1, 139, 179]]),
            mask=mask,
            confidence=np.array([0.9]),
            class_id=np.array([0]),
        )
        out = tracker.update(dets, timestamp=k / 15, image=np.clip(image, 0, 255).astype(np.uint8))
        ids.append(np.asarray(out.tracker_id).tolist())
    return ids, tracker


def test_a_half_hidden_object_keeps_its_identity() -> None:
    """A worker behind a machine shows their trousers, not their vest: compared whole, the colours
    differ and a new track starts; compared as a part of the track's colours, they fit."""
    whole, _ = _half_hidden_run(0.0, ORANGE, BLUE)
    assert {i for frame in whole[15:30] for i in frame} != {1}  # the case is hard
    part, tracker = _half_hidden_run(0.8, ORANGE, BLUE)
    assert all(frame == [1] for frame in part[2:])
    # The partial views were not averaged into the track's colours (blue is 30 % of the whole).
    assert tracker._tracks.appearance[0, _bin(BLUE)] < 0.4


def test_a_partial_view_in_other_colours_is_another_object() -> None:
    """The part rule does not switch the colour term off: a quarter of something blue where a
    wholly orange object stood is not that object."""
    same, _ = _half_hidden_run(0.8, ORANGE, ORANGE)
    assert all(frame == [1] for frame in same[2:])
    other, _ = _half_hidden_run(0.8, ORANGE, ORANGE, bottom_while_hidden=BLUE)
    assert 1 not in {i for frame in other[16:30] for i in frame}

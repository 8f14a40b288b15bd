"""Crop RLE: round trip, and the same runs supervision's CompactMask stores."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import supervision as sv

from streamseg.rle import (
    compact_runs,
    crop_rle_counts,
    decode_compact_crops,
    decode_crop_rle,
    decode_run_crop,
    run_bottoms_at,
    run_crop_areas,
    run_window_sums,
)

# Every measure on both paths: the compiled kernels and the numpy code they replace.
pytestmark = pytest.mark.usefixtures("measure_path")


@pytest.mark.parametrize("seed", range(5))
def test_round_trip_random_crops(seed: int) -> None:
    rng = np.random.default_rng(seed)
    crop = rng.random((rng.integers(1, 30), rng.integers(1, 30))) > 0.6
    counts = crop_rle_counts(crop)
    assert counts.sum() == crop.size
    np.testing.assert_array_equal(decode_crop_rle(counts, crop.shape), crop)


@pytest.mark.parametrize(
    ("crop", "expected"),
    [
        (np.array([[True, True], [True, True]]), [0, 4]),
        (np.array([[False, False], [False, False]]), [4]),
        # column-major: column 0 is (F, T), column 1 is (T, F)
        (np.array([[False, True], [True, False]]), [1, 2, 1]),
    ],
)
def test_known_runs(crop: np.ndarray, expected: list[int]) -> None:
    assert crop_rle_counts(crop).tolist() == expected


def test_matches_compact_mask_encoding() -> None:
    """A CompactMask built from our runs decodes to the same pixels as one built from dense."""
    dense = np.zeros((1, 40, 60), dtype=bool)
    dense[0, 10:25, 5:30] = True
    dense[0, 12:14, 8:9] = False
    xyxy = np.array([[5, 10, 29, 24]], dtype=np.float32)
    reference = sv.CompactMask.from_dense(dense, xyxy, image_shape=(40, 60))
    crop = dense[0, 10:25, 5:30]
    ours = sv.CompactMask(
        [crop_rle_counts(crop)],
        np.array([crop.shape], dtype=np.int32),
        np.array([[5, 10]], dtype=np.int32),
        (40, 60),
    )
    np.testing.assert_array_equal(ours.to_dense(), reference.to_dense())


def test_decode_rejects_wrong_total() -> None:
    with pytest.raises(ValueError, match="sum to 3"):
        decode_crop_rle([1, 2], (2, 2))


def _random_compact(seed: int) -> sv.CompactMask:
    """1-4 random masks (blobs of varying density, some empty) in a 40x50 frame."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5))
    dense = np.zeros((n, 40, 50), dtype=bool)
    xyxy = []
    for i in range(n):
        x1, y1 = (int(v) for v in rng.integers(0, 30, 2))
        x2, y2 = x1 + int(rng.integers(0, 19)), y1 + int(rng.integers(0, 9))
        dense[i, y1 : y2 + 1, x1 : x2 + 1] = rng.random((y2 - y1 + 1, x2 - x1 + 1)) < rng.random()
        xyxy.append([x1, y1, x2, y2])
    return sv.CompactMask.from_dense(dense, np.array(xyxy, np.float32), image_shape=(40, 50))


@pytest.mark.parametrize("seed", range(40))
def test_vectorized_decode_matches_crop(seed: int) -> None:
    mask = _random_compact(seed)
    crops, areas = decode_compact_crops(mask)
    assert areas is not None
    for i, crop in enumerate(crops):
        np.testing.assert_array_equal(crop, mask.crop(i))
        assert areas[i] == mask.crop(i).sum()


def _dense_bottoms(crop: np.ndarray) -> np.ndarray:
    """Row of the lowest set pixel of each column, -1 for an empty column, by scanning."""
    return np.array(
        [np.flatnonzero(col)[-1] if col.any() else -1 for col in crop.T], dtype=np.int64
    ).reshape(-1)


def _crop_kinds(rng: np.random.Generator) -> list[np.ndarray]:
    """Crops that stress the column bottoms: 1 pixel (set and not), single rows and columns,
    empty, full (one run through every column), full bottom rows (runs crossing into the next
    column), empty columns, random densities (odd and even run counts)."""
    crossing = np.zeros((6, 5), dtype=bool)
    crossing[3:, :] = True  # set down to the bottom of every column
    crossing[:2, 1:3] = True  # and from the top of columns 1, 2: runs that cross columns
    gaps = rng.random((7, 9)) < 0.5
    gaps[:, [2, 5]] = False
    crops = [
        np.ones((1, 1), dtype=bool),
        np.zeros((1, 1), dtype=bool),
        rng.random((1, 8)) < 0.5,
        rng.random((8, 1)) < 0.5,
        np.zeros((4, 6), dtype=bool),
        np.ones((4, 6), dtype=bool),
        crossing,
        gaps,
    ]
    for _ in range(6):
        h, w = (int(v) for v in rng.integers(1, 12, 2))
        crops.append(rng.random((h, w)) < rng.random())
    return [crops[i] for i in rng.permutation(len(crops))]


def _compact_of(crops: list[np.ndarray]) -> sv.CompactMask:
    """A CompactMask holding ``crops`` side by side in a 20 x (sum of widths + 1) frame."""
    offsets, x = [], 0
    for crop in crops:
        offsets.append([x, int(crop.shape[0] % 3)])
        x += crop.shape[1]
    return sv.CompactMask(
        [crop_rle_counts(crop) for crop in crops],
        np.array([crop.shape for crop in crops], dtype=np.int32),
        np.array(offsets, dtype=np.int32),
        (20, x + 1),
    )


def _column_bottoms(mask: sv.CompactMask) -> list[np.ndarray]:
    """run_bottoms_at() of every column of every crop, split per crop (columns in order)."""
    runs = compact_runs(mask)
    assert runs is not None
    widths = runs.widths
    crop = np.repeat(np.arange(widths.size), widths)
    column = np.arange(crop.size) - np.repeat(np.cumsum(widths) - widths, widths)
    rows = run_bottoms_at(runs, crop, column)
    return np.split(rows, np.cumsum(widths)[:-1].tolist()) if widths.size else []


@pytest.mark.parametrize("seed", range(25))
def test_column_bottoms_match_a_dense_reference(seed: int) -> None:
    """Bottoms come from runs in column-major order (the last set run ending in a column, or
    one running through its bottom): checked against a scan of the decoded pixels, every
    column asked for, and the columns asked for in a shuffled order."""
    rng = np.random.default_rng(seed)
    crops = _crop_kinds(rng)
    mask = _compact_of(crops)
    for got, crop in zip(_column_bottoms(mask), crops, strict=True):
        np.testing.assert_array_equal(got, _dense_bottoms(crop))
    runs = compact_runs(mask)
    assert runs is not None
    crop = np.repeat(np.arange(len(crops)), runs.widths)
    column = np.concatenate([np.arange(c.shape[1]) for c in crops])
    order = rng.permutation(crop.size)
    expected = np.concatenate([_dense_bottoms(c) for c in crops])[order]
    np.testing.assert_array_equal(run_bottoms_at(runs, crop[order], column[order]), expected)


@pytest.mark.parametrize("seed", range(10))
def test_runs_decode_crops_and_count_areas(seed: int) -> None:
    crops = _crop_kinds(np.random.default_rng(100 + seed))
    runs = compact_runs(_compact_of(crops))
    assert runs is not None
    assert run_crop_areas(runs).tolist() == [int(crop.sum()) for crop in crops]
    for i, crop in enumerate(crops):
        np.testing.assert_array_equal(decode_run_crop(runs, i), crop)


def _no_list(mask: sv.CompactMask) -> None:
    mask._rles = tuple(mask._rles)  # type: ignore[assignment]


def _short_runs(mask: sv.CompactMask) -> None:
    mask._rles[1] = mask._rles[1][:-1]


def _no_runs(mask: sv.CompactMask) -> None:
    mask._rles[0] = np.zeros(0, dtype=np.int32)


@pytest.mark.parametrize("spoil", [_no_list, _short_runs, _no_runs])
def test_unexpected_internals_fall_back(spoil: Callable[[sv.CompactMask], None]) -> None:
    mask = _compact_of([np.ones((3, 2), dtype=bool), np.eye(4, dtype=bool)])
    spoil(mask)
    assert compact_runs(mask) is None


def test_no_crops() -> None:
    mask = sv.CompactMask([], np.zeros((0, 2), np.int32), np.zeros((0, 2), np.int32), (4, 4))
    assert _column_bottoms(mask) == []
    runs = compact_runs(mask)
    assert runs is not None
    none = np.zeros(0, dtype=np.int64)
    assert run_bottoms_at(runs, none, none).size == 0


@pytest.mark.parametrize("seed", range(40))
def test_column_bottoms_match_a_brute_force_scan(seed: int) -> None:
    """The runs of a column can end in it, pass through its bottom, or both."""
    mask = _random_compact(seed)
    bottoms = _column_bottoms(mask)
    assert len(bottoms) == len(mask)
    for i, got in enumerate(bottoms):
        crop = mask.crop(i)
        expected = np.array(
            [max(np.flatnonzero(col), default=-1) for col in crop.T], dtype=np.int64
        ).reshape(-1)
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("seed", range(25))
def test_window_sums_count_the_set_pixels_a_frame_mask_holds(seed: int) -> None:
    """Runs that cross columns, 1-pixel and empty crops, crops at the frame's bottom and right
    edges: each crop's count equals the decoded pixels ANDed with the frame mask."""
    rng = np.random.default_rng(300 + seed)
    crops = _crop_kinds(rng)
    mask = _compact_of(crops)
    runs = compact_runs(mask)
    assert runs is not None
    height, width = mask.image_shape
    frame = rng.random((height, width)) < rng.random()
    frame[:, -1] = rng.random(height) < 0.5  # the last column and row hold crops' pixels too
    column_counts = np.zeros((height + 1, width), dtype=np.int32)
    np.cumsum(frame, axis=0, out=column_counts[1:])
    origins = mask.bbox_xyxy[:, :2]
    got = run_window_sums(runs, origins, column_counts)
    expected = [
        int((crop & frame[y : y + crop.shape[0], x : x + crop.shape[1]]).sum())
        for crop, (x, y) in zip(crops, origins.tolist(), strict=True)
    ]
    assert got.tolist() == expected
    # A crop placed against the bottom-right corner (its last boundary reads the last row).
    corner = np.ones((3, 2), dtype=bool)
    edge = sv.CompactMask(
        [crop_rle_counts(corner)],
        np.array([corner.shape], dtype=np.int32),
        np.array([[width - 2, height - 3]], dtype=np.int32),
        (height, width),
    )
    edge_runs = compact_runs(edge)
    assert edge_runs is not None
    assert run_window_sums(edge_runs, edge.bbox_xyxy[:, :2], column_counts).tolist() == [
        int(frame[-3:, -2:].sum())
    ]


def test_window_sums_of_no_crops() -> None:
    mask = sv.CompactMask([], np.zeros((0, 2), np.int32), np.zeros((0, 2), np.int32), (4, 4))
    runs = compact_runs(mask)
    assert runs is not None
    assert run_window_sums(runs, np.zeros((0, 2)), np.zeros((5, 4), np.int32)).size == 0

"""Crop RLE: round trip, and the same runs supervision's CompactMask stores."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from streamseg.rle import (
    compact_column_bottoms,
    crop_rle_counts,
    decode_compact_crops,
    decode_crop_rle,
)


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


@pytest.mark.parametrize("seed", range(40))
def test_column_bottoms_match_a_brute_force_scan(seed: int) -> None:
    """The runs of a column can end in it, pass through its bottom, or both."""
    mask = _random_compact(seed)
    bottoms = compact_column_bottoms(mask)
    assert bottoms is not None and len(bottoms) == len(mask)
    for i, got in enumerate(bottoms):
        crop = mask.crop(i)
        expected = np.array(
            [max(np.flatnonzero(col), default=-1) for col in crop.T], dtype=np.int64
        ).reshape(-1)
        np.testing.assert_array_equal(got, expected)

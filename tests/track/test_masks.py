"""Masks on the analysis grid: decoding, subsampling, moving and pairwise IoU against a
brute-force dense computation."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from streamseg.track.masks import grid_masks, grid_stride, moved_origins, pair_mask_iou

HW = (60, 90)


def _random_masks(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n blobby masks (a random box, pixels kept with probability 0.7) and their boxes."""
    dense = np.zeros((n, *HW), dtype=bool)
    xyxy = np.zeros((n, 4), dtype=np.float32)
    for i in range(n):
        x1, y1 = rng.integers(0, 60), rng.integers(0, 35)
        w, h = rng.integers(5, 30), rng.integers(5, 25)
        dense[i, y1 : y1 + h, x1 : x1 + w] = rng.random((h, w)) < 0.7
        ys, xs = np.nonzero(dense[i])
        xyxy[i] = [xs.min(), ys.min(), xs.max(), ys.max()]
    return dense, xyxy


def _dense_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def _shift(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """mask moved by (dx, dy) pixels, what leaves the frame is lost."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    src = mask[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
    out[max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = src
    return out


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("form", ["compact", "dense"])
def test_pair_iou_matches_brute_force(stride: int, form: str) -> None:
    rng = np.random.default_rng(stride)
    dense, xyxy = _random_masks(rng, 12)
    mask = sv.CompactMask.from_dense(dense, xyxy, image_shape=HW) if form == "compact" else dense
    grid = grid_masks(mask, xyxy, stride)
    pairs = np.array([(i, j) for i in range(12) for j in range(12)], dtype=np.intp)
    got = pair_mask_iou(grid, grid, pairs)
    sampled = dense[:, ::stride, ::stride]  # what the grid sees: every stride-th pixel
    want = [_dense_iou(sampled[i], sampled[j]) for i, j in pairs]
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert got[0] == pytest.approx(1.0)
    assert (got[[i * 12 + i for i in range(12)]] == 1.0).all()
    np.testing.assert_array_equal(grid.area, sampled.reshape(12, -1).sum(axis=1))


@pytest.mark.parametrize(("dx", "dy"), [(0, 0), (3, -2), (-7, 5), (40, 0)])
def test_moved_masks_match_shifted_dense_masks(dx: int, dy: int) -> None:
    rng = np.random.default_rng(7)
    dense, xyxy = _random_masks(rng, 6)
    grid = grid_masks(sv.CompactMask.from_dense(dense, xyxy, image_shape=HW), xyxy, 1)
    ref = np.array([[30.0, 30.0, 10.0, 10.0]] * 6)
    pred = ref + np.array([dx, dy, 0, 0])
    moved = grid.rows(np.arange(6))
    moved = type(grid)(
        1, moved.crops, moved_origins(grid.origin, 1, ref, pred), grid.area, grid.size_hw
    )
    pairs = np.array([(i, j) for i in range(6) for j in range(6)], dtype=np.intp)
    got = pair_mask_iou(moved, grid, pairs)
    # Brute force on a canvas big enough that nothing is cut off by the frame edge.
    pad = 50
    big = np.zeros((6, HW[0] + 2 * pad, HW[1] + 2 * pad), dtype=bool)
    big[:, pad:-pad, pad:-pad] = dense
    shifted = np.stack([_shift(m, dx, dy) for m in big])
    want = [_dense_iou(shifted[i], big[j]) for i, j in pairs]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_empty_masks_and_no_overlap_give_zero() -> None:
    dense = np.zeros((3, *HW), dtype=bool)
    dense[0, 5:10, 5:10] = True
    dense[2, 40:50, 60:80] = True
    xyxy = np.array([[5, 5, 9, 9], [20, 20, 30, 30], [60, 40, 79, 49]], dtype=np.float32)
    grid = grid_masks(dense, xyxy, 1)
    assert grid.area.tolist() == [25, 0, 200]
    assert grid.crops[1].size == 0 and grid.size_hw[1].tolist() == [0, 0]
    got = pair_mask_iou(grid, grid, np.array([[0, 1], [1, 1], [0, 2], [2, 2]]))
    assert got.tolist() == [0.0, 0.0, 0.0, 1.0]
    assert pair_mask_iou(grid, grid, np.zeros((0, 2), dtype=np.intp)).shape == (0,)


def test_dense_masks_are_cropped_to_their_boxes() -> None:
    dense = np.zeros((1, *HW), dtype=bool)
    dense[0, 10:20, 10:20] = True
    dense[0, 50:55, 80:85] = True  # outside the box: ignored
    grid = grid_masks(dense, np.array([[10, 10, 19, 19]], dtype=np.float32), 1)
    assert grid.area.tolist() == [100] and grid.origin.tolist() == [[10, 10]]


def test_compact_fallback_decoder_gives_the_same_crops() -> None:
    """If CompactMask's internals change, the public crop() path takes over, same result."""
    rng = np.random.default_rng(3)
    dense, xyxy = _random_masks(rng, 5)
    fast = grid_masks(sv.CompactMask.from_dense(dense, xyxy, image_shape=HW), xyxy, 2)
    odd = sv.CompactMask.from_dense(dense, xyxy, image_shape=HW)
    odd._rles = tuple(odd._rles)  # not the list the fast path expects
    slow = grid_masks(odd, xyxy, 2)
    np.testing.assert_array_equal(fast.area, slow.area)
    np.testing.assert_array_equal(fast.origin, slow.origin)
    for a, b in zip(fast.crops, slow.crops, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("hw", "resolution", "stride"),
    [((360, 640), 640, 1), ((360, 640), 320, 2), ((1080, 1920), 640, 3), ((2160, 3840), 320, 12)],
)
def test_grid_stride(hw: tuple[int, int], resolution: int, stride: int) -> None:
    assert grid_stride(hw, resolution) == stride


def test_bad_masks_are_rejected() -> None:
    with pytest.raises(ValueError, match="expected a CompactMask or an"):
        grid_masks(np.zeros((4, 4), dtype=bool), np.zeros((1, 4)), 1)
    with pytest.raises(ValueError, match="expected 2 masks"):
        grid_masks(np.zeros((1, 4, 4), dtype=bool), np.zeros((2, 4)), 1)

"""Masks as the tracker compares them: cropped, on a coarse grid, moved by predicted motion.

Masks reach the tracker as ``supervision.CompactMask`` (crops of their boxes, run-length encoded)
or as dense (N, H, W) arrays. Each is turned once per frame into a :class:`GridMasks` row: a
bool crop on the *analysis grid* (the frame subsampled by an integer ``stride``, see
:func:`grid_stride`) and the grid position of the crop's top-left cell. Comparing two masks then
only touches the overlap of their crops (:func:`pair_mask_iou`), and moving a track's last mask
to where the motion model expects it is a change of origin (:func:`moved_origins`).

Grid coordinates: cell ``(gx, gy)`` samples frame pixel ``(gx * stride, gy * stride)``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import supervision as sv

from streamseg.rle import decode_compact_crops

logger = logging.getLogger(__name__)

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

NO_MASK: BoolArray = np.zeros((0, 0), dtype=np.bool_)
"""The crop of a detection or track without mask pixels (its area is 0)."""


@dataclass(frozen=True)
class GridMasks:
    """N masks on the analysis grid.

    Attributes:
        stride: frame pixels per grid cell along each axis, >= 1.
        crops: N bool arrays (h, w), each covering its mask's extent (or its box);
            :data:`NO_MASK` (0 x 0) for a detection without mask pixels.
        origin: (N, 2) int64 grid ``(gx, gy)`` of each crop's top-left cell.
        area: (N,) int64 set cells of each crop (0: no mask).
        size_hw: (N, 2) int64 ``(h, w)`` of each crop in cells (0, 0 where there is none).
    """

    stride: int
    crops: list[BoolArray]
    origin: IntArray
    area: IntArray
    size_hw: IntArray

    def __len__(self) -> int:
        """Number of masks."""
        return len(self.crops)

    @classmethod
    def empty(cls, stride: int) -> GridMasks:
        """No masks."""
        return cls(stride, [], np.zeros((0, 2), np.int64), np.zeros(0, np.int64), _no_sizes())

    def rows(self, index: npt.NDArray[np.intp]) -> GridMasks:
        """The masks at ``index`` (an index array), in that order."""
        return GridMasks(
            self.stride,
            [self.crops[i] for i in index.tolist()],
            self.origin[index],
            self.area[index],
            self.size_hw[index],
        )


def _no_sizes() -> IntArray:
    return np.zeros((0, 2), dtype=np.int64)


def grid_stride(image_hw: tuple[int, int], resolution: int) -> int:
    """The smallest integer stride that brings the frame's longest side to ``resolution`` cells.

    Args:
        image_hw: (height, width) of the frame, pixels.
        resolution: most cells wanted along the longest side, >= 1.

    Returns:
        The stride, >= 1 (1 when the frame is already small enough).
    """
    return max(1, math.ceil(max(image_hw) / max(1, resolution)))


def grid_masks(
    mask: sv.CompactMask | npt.NDArray[np.generic],
    xyxy: npt.NDArray[np.floating],
    stride: int,
) -> GridMasks:
    """Crop and subsample N masks onto the analysis grid.

    Args:
        mask: ``supervision.CompactMask`` or a dense (N, H, W) array (non-zero = set) in frame
            pixels. A dense mask is cropped to its box (pixels outside ``xyxy`` are ignored);
            a CompactMask keeps its own crops.
        xyxy: (N, 4) boxes, frame pixels (used for dense masks).
        stride: grid stride from :func:`grid_stride`, >= 1.

    Returns:
        The masks on the grid, in input order.

    Raises:
        ValueError: ``mask`` is neither a CompactMask nor a 3-D array, or its length differs from
            ``xyxy``'s.
    """
    if isinstance(mask, sv.CompactMask):
        crops_px, area_px = decode_compact_crops(mask)
        if len(crops_px) != len(xyxy):
            raise ValueError(f"mask: expected {len(xyxy)} masks (one per box), got {len(crops_px)}")
        offsets = np.asarray(mask.offsets, dtype=np.int64).reshape(-1, 2)
        if stride == 1:
            return _finish(crops_px, offsets, stride, area_px)
        # First crop row/column that falls on the grid, so every mask samples the same pixels.
        first = (-offsets) % stride
        subs = [
            c[fy::stride, fx::stride] for c, (fx, fy) in zip(crops_px, first.tolist(), strict=True)
        ]
        return _finish(subs, (offsets + first) // stride, stride, None)
    dense = np.asarray(mask)
    if dense.ndim != 3:
        raise ValueError(f"mask: expected a CompactMask or an (N, H, W) array, got {dense.shape}")
    crops_grid, origin = _dense_crops(dense, xyxy, stride)
    return _finish(crops_grid, origin, stride, None)


def _finish(
    crops: Sequence[BoolArray], origin: IntArray, stride: int, area: IntArray | None
) -> GridMasks:
    """Package grid crops; ``area`` (set cells per crop) is counted here when not given."""
    n = len(crops)
    if n == 0:
        return GridMasks.empty(stride)
    if area is None:
        area = np.fromiter((np.count_nonzero(c) for c in crops), dtype=np.int64, count=n)
    kept = [c if a else NO_MASK for c, a in zip(crops, area.tolist(), strict=True)]
    size_hw = np.array([c.shape for c in crops], dtype=np.int64).reshape(n, 2)
    size_hw[area == 0] = 0
    return GridMasks(stride, kept, origin, area, size_hw)


def _dense_crops(
    dense: npt.NDArray[np.generic], xyxy: npt.NDArray[np.floating], stride: int
) -> tuple[list[BoolArray], IntArray]:
    """Grid crops of dense masks inside their boxes, and the crops' grid origins."""
    n, height, width = dense.shape
    if len(xyxy) != n:
        raise ValueError(f"mask: expected {len(xyxy)} masks (one per box), got {n}")
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    x1 = np.clip(np.floor(boxes[:, 0]), 0, width - 1).astype(np.int64)
    y1 = np.clip(np.floor(boxes[:, 1]), 0, height - 1).astype(np.int64)
    x2 = np.clip(np.ceil(boxes[:, 2]), 0, width - 1).astype(np.int64)
    y2 = np.clip(np.ceil(boxes[:, 3]), 0, height - 1).astype(np.int64)
    gx1, gy1 = -(-x1 // stride), -(-y1 // stride)
    gx2, gy2 = x2 // stride, y2 // stride  # inclusive
    crops: list[BoolArray] = []
    bounds = np.stack((gx1, gy1, gx2, gy2), axis=1).tolist()
    for i, (a, b, c, d) in enumerate(bounds):
        rows = slice(b * stride, d * stride + 1, stride)
        cols = slice(a * stride, c * stride + 1, stride)
        crops.append(dense[i, rows, cols].astype(np.bool_, copy=False))
    return crops, np.stack((gx1, gy1), axis=1)


def moved_origins(
    origin: IntArray, stride: int, ref_cxcywh: FloatArray, pred_cxcywh: FloatArray
) -> IntArray:
    """Where masks land when their objects move from a reference box to a predicted box.

    Each mask is translated by the shift of its box centre, rounded to whole grid cells. It is
    not rescaled with the box: the box of a *visible* mask changes size mostly because part of
    the object gets hidden or uncovered, which scaling would get wrong (and in the synthetic
    benchmarks translation alone matched at least as many identities).

    Args:
        origin: (K, 2) int64 grid ``(gx, gy)`` of each mask's crop.
        stride: frame pixels per grid cell.
        ref_cxcywh: (K, 4) the boxes ``cx, cy, w, h`` (frame pixels) when the masks were seen.
        pred_cxcywh: (K, 4) the predicted boxes now, frame pixels.

    Returns:
        (K, 2) int64 the moved grid origins.
    """
    shift = (pred_cxcywh[:, :2] - ref_cxcywh[:, :2]) / stride
    return origin + np.floor(shift + 0.5).astype(np.int64)


def pair_mask_iou(
    a: GridMasks,
    b: GridMasks,
    pairs: npt.NDArray[np.intp],
) -> FloatArray:
    """Mask IoU of selected pairs, touching only the overlap of each pair's crops.

    Args:
        a: first set of masks (e.g. the tracks' moved masks).
        b: second set (e.g. the detections'), on the same grid (same stride).
        pairs: (K, 2) indices ``(i into a, j into b)``.

    Returns:
        (K,) float64 IoU in [0, 1]; 0 where either mask is empty or the crops do not overlap.
    """
    k = len(pairs)
    out = np.zeros(k, dtype=np.float64)
    if k == 0:
        return out
    ia, ib = pairs[:, 0], pairs[:, 1]
    a0, b0 = a.origin[ia], b.origin[ib]
    lo = np.maximum(a0, b0)  # (K, 2) x, y: the overlap window of the two crops
    hi = np.minimum(a0 + a.size_hw[ia, ::-1], b0 + b.size_hw[ib, ::-1])
    area_a, area_b = a.area[ia], b.area[ib]
    todo = np.flatnonzero(np.all(hi > lo, axis=1) & (area_a > 0) & (area_b > 0))
    if len(todo) == 0:
        return out
    # The window in each crop's own coordinates, as plain ints (numpy scalars slice slowly).
    windows = np.concatenate((lo - a0, hi - a0, lo - b0, hi - b0), axis=1)[todo].tolist()
    crops_a, crops_b = a.crops, b.crops
    count = np.count_nonzero
    inter = np.array(
        [
            count(crops_a[i][ay0:ay1, ax0:ax1] & crops_b[j][by0:by1, bx0:bx1])
            for i, j, (ax0, ay0, ax1, ay1, bx0, by0, bx1, by1) in zip(
                ia[todo].tolist(), ib[todo].tolist(), windows, strict=True
            )
        ],
        dtype=np.float64,
    )
    out[todo] = inter / (area_a[todo] + area_b[todo] - inter)
    return out

"""Run-length encoding of mask crops in CompactMask's (and uncompressed COCO's) convention.

``supervision.CompactMask`` stores each mask as the run lengths of its box crop scanned in
column-major (Fortran) order, starting with a run of ``False`` (0 when the first pixel is set).
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt
import supervision as sv

logger = logging.getLogger(__name__)


def encode_runs(
    flat: npt.NDArray[np.bool_], lengths: npt.NDArray[np.integer]
) -> list[npt.NDArray[np.int32]]:
    """Run-length encode concatenated crops in one pass.

    Args:
        flat: (sum(lengths),) bool, the crops one after another, each flattened
            column-major (``crop.T.ravel()`` / ``crop.ravel(order="F")``).
        lengths: (N,) int, pixel count of each crop, each >= 1.

    Returns:
        N int32 arrays of run lengths, alternating False/True, starting with False.

    Raises:
        ValueError: ``lengths`` has a value < 1 or does not add up to ``flat.size``.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    flat = np.asarray(flat, dtype=np.bool_).ravel()
    n = int(lengths.size)
    if n == 0:
        if flat.size:
            raise ValueError(f"lengths: expected crop sizes adding up to {flat.size}, got none")
        return []
    if int(lengths.min()) < 1 or int(lengths.sum()) != flat.size:
        raise ValueError(
            f"lengths: expected N >= 1 values adding up to flat.size = {flat.size}, got "
            f"min {int(lengths.min())}, sum {int(lengths.sum())}"
        )
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    pixels = flat.view(np.uint8)
    # Runs break at every value change and at every crop start (crops never share a run).
    breaks = np.empty(flat.size, dtype=np.bool_)
    breaks[0] = True
    np.not_equal(pixels[1:], pixels[:-1], out=breaks[1:])
    breaks[starts] = True
    boundaries = np.flatnonzero(breaks)
    runs = np.diff(np.append(boundaries, flat.size))
    runs_per_crop = np.bincount(np.searchsorted(starts, boundaries, side="right") - 1, minlength=n)
    first_set = flat[starts]
    first_run = np.cumsum(runs_per_crop) - runs_per_crop
    runs = np.insert(runs, first_run[first_set], 0)
    runs_per_crop = runs_per_crop + first_set
    return np.split(runs.astype(np.int32), np.cumsum(runs_per_crop)[:-1])


def crop_rle_counts(crop: npt.NDArray[np.bool_]) -> npt.NDArray[np.int32]:
    """Run lengths of one 2-D bool crop, column-major, starting with a run of False.

    Args:
        crop: (h, w) bool.

    Returns:
        (K,) int32 run lengths that sum to h * w (empty for an empty crop).
    """
    if crop.size == 0:
        return np.zeros(0, dtype=np.int32)
    return encode_runs(np.asarray(crop, dtype=bool).ravel(order="F"), np.array([crop.size]))[0]


def decode_crop_rle(counts: npt.ArrayLike, size_hw: tuple[int, int]) -> npt.NDArray[np.bool_]:
    """Inverse of :func:`crop_rle_counts`: (h, w) bool from column-major run lengths."""
    runs = np.asarray(counts, dtype=np.int64)
    h, w = size_hw
    if runs.sum() != h * w:
        raise ValueError(f"run lengths sum to {int(runs.sum())}, expected h*w = {h * w}")
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    return np.repeat(values, runs).reshape((h, w), order="F")


def decode_compact_crops(
    mask: sv.CompactMask,
) -> tuple[list[npt.NDArray[np.bool_]], npt.NDArray[np.int64] | None]:
    """Decode every crop of a CompactMask, in one vectorized pass when possible.

    ``CompactMask.crop(i)`` decodes one crop per Python call (~30 µs each); reading the run
    lengths directly decodes all N with a single ``np.repeat`` and counts their pixels from the
    runs. supervision is pinned to 0.31.x; if its internals ever differ, or the runs do not add
    up to the crop sizes, this falls back to the public ``crop(i)``.

    Returns:
        The (h, w) crops in frame pixels, and their set-pixel counts (None on the fallback path).
    """
    n = len(mask)
    if n == 0:
        return [], np.zeros(0, dtype=np.int64)
    rles = getattr(mask, "_rles", None)
    shapes = getattr(mask, "_crop_shapes", None)
    if not isinstance(rles, list) or not isinstance(shapes, np.ndarray) or len(rles) != n:
        return [mask.crop(i) for i in range(n)], None
    lengths = np.fromiter((len(r) for r in rles), dtype=np.int64, count=n)
    hw = shapes.astype(np.int64).reshape(n, 2)
    sizes = hw[:, 0] * hw[:, 1]
    if lengths.min() < 1:
        return [mask.crop(i) for i in range(n)], None
    counts = np.concatenate(rles).astype(np.int64, copy=False)
    starts = np.cumsum(lengths) - lengths
    if not np.array_equal(np.add.reduceat(counts, starts), sizes):
        return [mask.crop(i) for i in range(n)], None
    # Runs alternate False/True within each crop, starting with False.
    is_set = ((np.arange(len(counts)) - np.repeat(starts, lengths)) & 1).astype(np.bool_)
    area = np.add.reduceat(np.where(is_set, counts, 0), starts)
    flat = np.repeat(is_set, counts)
    ends = np.cumsum(sizes).tolist()
    out: list[npt.NDArray[np.bool_]] = []
    begin = 0
    for (h, w), end in zip(hw.tolist(), ends, strict=True):
        out.append(flat[begin:end].reshape(w, h).T)  # column-major crop
        begin = end
    return out, area


def compact_column_bottoms(mask: sv.CompactMask) -> list[npt.NDArray[np.int64]] | None:
    """Row of the lowest set pixel in each column of every crop, straight from the run lengths.

    Where an object stands is the lowest pixel of each of its columns; computing it for every
    object of a frame in one vectorized pass over the runs avoids decoding the crops.

    Args:
        mask: N crops; supervision 0.31.x internals are read (as :func:`decode_compact_crops`).

    Returns:
        N int64 arrays of shape (w_i,): crop-relative row of the lowest set pixel of each
        column, -1 for an empty column; or None when the internals are not as expected (use
        the decoded crops instead).
    """
    n = len(mask)
    rles = getattr(mask, "_rles", None)
    shapes = getattr(mask, "_crop_shapes", None)
    if not isinstance(rles, list) or not isinstance(shapes, np.ndarray) or len(rles) != n:
        return None
    if n == 0:
        return []
    lengths = np.fromiter((len(r) for r in rles), dtype=np.int64, count=n)
    if lengths.min() < 1:
        return None
    hw = shapes.astype(np.int64).reshape(n, 2)
    heights, widths = hw[:, 0], hw[:, 1]
    counts = np.concatenate(rles).astype(np.int64, copy=False)
    first_run = np.cumsum(lengths) - lengths
    if not np.array_equal(np.add.reduceat(counts, first_run), heights * widths):
        return None
    crop_of_run = np.repeat(np.arange(n), lengths)
    run_end = np.cumsum(counts)  # exclusive end, in the crops' concatenated pixel order
    crop_start = np.cumsum(heights * widths) - heights * widths
    local_end = run_end - crop_start[crop_of_run]  # exclusive, crop-relative
    local_start = local_end - counts
    is_set = ((np.arange(len(counts)) - first_run[crop_of_run]) & 1).astype(bool) & (counts > 0)
    crop = crop_of_run[is_set]
    h = heights[crop]
    last = local_end[is_set] - 1
    col_last, row_last = last // h, last % h
    col_first = local_start[is_set] // h
    column_base = np.cumsum(widths) - widths
    total = int(widths.sum())
    bottoms = np.full(total, -1, dtype=np.int64)
    np.maximum.at(bottoms, column_base[crop] + col_last, row_last)
    # A run that goes on into the next column covered the bottom of every column it left.
    through = np.zeros(total + 1, dtype=np.int64)
    np.add.at(through, column_base[crop] + col_first, 1)
    np.add.at(through, column_base[crop] + col_last, -1)
    full = np.cumsum(through[:-1]) > 0
    bottoms[full] = np.repeat(heights, widths)[full] - 1
    return np.split(bottoms, np.cumsum(widths)[:-1].tolist())

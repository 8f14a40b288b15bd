"""Run-length encoding of mask crops in CompactMask's (and uncompressed COCO's) convention.

``supervision.CompactMask`` stores each mask as the run lengths of its box crop scanned in
column-major (Fortran) order, starting with a run of ``False`` (0 when the first pixel is set).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import supervision as sv

from streamseg import accel

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


@dataclass(frozen=True)
class CompactRuns:
    """The run lengths of every crop of a ``CompactMask``, concatenated and checked once.

    Each crop's runs alternate False/True from a False run; a crop with an odd number of runs
    gets an empty True run at its end, so that in the concatenation run ``2t`` is False and run
    ``2t + 1`` is True.

    Attributes:
        counts: (2R,) int64 run lengths, crop after crop.
        run_end: (2R,) int64 exclusive end of each run, in pixels of the crops one after
            another (each crop flattened column-major).
        first_pair: (N + 1,) int64: crop i's runs are
            ``counts[2 * first_pair[i] : 2 * first_pair[i + 1]]``.
        heights: (N,) int64 crop heights.
        widths: (N,) int64 crop widths.
    """

    counts: npt.NDArray[np.int64]
    run_end: npt.NDArray[np.int64]
    first_pair: npt.NDArray[np.int64]
    heights: npt.NDArray[np.int64]
    widths: npt.NDArray[np.int64]


_EMPTY_SET_RUN = np.zeros(1, dtype=np.int64)


def compact_runs(mask: sv.CompactMask) -> CompactRuns | None:
    """Read the run lengths of every crop of ``mask`` (supervision 0.31.x internals).

    supervision is pinned to 0.31.x; if its internals ever differ, or the runs do not add up
    to the crop sizes, this returns None (use the public ``mask.crop(i)`` instead).
    """
    n = len(mask)
    rles = getattr(mask, "_rles", None)
    shapes = getattr(mask, "_crop_shapes", None)
    if not isinstance(rles, list) or not isinstance(shapes, np.ndarray) or len(rles) != n:
        return None
    hw = shapes.astype(np.int64).reshape(n, 2)
    parts: list[npt.NDArray[np.integer]] = []
    first_pair = [0]
    for runs in rles:
        count = len(runs)
        if count < 1:
            return None
        parts.append(runs)
        if count & 1:
            parts.append(_EMPTY_SET_RUN)
            count += 1
        first_pair.append(first_pair[-1] + count // 2)
    counts = np.concatenate(parts).astype(np.int64, copy=False) if parts else np.zeros(0, np.int64)
    run_end = np.cumsum(counts)
    pairs = np.array(first_pair, dtype=np.int64)
    if n and not (run_end[2 * pairs[1:] - 1] == np.cumsum(hw[:, 0] * hw[:, 1])).all():
        return None
    # Contiguous columns: the compiled kernels take them as they are (streamseg.accel).
    return CompactRuns(counts, run_end, pairs, hw[:, 0].copy(), hw[:, 1].copy())


def decode_run_crop(runs: CompactRuns, i: int) -> npt.NDArray[np.bool_]:
    """Crop ``i`` of :func:`compact_runs`: (h, w) bool, frame pixels (a transposed view)."""
    counts = runs.counts[2 * int(runs.first_pair[i]) : 2 * int(runs.first_pair[i + 1])]
    values = np.zeros(counts.size, dtype=bool)
    values[1::2] = True
    return np.repeat(values, counts).reshape(int(runs.widths[i]), int(runs.heights[i])).T


def run_crop_areas(runs: CompactRuns) -> npt.NDArray[np.int64]:
    """(N,) int64 set pixels of each crop of :func:`compact_runs`."""
    if not runs.heights.size:
        return np.zeros(0, dtype=np.int64)
    return np.add.reduceat(runs.counts[1::2], runs.first_pair[:-1])


def run_window_sums(
    runs: CompactRuns,
    origins: npt.NDArray[np.integer],
    column_counts: npt.NDArray[np.integer],
) -> npt.NDArray[np.int64]:
    """For every crop of :func:`compact_runs`, how many of its set pixels a frame mask holds.

    All crops at once, straight from the runs (no crop is decoded): a set run covers pixel
    positions ``[start, end)`` of the crops flattened column-major one after another, and the
    mask pixels before a position are those of the earlier columns (a running sum over every
    crop's columns) plus those of its own column above it (``column_counts``).

    Args:
        runs: the crops' runs.
        origins: (N, 2) int ``(x, y)`` frame pixel of each crop's first column and row; every
            crop lies inside the frame.
        column_counts: (H + 1, W) int, ``[y, x]``: mask pixels of frame column ``x`` above row
            ``y`` (a cumulative sum down the columns, from a row of zeros).

    Returns:
        (N,) int64 set pixels of each crop on which the mask is set.
    """
    n = runs.heights.size
    if not n:
        return np.zeros(0, dtype=np.int64)
    origin = np.asarray(origins, dtype=np.int64).reshape(n, 2)
    compiled = accel.kernels()
    if compiled is not None:
        return compiled.window_sums(runs, origin, column_counts)
    widths = runs.widths
    # Every column of every crop, one after another: where its first and last rows end in
    # the flattened column_counts.
    flat = column_counts.reshape(-1)
    stride = column_counts.shape[1]
    column_first = np.cumsum(widths) - widths
    top = np.arange(int(widths.sum())) + np.repeat(
        origin[:, 1] * stride + origin[:, 0] - column_first, widths
    )
    if not top.size:
        return np.zeros(n, dtype=np.int64)  # no columns: no pixels
    above = flat[top].astype(np.int64)
    in_column = flat[top + np.repeat(runs.heights * stride, widths)] - above
    before = np.cumsum(in_column) - in_column
    # Mask pixels before each run boundary: in its crop, the boundary at position p is row
    # p - c * h of column c = (p - 1) // h (a boundary at a column's end reads that column to
    # its end: the same count as the next column's start).
    ends = runs.run_end
    pairs = runs.first_pair
    per_crop = 2 * (pairs[1:] - pairs[:-1])  # boundaries of each crop
    area = runs.heights * widths
    local = ends - np.repeat(np.cumsum(area) - area, per_crop)
    h = np.repeat(np.maximum(runs.heights, 1), per_crop)
    col = np.maximum(local - 1, 0) // h
    column = np.repeat(column_first, per_crop) + col
    if not widths[-1]:
        # A crop without columns reads the next crop's first (the same count at both its
        # boundaries); the last one reads the column before it instead.
        np.minimum(column, top.size - 1, out=column)
    at = flat[top[column] + (local - col * h) * stride]
    prefix = (before - above)[column] + at
    # Run 2t ends where set run 2t + 1 starts.
    return np.asarray(np.add.reduceat(prefix[1::2] - prefix[0::2], runs.first_pair[:-1]))


def decode_compact_crops(
    mask: sv.CompactMask,
) -> tuple[list[npt.NDArray[np.bool_]], npt.NDArray[np.int64] | None]:
    """Decode every crop of a CompactMask, in one vectorized pass when possible.

    ``CompactMask.crop(i)`` decodes one crop per Python call; reading the run lengths
    (:func:`compact_runs`) decodes all N with a single ``np.repeat`` and counts their pixels
    from the runs, falling back to the public ``crop(i)`` when the internals are not as
    expected.

    Returns:
        The (h, w) crops in frame pixels, and their set-pixel counts (None on the fallback path).
    """
    n = len(mask)
    if n == 0:
        return [], np.zeros(0, dtype=np.int64)
    runs = compact_runs(mask)
    if runs is None:
        return [mask.crop(i) for i in range(n)], None
    values = np.zeros(runs.counts.size, dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, runs.counts)
    ends = np.cumsum(runs.heights * runs.widths).tolist()
    out: list[npt.NDArray[np.bool_]] = []
    begin = 0
    for h, w, end in zip(runs.heights.tolist(), runs.widths.tolist(), ends, strict=True):
        out.append(flat[begin:end].reshape(w, h).T)  # column-major crop
        begin = end
    return out, run_crop_areas(runs)


def run_bottoms_at(
    runs: CompactRuns, crop: npt.NDArray[np.int64], column: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Row of the lowest set pixel of some columns of the crops, straight from the runs.

    Where an object stands is the lowest pixel of each of its columns; reading it from the
    runs for every object of a frame in one vectorized pass avoids decoding the crops.

    Args:
        runs: the crops' runs.
        crop, column: (M,) int64, which columns: crop ``crop[j]``'s column ``column[j]``
            (in ``[0, width)``), in any order.

    Returns:
        (M,) int64 crop-relative row of each column's lowest set pixel, -1 for an empty column.
    """
    compiled = accel.kernels()
    if compiled is not None:
        return compiled.bottoms_at(runs, crop, column)
    set_start, set_end = runs.run_end[0::2], runs.run_end[1::2]
    nonempty = set_end > set_start
    if not nonempty.all():
        set_start, set_end = set_start[nonempty], set_end[nonempty]
    # A column's lowest set pixel is the last set pixel at or before the column's last pixel:
    # in the last set run that starts by then (runs and columns are both in pixel order).
    area = runs.heights * runs.widths
    column_h = runs.heights[crop]
    column_first = (np.cumsum(area) - area)[crop] + column * column_h
    column_last = column_first + column_h - 1
    run = np.searchsorted(set_start, column_last, side="right") - 1
    set_end = np.append(set_end, -1)  # run -1 (no set run yet) reads this: no pixel
    rows = np.minimum(set_end[run] - 1, column_last) - column_first
    np.maximum(rows, -1, out=rows)  # the last set pixel is in an earlier column: empty column
    return rows

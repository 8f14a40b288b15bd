"""Run-length encoding of mask crops in CompactMask's (and uncompressed COCO's) convention.

``supervision.CompactMask`` stores each mask as the run lengths of its box crop scanned in
column-major (Fortran) order, starting with a run of ``False`` (0 when the first pixel is set).
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

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

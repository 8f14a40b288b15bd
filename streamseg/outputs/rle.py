"""Run-length encoding of binary mask crops in COCO (column-major) order."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def crop_rle_counts(crop: npt.NDArray[np.bool_]) -> npt.NDArray[np.int32]:
    """Run lengths of a 2-D bool crop, column-major, starting with a run of False.

    Args:
        crop: (h, w) bool.

    Returns:
        (K,) int32 run lengths that sum to h * w; the first run counts leading False pixels
        (0 when the crop starts with True). This is the layout ``supervision.CompactMask`` and
        uncompressed COCO RLE use.
    """
    flat = np.asarray(crop, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return np.zeros(0, dtype=np.int32)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(bounds)
    if flat[0]:
        counts = np.concatenate(([0], counts))
    return counts.astype(np.int32)


def decode_crop_rle(counts: npt.ArrayLike, size_hw: tuple[int, int]) -> npt.NDArray[np.bool_]:
    """Inverse of :func:`crop_rle_counts`: (h, w) bool from column-major run lengths."""
    runs = np.asarray(counts, dtype=np.int64)
    h, w = size_hw
    if runs.sum() != h * w:
        raise ValueError(f"run lengths sum to {int(runs.sum())}, expected h*w = {h * w}")
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    return np.repeat(values, runs).reshape((h, w), order="F")

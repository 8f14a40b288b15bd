"""Similarities between tracks and detections, and the assignment that pairs them.

The tracker's cost is pluggable by name (STYLE.md): :data:`SIMILARITIES` maps ``"box"`` and
``"mask"`` to the function that fuses box IoU and mask IoU; :func:`similarity_by_name` raises a
``ValueError`` that lists the valid names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import lap
import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

UNMATCHABLE_COST = 1e6
"""Cost given to pairs that must not match (different class, no overlap); far above any real
cost in [0, 1], so the assignment never prefers them."""


def box_iou(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """IoU of every pair of boxes.

    Args:
        a: (N, 4) boxes ``x1, y1, x2, y2``.
        b: (M, 4) boxes, same frame.

    Returns:
        (N, M) float64 IoU in [0, 1] (0 for degenerate boxes).
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    wh = np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2])
    np.maximum(wh, 0.0, out=wh)
    inter = wh[..., 0] * wh[..., 1]
    size_a = np.maximum(a[:, 2:] - a[:, :2], 0.0)
    size_b = np.maximum(b[:, 2:] - b[:, :2], 0.0)
    union = (size_a[:, 0] * size_a[:, 1])[:, None] + (size_b[:, 0] * size_b[:, 1])[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def fuse_box_only(box: FloatArray, mask: FloatArray | None, mask_weight: float) -> FloatArray:
    """The ``box`` similarity: box IoU alone (``mask`` and ``mask_weight`` are ignored)."""
    return box


def fuse_box_and_mask(box: FloatArray, mask: FloatArray | None, mask_weight: float) -> FloatArray:
    """The ``mask`` similarity: ``(1 - w) * box IoU + w * mask IoU``.

    Args:
        box: (N, M) box IoU.
        mask: (N, M) mask IoU, NaN where either side has no mask (those pairs fall back to box
            IoU alone); ``None`` when no pair has masks.
        mask_weight: ``w`` in [0, 1].

    Returns:
        (N, M) float64 similarity in [0, 1].
    """
    if mask is None or mask_weight <= 0:
        return box
    # NaN pairs give NaN here and are replaced by their box IoU.
    return np.where(np.isnan(mask), box, (1.0 - mask_weight) * box + mask_weight * mask)


Similarity = Callable[[FloatArray, FloatArray | None, float], FloatArray]
"""``(box_iou, mask_iou or None, mask_weight) -> similarity``, all (N, M)."""

SIMILARITIES: dict[str, Similarity] = {"box": fuse_box_only, "mask": fuse_box_and_mask}
"""Similarity functions by the name used in ``tracker.type``."""


def similarity_by_name(name: str) -> Similarity:
    """The similarity function called ``name``.

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    try:
        return SIMILARITIES[name]
    except KeyError:
        valid = ", ".join(sorted(SIMILARITIES))
        raise ValueError(f"similarity: expected one of {valid}, got {name!r}") from None


@dataclass(frozen=True)
class Assignment:
    """Result of :func:`assign`.

    Attributes:
        matches: (K, 2) intp ``(row, column)`` pairs.
        unmatched_rows: (R,) intp rows left without a partner, ascending.
        unmatched_cols: (C,) intp columns left without a partner, ascending.
    """

    matches: IntArray
    unmatched_rows: IntArray
    unmatched_cols: IntArray

    @classmethod
    def none(cls, n: int, m: int) -> Assignment:
        """No pair matched: every one of ``n`` rows and ``m`` columns left over."""
        return cls(
            np.zeros((0, 2), dtype=np.intp),
            np.arange(n, dtype=np.intp),
            np.arange(m, dtype=np.intp),
        )


def assign(similarity: FloatArray, threshold: float, allowed: npt.NDArray[np.bool_]) -> Assignment:
    """Optimal one-to-one pairing (Jonker-Volgenant, ``lap.lapjv``) maximizing total similarity.

    Args:
        similarity: (N, M) similarity in [0, 1].
        threshold: a pair matches only if its similarity is at least this.
        allowed: (N, M) bool, pairs that may match at all (same class, overlapping boxes).

    Returns:
        The matches and what is left over on each side.
    """
    n, m = similarity.shape
    if n == 0 or m == 0:
        return Assignment.none(n, m)
    ok = allowed & (similarity >= threshold)
    if not ok.any():
        return Assignment.none(n, m)
    if (ok.sum(axis=0) <= 1).all() and (ok.sum(axis=1) <= 1).all():
        # No row or column has a choice to make: every admissible pair is in the optimum.
        rows, cols = np.nonzero(ok)
        return _assignment(rows, cols, n, m)
    cost = np.where(ok, 1.0 - similarity, UNMATCHABLE_COST)
    # cost_limit pads the problem with "no match" options, so a row may stay unmatched rather
    # than take a pair above the limit; the exact threshold is re-applied after.
    _, row_to_col, _ = lap.lapjv(cost, extend_cost=True, cost_limit=1.0 - threshold + 1e-9)
    rows = np.flatnonzero(row_to_col >= 0)
    cols = row_to_col[rows].astype(np.intp)
    good = ok[rows, cols]
    return _assignment(rows[good], cols[good], n, m)


def _assignment(rows: IntArray, cols: IntArray, n: int, m: int) -> Assignment:
    """Package matched ``rows``/``cols`` of an (n, m) problem with what is left unmatched."""
    free_rows = np.ones(n, dtype=bool)
    free_rows[rows] = False
    free_cols = np.ones(m, dtype=bool)
    free_cols[cols] = False
    return Assignment(
        np.stack((rows, cols), axis=1).astype(np.intp),
        np.flatnonzero(free_rows).astype(np.intp),
        np.flatnonzero(free_cols).astype(np.intp),
    )

"""Compiled (numba) versions of the rules' hot loops, loaded by :func:`streamseg.accel.kernels`.

Each kernel computes exactly what its numpy counterpart does (named in its docstring), in the
same floating-point operations, so the two paths agree bit for bit; ``tests/test_accel.py``
checks that on random inputs. Inputs are contiguous int64 / float64 arrays, as the callers
build them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt

from streamseg.rle import CompactRuns

logger = logging.getLogger(__name__)

_F = TypeVar("_F", bound=Callable[..., Any])


_OPTIONS: dict[str, Any] = {"nogil": True, "boundscheck": True}
"""numba options of every kernel. Bounds are checked, so that an index out of range raises
IndexError, as numpy does, instead of reading stray memory."""


def _jit(function: _F) -> _F:
    """``numba.njit`` with :data:`_OPTIONS`, cached on disk where numba finds a writable place
    for it (:mod:`streamseg.accel`), compiled afresh in each process where it finds none."""
    try:
        return cast(_F, numba.njit(cache=True, **_OPTIONS)(function))
    except RuntimeError as exc:  # numba: "cannot cache function ...: no locator available"
        logger.debug("%s compiles in every process: %s", function.__name__, exc)
        return cast(_F, numba.njit(**_OPTIONS)(function))


def _i64(array: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """``array`` as the kernels take it (no copy when it already is): one compiled version per
    kernel, never a second compilation in the middle of a stream."""
    return np.ascontiguousarray(array, dtype=np.int64)


def _i32(array: npt.NDArray[Any]) -> npt.NDArray[np.int32]:
    """:func:`_i64` for int32 (a zone's column counts)."""
    return np.ascontiguousarray(array, dtype=np.int32)


def _f64(array: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """:func:`_i64` for float64."""
    return np.ascontiguousarray(array, dtype=np.float64)


@_jit
def _maximum(a: float, b: float) -> float:
    """``np.maximum`` of two floats: NaN if either is (the builtin ``max`` keeps ``a``)."""
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return a if a >= b else b


@_jit
def _minimum(a: float, b: float) -> float:
    """``np.minimum`` of two floats: NaN if either is."""
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return a if a <= b else b


@_jit
def _window_sums(
    run_end: npt.NDArray[np.int64],
    first_pair: npt.NDArray[np.int64],
    heights: npt.NDArray[np.int64],
    origins: npt.NDArray[np.int64],
    column_counts: npt.NDArray[np.integer],
    out: npt.NDArray[np.int64],
) -> None:
    base = 0
    for i in range(heights.size):
        h = heights[i]
        ox = origins[i, 0]
        oy = origins[i, 1]
        total = 0
        for t in range(first_pair[i], first_pair[i + 1]):
            # Set run t covers crop positions [start, end), column-major: column by column.
            position = run_end[2 * t] - base
            end = run_end[2 * t + 1] - base
            while position < end:
                column = position // h
                row = position - column * h
                stop = min(end - column * h, h)
                total += (
                    column_counts[oy + stop, ox + column] - column_counts[oy + row, ox + column]
                )
                position = column * h + stop
        out[i] = total
        if first_pair[i + 1] > first_pair[i]:
            base = run_end[2 * first_pair[i + 1] - 1]


def window_sums(
    runs: CompactRuns, origins: npt.NDArray[np.int64], column_counts: npt.NDArray[np.integer]
) -> npt.NDArray[np.int64]:
    """:func:`streamseg.rle.run_window_sums`: (N,) int64 set pixels of each crop on which the
    mask of ``column_counts`` ((H + 1, W) cumulative mask pixels down each frame column) is
    set; ``origins``: (N, 2) ``(x, y)`` frame pixel of each crop's first column and row."""
    out = np.empty(runs.heights.size, dtype=np.int64)
    _window_sums(
        _i64(runs.run_end),
        _i64(runs.first_pair),
        _i64(runs.heights),
        _i64(origins),
        _i32(column_counts),
        out,
    )
    return out


@_jit
def _area_starts(heights: npt.NDArray[np.int64], widths: npt.NDArray[np.int64]) -> Any:
    """(N,) int64 first pixel of each crop in the crops flattened one after another."""
    starts = np.empty(heights.size, dtype=np.int64)
    done = 0
    for i in range(heights.size):
        starts[i] = done
        done += heights[i] * widths[i]
    return starts


@_jit
def _lowest_row(
    run_end: npt.NDArray[np.int64], first_run: int, end_run: int, first: int, last: int
) -> int:
    """Row (from ``first``) of the last set pixel at or before ``last``, among set runs
    ``first_run`` .. ``end_run - 1``; -1 when it lies before ``first`` (an empty column)."""
    # The last set run that starts at or before the column's last pixel.
    lo = first_run
    hi = end_run
    while lo < hi:
        mid = (lo + hi) // 2
        if run_end[2 * mid] <= last:
            lo = mid + 1
        else:
            hi = mid
    t = lo - 1
    while t >= first_run:
        if run_end[2 * t + 1] > run_end[2 * t]:  # an empty set run holds no pixel
            return max(min(run_end[2 * t + 1] - 1, last) - first, -1)
        t -= 1
    return -1


@_jit
def _bottoms_at(
    run_end: npt.NDArray[np.int64],
    first_pair: npt.NDArray[np.int64],
    heights: npt.NDArray[np.int64],
    widths: npt.NDArray[np.int64],
    crop: npt.NDArray[np.int64],
    column: npt.NDArray[np.int64],
    out: npt.NDArray[np.int64],
) -> None:
    area_start = _area_starts(heights, widths)
    for j in range(crop.size):
        i = crop[j]
        first = area_start[i] + column[j] * heights[i]
        out[j] = _lowest_row(
            run_end, first_pair[i], first_pair[i + 1], first, first + heights[i] - 1
        )


def bottoms_at(
    runs: CompactRuns, crop: npt.NDArray[np.int64], column: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """:func:`streamseg.rle.run_bottoms_at`: (M,) int64 crop-relative row of the lowest set
    pixel of crop ``crop[j]``'s column ``column[j]``, -1 for an empty column."""
    crop, column = _i64(crop), _i64(column)
    out = np.empty(crop.size, dtype=np.int64)
    _bottoms_at(
        _i64(runs.run_end),
        _i64(runs.first_pair),
        _i64(runs.heights),
        _i64(runs.widths),
        crop,
        column,
        out,
    )
    return out


@_jit
def _footprints(
    run_end: npt.NDArray[np.int64],
    first_pair: npt.NDArray[np.int64],
    heights: npt.NDArray[np.int64],
    widths: npt.NDArray[np.int64],
    rows: npt.NDArray[np.int64],
    boxes: npt.NDArray[np.int64],
    max_points: int,
    points: npt.NDArray[np.float64],
    offsets: npt.NDArray[np.int64],
) -> int:
    area_start = _area_starts(heights, widths)
    p = 0
    for k in range(rows.size):
        offsets[k] = p
        i = rows[k]
        h = heights[i]
        w = widths[i]
        kept = min(w, max_points)
        spread = max(kept - 1, 1)
        for t in range(kept):
            column = t * (w - 1) // spread  # sample_columns
            first = area_start[i] + column * h
            bottom = _lowest_row(run_end, first_pair[i], first_pair[i + 1], first, first + h - 1)
            if bottom >= 0:
                points[p, 0] = column + boxes[k, 0]
                points[p, 1] = bottom + boxes[k, 1]
                p += 1
    offsets[rows.size] = p
    return p


def footprints(
    runs: CompactRuns, rows: npt.NDArray[np.int64], boxes: npt.NDArray[np.integer], max_points: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """:meth:`streamseg.rules.measures.FrameObjects.footprints` from the runs
    (:func:`~streamseg.rules.footprints.sample_columns`, :func:`streamseg.rle.run_bottoms_at`
    and :func:`~streamseg.rules.footprints.footprint_points` in one pass).

    Args:
        runs: the crops' runs.
        rows: (N,) the crop of each object.
        boxes: (N, 4) each object's crop box ``x1, y1, x2, y2``, frame pixels.
        max_points: most columns kept per object.

    Returns:
        ``(points, offsets)``: (P, 2) float64 frame pixels, (N + 1,) int64 per-object offsets.
    """
    rows = _i64(rows)
    widths = _i64(runs.widths)
    room = int(np.minimum(widths[rows], max_points).sum()) if rows.size else 0
    points = np.empty((room, 2), dtype=np.float64)
    offsets = np.empty(rows.size + 1, dtype=np.int64)
    used = _footprints(
        _i64(runs.run_end),
        _i64(runs.first_pair),
        _i64(runs.heights),
        widths,
        rows,
        _i64(boxes),
        int(max_points),
        points,
        offsets,
    )
    return points[:used], offsets


@_jit
def _to_ground(
    points: npt.NDArray[np.float64],
    offsets: npt.NDArray[np.int64],
    h: npt.NDArray[np.float64],
    min_w: float,
    xy: npt.NDArray[np.float64],
    ground_offsets: npt.NDArray[np.int64],
    bounds: npt.NDArray[np.float64],
) -> int:
    q = 0
    for k in range(offsets.size - 1):
        ground_offsets[k] = q
        for p in range(offsets[k], offsets[k + 1]):
            px = points[p, 0]
            py = points[p, 1]
            w = h[2, 0] * px + h[2, 1] * py + h[2, 2]
            if not w > min_w:
                continue  # behind the camera
            gx = (h[0, 0] * px + h[0, 1] * py + h[0, 2]) / w
            gy = (h[1, 0] * px + h[1, 1] * py + h[1, 2]) / w
            xy[0, q] = gx
            xy[1, q] = gy
            if q == ground_offsets[k]:
                bounds[0, k] = gx
                bounds[1, k] = gy
                bounds[2, k] = gx
                bounds[3, k] = gy
            else:
                bounds[0, k] = _minimum(bounds[0, k], gx)
                bounds[1, k] = _minimum(bounds[1, k], gy)
                bounds[2, k] = _maximum(bounds[2, k], gx)
                bounds[3, k] = _maximum(bounds[3, k], gy)
            q += 1
    ground_offsets[offsets.size - 1] = q
    return q


def to_ground(
    points: npt.NDArray[np.float64],
    offsets: npt.NDArray[np.int64],
    homography: npt.NDArray[np.float64],
    min_w: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """:func:`streamseg.rules.footprints.to_ground`: ``(xy, offsets, bounds)`` of
    :class:`~streamseg.rules.footprints.GroundFootprints`."""
    n = offsets.size - 1
    xy = np.empty((2, len(points)), dtype=np.float64)
    ground_offsets = np.empty(n + 1, dtype=np.int64)
    bounds = np.full((4, n), np.nan)
    used = _to_ground(
        _f64(points), _i64(offsets), _f64(homography), float(min_w), xy, ground_offsets, bounds
    )
    return np.ascontiguousarray(xy[:, :used]), ground_offsets, bounds


@_jit
def _nearest_each(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    offsets: npt.NDArray[np.int64],
    bounds: npt.NDArray[np.float64],
    ks: npt.NDArray[np.int64],
    others: npt.NDArray[np.int64],
    limit: float,
    reach2: float,
    out_distance: npt.NDArray[np.float64],
    out_other: npt.NDArray[np.int64],
) -> None:
    within = np.empty(others.size, dtype=np.int64)  # the others within reach of k's bounds
    for r in range(ks.size):
        k = ks[r]
        out_other[r] = -1
        ax1 = bounds[0, k]
        ay1 = bounds[1, k]
        ax2 = bounds[2, k]
        ay2 = bounds[3, k]
        lowest = math.inf  # the smallest gap between bounds, when no pair is within reach
        count = 0
        if not math.isnan(ax1):
            for c in range(others.size):
                j = others[c]
                if j == k or math.isnan(bounds[0, j]):
                    continue
                # box_gaps2: maximum(maximum(.., ..), 0), squared per axis, then summed; a NaN
                # gap (non-finite bounds) is neither within reach nor the lowest.
                dx = _maximum(_maximum(bounds[0, j] - ax2, ax1 - bounds[2, j]), 0.0)
                dy = _maximum(_maximum(bounds[1, j] - ay2, ay1 - bounds[3, j]), 0.0)
                gap2 = dx * dx + dy * dy
                if gap2 < reach2:
                    within[count] = c
                    count += 1
                elif gap2 < lowest:
                    lowest = gap2
        if count == 0:
            out_distance[r] = math.sqrt(lowest)
            continue
        # Every point of k against every point of each other within reach: the first smallest
        # squared distance, by k's point, then the other's order in `others`.
        best = math.inf
        best_c = -1
        for p in range(offsets[k], offsets[k + 1]):
            px = x[p]
            py = y[p]
            for w in range(count):
                c = within[w]
                j = others[c]
                for q in range(offsets[j], offsets[j + 1]):
                    ex = px - x[q]
                    ey = py - y[q]
                    d2 = ex * ex + ey * ey
                    if d2 < best:
                        best = d2
                        best_c = c
        distance = math.sqrt(best)
        if best_c >= 0 and distance < limit:
            out_distance[r] = distance
            out_other[r] = others[best_c]
        else:
            out_distance[r] = limit


def nearest_each(
    xy: npt.NDArray[np.float64],
    offsets: npt.NDArray[np.int64],
    bounds: npt.NDArray[np.float64],
    ks: npt.NDArray[np.int64],
    others: npt.NDArray[np.int64],
    limit: float,
    reach2: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """:meth:`streamseg.rules.measures.FrameObjects.nearest_ground_each` on the footprints
    (:class:`streamseg.rules.footprints.GroundFootprints`).

    Returns:
        (len(ks),) float64 distances and (len(ks),) int64 the nearest of ``others`` (-1: none
        nearer than ``limit``, the distance then being the smallest gap between footprint
        bounds, ``limit`` or ``inf`` as the numpy path gives it).
    """
    ks, others = _i64(ks), _i64(others)
    distance = np.empty(ks.size, dtype=np.float64)
    other = np.empty(ks.size, dtype=np.int64)
    x, y = _f64(xy[0]), _f64(xy[1])
    _nearest_each(
        x,
        y,
        _i64(offsets),
        _f64(bounds),
        ks,
        others,
        float(limit),
        float(reach2),
        distance,
        other,
    )
    return distance, other


def warm() -> None:
    """Compile (or load from the cache) every kernel for the argument types the rules pass,
    so that the first frame does not wait for it (about 1.5 s cold, 0.2 s cached)."""
    one = np.ones(1, dtype=np.int64)
    zero = np.zeros(1, dtype=np.int64)
    # One 1x1 crop whose only pixel is set: a False run of 0 and a True run of 1.
    runs = CompactRuns(np.array([0, 1]), np.array([0, 1]), np.array([0, 1]), one, one)
    window_sums(runs, np.zeros((1, 2), np.int64), np.zeros((2, 1), np.int32))
    bottoms_at(runs, zero, zero)
    points, feet = footprints(runs, zero, np.zeros((1, 4), np.int64), 48)
    to_ground(points, feet, np.eye(3), 1e-12)
    offsets = np.array([0, 1, 2], dtype=np.int64)
    nearest_each(
        np.zeros((2, 2)), offsets, np.zeros((4, 2)), zero, one, 1.0, float(np.nextafter(1.0, 2.0))
    )

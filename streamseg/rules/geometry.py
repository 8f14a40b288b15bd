"""Zones and lines in frame pixels, their rasters, and the ground-plane homography.

Coordinates are frame pixels: ``x`` is the column, ``y`` the row (down), and the centre of pixel
``(row, col)`` is the point ``(col, row)`` (the supervision convention for ``xyxy`` and masks).
Normalized zones (``units: normalized``) are scaled by the frame's width and height once per
frame size; everything built from a frame size is cached per size.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from streamseg.config.zones import CalibrationConfig, LineZoneConfig, PolygonZoneConfig

logger = logging.getLogger(__name__)

ON_EDGE_EPS = 1e-9
"""A pixel centre this close (in pixels) to a zone's outline is on it, so in the zone."""

MOSTLY_OUTSIDE = 0.5
"""A polygon zone with less than this fraction of its area inside the frame is logged as a
warning: pixel points written for another resolution (a 1920x1080 layout on a 640x360
substream) leave rules that never fire, silently. A zone drawn a little past the frame's edge
is common and fine."""


def _warn_outside(what: str, where: str, frame_wh: tuple[int, int], share: str) -> None:
    logger.warning(
        "%s: %s lies outside the %dx%d frame%s, so its rules cannot see objects there; were the "
        "pixel points written for another resolution? (units: normalized keeps zones right at "
        "any size)",
        what,
        share,
        *frame_wh,
        where,
    )


def to_frame_px(
    points: Sequence[tuple[float, float]], units: str, frame_wh: tuple[int, int]
) -> npt.NDArray[np.float64]:
    """Points as frame pixels.

    Args:
        points: ``[(x, y), ...]`` as written in the config.
        units: ``px`` (returned as they are) or ``normalized`` (times width and height).
        frame_wh: (width, height) of the frame.

    Returns:
        (K, 2) float64, frame pixels.
    """
    array = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if units == "normalized":
        # A fraction of 1.0 is the frame's far edge, the centre of the last pixel row/column.
        array = array * np.array([frame_wh[0] - 1, frame_wh[1] - 1], dtype=np.float64)
    return array


def rasterize_polygon(
    points_px: npt.NDArray[np.float64], frame_wh: tuple[int, int]
) -> npt.NDArray[np.bool_]:
    """The pixels of a ``frame_wh`` grid whose centres lie inside a polygon or on its outline.

    Exact for any (sub-pixel) vertices, unlike ``cv2.fillPoly``, which also fills the pixels
    its outline is drawn through: half a pixel more on the right and bottom edges. The interior
    is filled row by row between the crossings of each row's centre line with the edges (each
    edge spanning ``y0 <= y < y1``, so a vertex is crossed once), by the even-odd rule (zones
    are simple polygons: the config refuses self-intersecting ones); then the centres lying on
    an edge are added (the rows of horizontal edges and bottom vertices that the half-open
    spans leave out).

    Args:
        points_px: (K, 2) vertices, frame pixels (the centre of pixel ``(row, col)`` is
            ``(col, row)``); parts outside the frame are cut off.
        frame_wh: (width, height) of the grid.

    Returns:
        (height, width) bool.
    """
    width, height = frame_wh
    mask = np.zeros((height, width), dtype=bool)
    pts = np.asarray(points_px, dtype=np.float64).reshape(-1, 2)
    if len(pts) < 3 or width < 1 or height < 1:
        return mask
    x0, y0 = pts[:, 0], pts[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    eps = ON_EDGE_EPS
    # Interior: per row, the x of each crossing, sorted, filled pair by pair.
    rows_list, xs_list = [], []
    for ax, ay, bx, by in zip(x0.tolist(), y0.tolist(), x1.tolist(), y1.tolist(), strict=True):
        if ay == by:
            continue
        low, high = min(ay, by), max(ay, by)
        # ceil(low) .. ceil(high) - 1: the whole rows with low <= row < high.
        rows = np.arange(max(math.ceil(low), 0), min(math.ceil(high) - 1, height - 1) + 1)
        if rows.size:
            rows_list.append(rows)
            xs_list.append(ax + (rows - ay) * ((bx - ax) / (by - ay)))
    if rows_list:
        rows = np.concatenate(rows_list)
        xs = np.concatenate(xs_list)
        order = np.lexsort((xs, rows))
        rows, xs = rows[order], xs[order]
        # Crossings come in pairs per row (even-odd): left ends at even places, right at odd.
        left = np.ceil(xs[0::2] - eps).astype(np.int64)
        right = np.floor(xs[1::2] + eps).astype(np.int64)
        row = rows[0::2]
        left, right = np.maximum(left, 0), np.minimum(right, width - 1)
        keep = left <= right
        diff = np.zeros((height, width + 1), dtype=np.int32)
        np.add.at(diff, (row[keep], left[keep]), 1)
        np.add.at(diff, (row[keep], right[keep] + 1), -1)
        mask |= np.cumsum(diff[:, :width], axis=1) > 0
    # The outline: centres on an edge (horizontal edges whole, others where x is whole).
    for ax, ay, bx, by in zip(x0.tolist(), y0.tolist(), x1.tolist(), y1.tolist(), strict=True):
        top, bottom = (
            max(math.ceil(min(ay, by) - eps), 0),
            min(math.floor(max(ay, by) + eps), height - 1),
        )
        if top > bottom:
            continue
        if abs(by - ay) <= eps:
            first = max(math.ceil(min(ax, bx) - eps), 0)
            last = min(math.floor(max(ax, bx) + eps), width - 1)
            if first <= last:
                mask[top : bottom + 1, first : last + 1] = True
            continue
        on = np.arange(top, bottom + 1)
        x = ax + (on - ay) * ((bx - ax) / (by - ay))
        cols = np.round(x)
        hit = (np.abs(x - cols) <= eps) & (cols >= 0) & (cols <= width - 1)
        mask[on[hit], cols[hit].astype(np.int64)] = True
    return mask


class PolygonRaster:
    """A polygon rasterized at one frame size, with a summed-area table for O(1) box sums.

    Attributes:
        mask: (H, W) bool, frame pixels: pixel centres inside the polygon (edges included).
        integral: (H + 1, W + 1) int32 summed-area table of ``mask``.
        bbox: (x1, y1, x2, y2) inclusive pixel box of ``mask``, or ``None`` when it is empty.
    """

    def __init__(self, points_px: npt.NDArray[np.float64], frame_wh: tuple[int, int]) -> None:
        """Rasterize ``points_px`` ((K, 2) frame pixels) into a ``frame_wh`` grid."""
        width, height = frame_wh
        self.mask: npt.NDArray[np.bool_] = rasterize_polygon(points_px, frame_wh)
        canvas = self.mask.view(np.uint8)
        self.integral: npt.NDArray[np.int32] = np.asarray(
            cv2.integral(canvas, sdepth=cv2.CV_32S), dtype=np.int32
        )
        self.width, self.height = width, height
        rows = np.flatnonzero(self.mask.any(axis=1))
        cols = np.flatnonzero(self.mask.any(axis=0))
        self.bbox: tuple[int, int, int, int] | None = (
            (int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])) if rows.size else None
        )
        self._column_counts: npt.NDArray[np.int32] | None = None

    @property
    def column_counts(self) -> npt.NDArray[np.int32]:
        """(H + 1, W) int32, ``[y, x]``: zone pixels of column ``x`` above row ``y`` (built on
        first use; :func:`streamseg.rle.run_window_sums` reads it)."""
        if self._column_counts is None:
            counts = np.zeros((self.height + 1, self.width), dtype=np.int32)
            np.cumsum(self.mask, axis=0, dtype=np.int32, out=counts[1:])
            self._column_counts = counts
        return self._column_counts

    def box_sums(self, boxes: npt.NDArray[np.integer]) -> npt.NDArray[np.int64]:
        """Number of zone pixels in each box of ``boxes`` ((N, 4) inclusive ``x1, y1, x2, y2``,
        clipped to the frame; 0 for an empty box), from the integral image: (N,) int64."""
        b = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
        x1 = np.maximum(b[:, 0], 0)
        y1 = np.maximum(b[:, 1], 0)
        x2 = np.minimum(b[:, 2], self.width - 1)
        y2 = np.minimum(b[:, 3], self.height - 1)
        empty = (x2 < x1) | (y2 < y1)
        # Integral-image corners, kept in range for the empty rows too (zeroed below).
        x1, y1 = np.minimum(x1, self.width), np.minimum(y1, self.height)
        x2, y2 = np.maximum(x2 + 1, x1), np.maximum(y2 + 1, y1)
        ii = self.integral
        sums = ii[y2, x2].astype(np.int64) - ii[y1, x2] - ii[y2, x1] + ii[y1, x1]
        sums[empty] = 0
        return sums

    def contains(self, x: float, y: float) -> bool:
        """Whether the pixel whose centre is nearest to ``(x, y)`` is in the zone."""
        col, row = math.floor(x + 0.5), math.floor(y + 0.5)
        if 0 <= col < self.width and 0 <= row < self.height:
            return bool(self.mask[row, col])
        return False

    def contains_each(
        self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.bool_]:
        """:meth:`contains` of N points at once: (N,) float64 frame pixels -> (N,) bool."""
        col = np.floor(x + 0.5)
        row = np.floor(y + 0.5)
        within = (col >= 0) & (col < self.width) & (row >= 0) & (row < self.height)
        inside = np.zeros(col.shape, dtype=bool)
        inside[within] = self.mask[row[within].astype(np.int64), col[within].astype(np.int64)]
        return inside


class PolygonZone:
    """A polygon zone of the config, resolved per frame size.

    Args:
        config: the zone's config.
    """

    def __init__(self, config: PolygonZoneConfig, stream_id: str | None = None) -> None:
        self.id = config.id
        self.config = config
        self.stream_id = stream_id
        self._rasters: dict[tuple[int, int], PolygonRaster] = {}

    def raster(self, frame_wh: tuple[int, int]) -> PolygonRaster:
        """The zone rasterized at ``frame_wh`` (built on first use per size, when a zone mostly
        outside the frame is logged, see :data:`MOSTLY_OUTSIDE`)."""
        raster = self._rasters.get(frame_wh)
        if raster is None:
            points = to_frame_px(self.config.points, self.config.units, frame_wh)
            raster = PolygonRaster(points, frame_wh)
            self._rasters[frame_wh] = raster
            logger.debug("zone %r rasterized at %dx%d", self.id, *frame_wh)
            area = abs(cv2.contourArea(points.astype(np.float32)))
            inside = int(raster.integral[-1, -1])
            if area >= 1.0 and inside < MOSTLY_OUTSIDE * area:
                share = "all of it" if inside == 0 else f"{1 - inside / area:.0%} of its area"
                where = f" of stream {self.stream_id!r}" if self.stream_id else ""
                _warn_outside(f"zone {self.id!r}", where, frame_wh, share)
        return raster


@dataclass(frozen=True)
class Segment:
    """A line segment in frame pixels, from ``a`` to ``b``.

    Attributes:
        ax, ay: first point (``points[0]``).
        bx, by: second point (``points[1]``).
    """

    ax: float
    ay: float
    bx: float
    by: float

    @property
    def length(self) -> float:
        """Length in pixels."""
        return math.hypot(self.bx - self.ax, self.by - self.ay)

    def signed_distance(self, x: float, y: float) -> float:
        """Distance in pixels from the segment's line; negative on the left, positive on the right.

        Left and right are seen looking from ``a`` towards ``b`` on the image (rows grow
        downwards), e.g. for a line drawn left to right across the frame, "left" is above it.
        """
        dx, dy = self.bx - self.ax, self.by - self.ay
        return (dx * (y - self.ay) - dy * (x - self.ax)) / math.hypot(dx, dy)

    def along(self, x: float, y: float) -> float:
        """Position of the point's projection along the segment: 0 at ``a``, 1 at ``b``."""
        dx, dy = self.bx - self.ax, self.by - self.ay
        return ((x - self.ax) * dx + (y - self.ay) * dy) / (dx * dx + dy * dy)


class LineZone:
    """A line zone of the config, resolved per frame size.

    Args:
        config: the zone's config.
    """

    def __init__(self, config: LineZoneConfig, stream_id: str | None = None) -> None:
        self.id = config.id
        self.config = config
        self.stream_id = stream_id
        self._segments: dict[tuple[int, int], Segment] = {}

    def segment(self, frame_wh: tuple[int, int]) -> Segment:
        """The segment in frame pixels at ``frame_wh`` (a segment that misses the frame
        entirely is logged as a warning on first use per size)."""
        segment = self._segments.get(frame_wh)
        if segment is None:
            (ax, ay), (bx, by) = to_frame_px(self.config.points, self.config.units, frame_wh)
            segment = Segment(float(ax), float(ay), float(bx), float(by))
            self._segments[frame_wh] = segment
            visible, _, _ = cv2.clipLine(
                (0, 0, *frame_wh), (round(ax), round(ay)), (round(bx), round(by))
            )
            if not visible:
                where = f" of stream {self.stream_id!r}" if self.stream_id else ""
                _warn_outside(f"line {self.id!r}", where, frame_wh, "all of it")
        return segment


class GroundPlane:
    """The homography from frame pixels to ground metres of one stream's calibration.

    Args:
        config: the source's calibration.
    """

    def __init__(self, config: CalibrationConfig) -> None:
        self.config = config
        self._matrices: dict[tuple[int, int], npt.NDArray[np.float64]] = {}

    def matrix(self, frame_wh: tuple[int, int]) -> npt.NDArray[np.float64]:
        """(3, 3) float64 homography taking homogeneous frame pixels to ground metres."""
        matrix = self._matrices.get(frame_wh)
        if matrix is None:
            image = to_frame_px(self.config.image_points, self.config.units, frame_wh)
            ground = np.asarray(self.config.ground_points, dtype=np.float64)
            matrix = np.asarray(
                cv2.getPerspectiveTransform(image.astype(np.float32), ground.astype(np.float32)),
                dtype=np.float64,
            )
            # OpenCV scales the matrix so that w = 1 at pixel (0, 0), which puts the ground on
            # the w < 0 side whenever the frame's top-left corner is above the horizon (most
            # cameras that see the horizon). Every consumer keeps w > 0 as "on the ground", so
            # flip the sign (the same mapping) to make the calibration marks, on the ground by
            # definition, lie at w > 0 (CalibrationConfig already refused marks on both sides).
            w = image @ matrix[2, :2] + matrix[2, 2]
            if (w < 0).all():
                matrix = -matrix
            self._matrices[frame_wh] = matrix
        return matrix

    def to_ground(
        self, points_px: npt.NDArray[np.floating], frame_wh: tuple[int, int]
    ) -> npt.NDArray[np.float64]:
        """Map frame pixels to the ground plane.

        Args:
            points_px: (N, 2) frame pixels.
            frame_wh: (width, height) of the frame.

        Returns:
            (M, 2) float64 ground metres of the points that lie below the horizon (points the
            homography sends behind the camera, ``w <= 0``, are left out).
        """
        return map_points(self.matrix(frame_wh), points_px)


def map_points(
    matrix: npt.NDArray[np.float64], points: npt.NDArray[np.floating]
) -> npt.NDArray[np.float64]:
    """Apply a homography to (N, 2) points, dropping those with ``w <= 0`` (behind the camera)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    w = pts @ matrix[2, :2] + matrix[2, 2]
    keep = w > 1e-12
    if not keep.all():
        pts, w = pts[keep], w[keep]
    xy = pts @ matrix[:2, :2].T + matrix[:2, 2]
    return xy / w[:, None]

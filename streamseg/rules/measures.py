"""What rules measure on the objects of one frame: zone membership and mask-to-mask distance.

:class:`FrameObjects` holds the confirmed tracks of one frame (``tracker_id >= 1``) and computes
each measure on demand, once per frame: a mask crop is decoded only when a test needs its
pixels, and most zone tests never decode (a box entirely outside or inside a zone is settled by
the zone's summed-area table).

Membership bases (``basis`` of a rule):

- ``mask``: the fraction of the object's mask pixels inside the zone, compared to
  ``min_overlap``. This is streamseg's default: an arm reaching into a zone counts by its pixels;
  a long machine whose box bottom-centre is in the zone does not, unless its pixels are.
- ``bottom_center`` / ``center``: the peers' one-point tests (DeepStream and Frigate use the
  box's bottom-centre, Ultralytics its centre), on the BOX.
- ``any_pixel``: any mask pixel in the zone.

Masks: a ``supervision.CompactMask`` (crops in frame pixels), a dense (N, H, W) bool array, or
``None`` (the box then stands for the mask). Masks at another resolution than the frame are
rescaled to it first (a slow path; the pipeline's masks are in frame pixels).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt
import supervision as sv

from streamseg.rle import compact_column_bottoms, decode_compact_crops
from streamseg.rules.geometry import PolygonZone

logger = logging.getLogger(__name__)

FOOTPRINT_POINTS = 48
"""Most points kept of an object's ground-contact profile for distances in metres."""

_NO_ZERO_DISTANCE = 1e5
"""cv2.distanceTransform gives every pixel a huge value (about 8e3 to 2e9 by version) when the
image has no zero pixel; any value above this means "no other mask in the region"."""

_FAR_M = 1e12
"""Ground bounds of a box reaching above the horizon: "anywhere" (finite, so gaps stay numbers)."""

PAIR_CHUNK = 1 << 20
"""Most point pairs compared at once in a brute-force distance (bounds temporary memory)."""

Box = tuple[int, int, int, int]


class FrameObjects:
    """The confirmed tracks of one frame and their measures, computed once on demand.

    Objects are numbered ``0 .. len - 1`` in detection order (unconfirmed rows skipped).

    Args:
        detections: the tracker's output for the frame (``tracker_id`` (N,) int, ``xyxy``
            (N, 4) frame pixels, ``class_id``, optional ``data["class_name"]`` and ``mask``).
        frame_wh: (width, height) of the frame.

    Attributes:
        track_ids: tracker id of each object (>= 1).
        class_names: class of each object (``data["class_name"]``, else the class id as text).
        xyxy: (x1, y1, x2, y2) box of each object, frame pixels (floats).
    """

    def __init__(self, detections: sv.Detections, frame_wh: tuple[int, int]) -> None:
        self.frame_wh = frame_wh
        width, height = frame_wh
        tracker_id = detections.tracker_id
        if tracker_id is None or len(detections) == 0:
            rows = np.zeros(0, dtype=np.int64)
        else:
            rows = np.flatnonzero(np.asarray(tracker_id) >= 1)
        self._rows: list[int] = rows.tolist()
        self.track_ids: list[int] = (
            np.asarray(tracker_id)[rows].astype(np.int64).tolist() if len(rows) else []
        )
        names = detections.data.get("class_name") if detections.data else None
        if names is not None:
            self.class_names: list[str] = [str(name) for name in np.asarray(names)[rows].tolist()]
        elif detections.class_id is not None:
            self.class_names = [str(c) for c in np.asarray(detections.class_id)[rows]]
        else:
            self.class_names = [""] * len(rows)
        self.xyxy: list[list[float]] = np.asarray(detections.xyxy)[rows].tolist()

        mask = detections.mask
        self._compact: sv.CompactMask | None = None
        self._dense: npt.NDArray[np.bool_] | None = None
        if isinstance(mask, sv.CompactMask):
            if mask.image_shape != (height, width):
                mask = mask.resize((height, width))
            self._compact = mask
            boxes = mask.bbox_xyxy[rows].tolist() if len(rows) else []
        else:
            if mask is not None:
                dense = np.asarray(mask, dtype=bool)
                if dense.shape[1:] != (height, width):
                    dense = (
                        np.stack(
                            [
                                cv2.resize(m.astype(np.uint8), (width, height), interpolation=0) > 0
                                for m in dense
                            ]
                        )
                        if len(dense)
                        else np.zeros((0, height, width), dtype=bool)
                    )
                self._dense = dense
            boxes = [_pixel_box(box, width, height) for box in self.xyxy]
        self.boxes: list[Box] = [tuple(box) for box in boxes]
        """Inclusive pixel box of each object's mask crop (the box itself without masks)."""

        self._crops: dict[int, npt.NDArray[np.bool_]] = {}
        self._decoded_all = False
        self._bottoms: list[npt.NDArray[np.int64]] | None = None
        self._areas: dict[int, int] = {}
        self._overlaps: dict[tuple[int, str], float] = {}
        self._footprints: dict[int, npt.NDArray[np.float64]] = {}
        self._ground_feet: dict[
            tuple[int, int],
            tuple[npt.NDArray[np.float64], tuple[float, float, float, float] | None],
        ] = {}
        self._ground_boxes: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None
        self._by_classes: dict[frozenset[str], list[int]] = {}

    def __len__(self) -> int:
        return len(self._rows)

    # ------------------------------------------------------------------ selection

    def of_classes(self, classes: frozenset[str]) -> list[int]:
        """Indices of the objects whose class is in ``classes`` (every object when empty)."""
        found = self._by_classes.get(classes)
        if found is None:
            names = self.class_names
            found = (
                [k for k in range(len(names)) if names[k] in classes]
                if classes
                else list(range(len(names)))
            )
            self._by_classes[classes] = found
        return found

    # ------------------------------------------------------------------ pixels

    def crop(self, k: int) -> npt.NDArray[np.bool_]:
        """Object ``k``'s mask cropped to :attr:`boxes` ``[k]``: (h, w) bool."""
        crop = self._crops.get(k)
        if crop is None and self._compact is not None and not self._decoded_all:
            # One vectorized pass over every crop costs about what two crop(i) calls do.
            self._decoded_all = True
            crops, _ = decode_compact_crops(self._compact)
            self._crops.update((j, crops[row]) for j, row in enumerate(self._rows))
            crop = self._crops.get(k)
        if crop is None:
            x1, y1, x2, y2 = self.boxes[k]
            if self._compact is not None:
                crop = self._compact.crop(self._rows[k])
            elif self._dense is not None:
                crop = self._dense[self._rows[k], y1 : y2 + 1, x1 : x2 + 1]
            else:
                crop = np.ones((max(y2 - y1 + 1, 0), max(x2 - x1 + 1, 0)), dtype=bool)
            self._crops[k] = crop
        return crop

    def area(self, k: int) -> int:
        """Number of mask pixels of object ``k``."""
        area = self._areas.get(k)
        if area is None:
            area = int(np.count_nonzero(self.crop(k)))
            self._areas[k] = area
        return area

    # ------------------------------------------------------------------ membership

    def overlap(self, k: int, zone: PolygonZone) -> float:
        """Fraction of object ``k``'s mask pixels inside ``zone`` (0 for an empty mask)."""
        key = (k, zone.id)
        found = self._overlaps.get(key)
        if found is not None:
            return found
        raster = zone.raster(self.frame_wh)
        x1, y1, x2, y2 = self.boxes[k]
        in_box = raster.box_sum(x1, y1, x2, y2)
        if in_box == 0:
            value = 0.0
        elif in_box == (x2 - x1 + 1) * (y2 - y1 + 1):
            value = 1.0 if self.area(k) else 0.0
        else:
            area = self.area(k)
            value = (
                np.count_nonzero(self.crop(k) & raster.mask[y1 : y2 + 1, x1 : x2 + 1]) / area
                if area
                else 0.0
            )
        self._overlaps[key] = value
        return value

    def any_pixel_in(self, k: int, zone: PolygonZone) -> bool:
        """Whether any mask pixel of object ``k`` is inside ``zone``."""
        return self.overlap(k, zone) > 0.0

    def anchor(self, k: int, name: str) -> tuple[float, float]:
        """A point of object ``k``, frame pixels.

        Args:
            k: object index.
            name: ``bottom_center`` or ``center`` of the box, or ``centroid`` (mean of the mask
                pixels; the box centre when the mask is empty).
        """
        x1, y1, x2, y2 = self.xyxy[k]
        if name == "bottom_center":
            return (x1 + x2) / 2.0, y2
        if name == "centroid":
            ys, xs = np.nonzero(self.crop(k))
            if xs.size:
                bx, by = self.boxes[k][:2]
                return bx + float(xs.mean()), by + float(ys.mean())
        return (x1 + x2) / 2.0, (y1 + y2) / 2.0

    def member(
        self, k: int, zone: PolygonZone, basis: str, min_overlap: float
    ) -> tuple[bool, float | None]:
        """Whether object ``k`` is inside ``zone`` under ``basis``.

        Returns:
            ``(inside, overlap)``: ``overlap`` is the mask fraction for bases that measure it
            (``mask``, ``any_pixel``), else ``None``.
        """
        if basis == "mask":
            value = self.overlap(k, zone)
            return value >= min_overlap, value
        if basis == "any_pixel":
            value = self.overlap(k, zone)
            return value > 0.0, value
        raster = zone.raster(self.frame_wh)
        x, y = self.anchor(k, basis)
        return raster.contains(x, y), None

    # ------------------------------------------------------------------ distance

    def footprint(self, k: int) -> npt.NDArray[np.float64]:
        """Where object ``k`` meets the ground: the lowest mask pixel of each column.

        At most :data:`FOOTPRINT_POINTS` columns are kept, evenly spread. Returns (M, 2)
        float64 ``(x, y)`` frame pixels.
        """
        points = self._footprints.get(k)
        if points is None:
            if self._bottoms is None:
                found = None if self._compact is None else compact_column_bottoms(self._compact)
                self._bottoms = [] if found is None else [found[row] for row in self._rows]
            if self._bottoms:
                column_bottoms = self._bottoms[k]
            else:
                crop = self.crop(k)
                column_bottoms = np.where(
                    crop.any(axis=0), (crop.shape[0] - 1) - np.argmax(crop[::-1], axis=0), -1
                )
            cols = np.flatnonzero(column_bottoms >= 0)
            if cols.size > FOOTPRINT_POINTS:
                cols = cols[:: -(-cols.size // FOOTPRINT_POINTS)]
            bottoms = column_bottoms[cols]
            x1, y1 = self.boxes[k][:2]
            points = np.empty((cols.size, 2), dtype=np.float64)
            points[:, 0] = cols + x1
            points[:, 1] = bottoms + y1
            self._footprints[k] = points
        return points

    def mask_distance_px(self, a: int, b: int, limit: float = math.inf) -> float:
        """Smallest distance in pixels between a pixel of mask ``a`` and one of mask ``b``.

        0 when the masks share a pixel, 1 for 4-adjacent masks. Exact whenever the result is
        below ``limit``; otherwise the value returned is only known to be ``>= limit``.
        """
        return self.nearest_mask_px(a, [b], limit)[0]

    def nearest_mask_px(
        self, a: int, others: Sequence[int], limit: float = math.inf
    ) -> tuple[float, int | None]:
        """The object of ``others`` whose mask is nearest to mask ``a``, and that distance.

        The distance is between pixel centres, exact (a Euclidean distance transform,
        ``cv2.DIST_MASK_PRECISE``, of the other masks, read at ``a``'s pixels) whenever it is
        below ``limit``. Only the part of the frame within ``limit`` of ``a``'s box is
        examined: pixels farther away cannot be nearer than ``limit``.

        Returns:
            ``(distance, index)``; ``(value >= limit, None)`` when no mask is nearer than
            ``limit``.
        """
        width, height = self.frame_wh
        ax1, ay1, ax2, ay2 = self.boxes[a]
        reach = math.ceil(limit) if math.isfinite(limit) else max(width, height)
        # Pixels of the others that can be within `limit` of a pixel of `a` lie in a's box
        # grown by `reach`; the region is the bounding box of those parts.
        gx1, gy1 = max(ax1 - reach, 0), max(ay1 - reach, 0)
        gx2, gy2 = min(ax2 + reach, width - 1), min(ay2 + reach, height - 1)
        parts: list[tuple[int, Box]] = []
        for b in others:
            if b == a:
                continue
            bx1, by1, bx2, by2 = self.boxes[b]
            part = (max(bx1, gx1), max(by1, gy1), min(bx2, gx2), min(by2, gy2))
            if part[0] <= part[2] and part[1] <= part[3]:
                parts.append((b, part))
        if not parts:
            return max(limit, 0.0), None
        ux1 = min(p[0] for _, p in parts)
        uy1 = min(p[1] for _, p in parts)
        ux2 = max(p[2] for _, p in parts)
        uy2 = max(p[3] for _, p in parts)
        # Pixels of a that can be within `limit` of those parts: a's box near their union.
        wx1, wy1 = max(ax1, ux1 - reach), max(ay1, uy1 - reach)
        wx2, wy2 = min(ax2, ux2 + reach), min(ay2, uy2 + reach)
        if wx1 > wx2 or wy1 > wy2:
            return max(limit, 0.0), None
        rx1, ry1 = min(ux1, wx1), min(uy1, wy1)
        rx2, ry2 = max(ux2, wx2), max(uy2, wy2)
        canvas = np.ones((ry2 - ry1 + 1, rx2 - rx1 + 1), dtype=np.uint8)
        for b, (px1, py1, px2, py2) in parts:
            bx1, by1 = self.boxes[b][:2]
            piece = self.crop(b)[py1 - by1 : py2 - by1 + 1, px1 - bx1 : px2 - bx1 + 1]
            canvas[py1 - ry1 : py2 - ry1 + 1, px1 - rx1 : px2 - rx1 + 1][piece] = 0
        piece_a = self.crop(a)[wy1 - ay1 : wy2 - ay1 + 1, wx1 - ax1 : wx2 - ax1 + 1]
        field = cv2.distanceTransform(canvas, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        window = field[wy1 - ry1 : wy2 - ry1 + 1, wx1 - rx1 : wx2 - rx1 + 1]
        values = np.where(piece_a, window, np.float32(np.inf))
        flat = int(np.argmin(values))
        best = float(values.flat[flat])
        if not math.isfinite(best) or best >= _NO_ZERO_DISTANCE:
            return max(limit, 0.0), None  # no pixel of a here, or no pixel of the others
        if best >= limit:
            return best, None
        if len(parts) == 1:
            return best, parts[0][0]
        # Which mask holds the nearest pixel: the one nearest to a's nearest pixel.
        py, px = divmod(flat, values.shape[1])
        px, py = px + wx1, py + wy1
        nearest: tuple[float, int | None] = (math.inf, None)
        for b, (qx1, qy1, qx2, qy2) in parts:
            bx1, by1 = self.boxes[b][:2]
            piece = self.crop(b)[qy1 - by1 : qy2 - by1 + 1, qx1 - bx1 : qx2 - bx1 + 1]
            ys, xs = np.nonzero(piece)
            if xs.size:
                d2 = float(((xs + qx1 - px) ** 2 + (ys + qy1 - py) ** 2).min())
                if d2 < nearest[0]:
                    nearest = (d2, b)
        return best, nearest[1]

    def ground_boxes(self, homography: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Ground bounds of every object's box: (N, 4) ``(x1, y1, x2, y2)`` metres.

        The axis-aligned bounds of the box's four corners mapped by ``homography`` contain the
        ground image of everything in the box (a homography maps the box to the quadrilateral
        of its corners when the box lies below the horizon); a box reaching above the horizon
        gets unbounded bounds.
        """
        cached = self._ground_boxes
        if cached is not None and cached[0] is homography:
            return cached[1]
        boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        corners = boxes[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(-1, 2)
        w = corners @ homography[2, :2] + homography[2, 2]
        xy = (corners @ homography[:2, :2].T + homography[:2, 2]) / np.where(w > 1e-12, w, 1.0)[
            :, None
        ]
        xy = xy.reshape(-1, 4, 2)
        bounds = np.concatenate([xy.min(axis=1), xy.max(axis=1)], axis=1)
        behind = (w.reshape(-1, 4) <= 1e-12).any(axis=1)
        bounds[behind] = (-_FAR_M, -_FAR_M, _FAR_M, _FAR_M)
        self._ground_boxes = (homography, bounds)
        return bounds

    def ground_footprint(
        self, k: int, homography: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """Object ``k``'s :meth:`footprint` on the ground: (M, 2) metres (points behind the
        camera left out)."""
        return self._ground_feet_of(k, homography)[0]

    def _ground_feet_of(
        self, k: int, homography: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], tuple[float, float, float, float] | None]:
        """The mapped footprint of ``k`` and its bounds (``None`` when empty), cached."""
        found = self._ground_feet.get((k, id(homography)))
        if found is None:
            self.map_footprints([k], homography)
            found = self._ground_feet[(k, id(homography))]
        return found

    def map_footprints(self, ks: Sequence[int], homography: npt.NDArray[np.float64]) -> None:
        """Map the footprints of objects ``ks`` to the ground in one batch (then cached)."""
        todo = [k for k in ks if (k, id(homography)) not in self._ground_feet]
        if not todo:
            return
        feet = [self.footprint(k) for k in todo]
        sizes = [len(f) for f in feet]
        pts = np.concatenate(feet) if len(feet) > 1 else feet[0]
        w = pts @ homography[2, :2] + homography[2, 2]
        ahead = w > 1e-12
        xy = (pts @ homography[:2, :2].T + homography[:2, 2]) / np.where(ahead, w, 1.0)[:, None]
        all_ahead = bool(ahead.all())
        offsets = np.cumsum([0, *sizes[:-1]])
        if all_ahead and pts.size and min(sizes) > 0:
            lows = np.minimum.reduceat(xy, offsets, axis=0).tolist()
            highs = np.maximum.reduceat(xy, offsets, axis=0).tolist()
        else:
            lows = highs = []
        for n, (k, size) in enumerate(zip(todo, sizes, strict=True)):
            start = int(offsets[n])
            piece = xy[start : start + size]
            if not all_ahead:
                piece = piece[ahead[start : start + size]]
            bounds = None
            if lows:
                bounds = (lows[n][0], lows[n][1], highs[n][0], highs[n][1])
            elif len(piece):
                lo, hi = piece.min(axis=0).tolist(), piece.max(axis=0).tolist()
                bounds = (lo[0], lo[1], hi[0], hi[1])
            self._ground_feet[(k, id(homography))] = (piece, bounds)

    def ground_distance_m(
        self, a: int, b: int, homography: npt.NDArray[np.float64], limit: float = math.inf
    ) -> float:
        """Smallest ground distance in metres between the footprints of objects ``a`` and ``b``.

        Each footprint (:meth:`footprint`) is mapped to the ground with ``homography`` (frame
        pixels to metres). Exact (for those points) whenever the result is below ``limit``;
        otherwise only known to be ``>= limit``. ``inf`` when a footprint lies entirely above
        the horizon.
        """
        return self.nearest_ground_m(a, [b], homography, limit)[0]

    def nearest_ground_m(
        self,
        a: int,
        others: Sequence[int],
        homography: npt.NDArray[np.float64],
        limit: float = math.inf,
    ) -> tuple[float, int | None]:
        """The object of ``others`` whose footprint is nearest on the ground to ``a``'s.

        Returns:
            ``(metres, index)``, exact (for the footprint points) when below ``limit``;
            ``(value >= limit, None)`` when none is nearer than ``limit`` (``inf`` when a
            footprint lies above the horizon).
        """
        feet_a, box_a = self._ground_feet_of(a, homography)
        if box_a is None:
            return math.inf, None
        near: list[tuple[int, npt.NDArray[np.float64]]] = []
        lower = math.inf
        for b in others:
            if b == a:
                continue
            feet_b, box_b = self._ground_feet_of(b, homography)
            if box_b is None:
                continue
            gap = math.hypot(
                max(0.0, box_b[0] - box_a[2], box_a[0] - box_b[2]),
                max(0.0, box_b[1] - box_a[3], box_a[1] - box_b[3]),
            )
            if gap < limit:
                near.append((b, feet_b))
            lower = min(lower, gap)
        if not near:
            return lower, None
        points = near[0][1] if len(near) == 1 else np.concatenate([f for _, f in near])
        d2 = squared_distances(feet_a, points)
        flat = int(np.argmin(d2))
        best = math.sqrt(float(d2.flat[flat]))
        if best >= limit:
            return best, None
        column = flat % len(points)
        for b, feet_b in near:
            if column < len(feet_b):
                return best, b
            column -= len(feet_b)
        return best, None  # not reached: column indexes one of the footprints


def squared_distances(
    points_a: npt.NDArray[np.floating], points_b: npt.NDArray[np.floating]
) -> npt.NDArray[np.float64]:
    """(N, M) squared Euclidean distances between (N, 2) and (M, 2) points.

    Per coordinate rather than over a trailing axis of 2, which numpy reduces slowly.
    """
    d2 = np.subtract(points_a[:, 0:1], points_b[:, 0], dtype=np.float64)
    d2 *= d2
    dy = np.subtract(points_a[:, 1:2], points_b[:, 1], dtype=np.float64)
    dy *= dy
    d2 += dy
    return d2


def min_pair_distance(
    points_a: npt.NDArray[np.generic], points_b: npt.NDArray[np.generic]
) -> float:
    """Smallest Euclidean distance between a point of ``points_a`` and one of ``points_b``.

    Args:
        points_a: (N, 2) points.
        points_b: (M, 2) points, same units.

    Returns:
        The distance (brute force in chunks of :data:`PAIR_CHUNK` pairs); ``inf`` when either
        set is empty.
    """
    if not len(points_a) or not len(points_b):
        return math.inf
    a = np.asarray(points_a, dtype=np.float64)
    b = np.asarray(points_b, dtype=np.float64)
    step = max(1, PAIR_CHUNK // len(b))
    best = math.inf
    for start in range(0, len(a), step):
        best = min(best, float(squared_distances(a[start : start + step], b).min()))
    return math.sqrt(best)


def _pixel_box(box: list[float], width: int, height: int) -> Box:
    """The inclusive pixel box covering a float ``xyxy`` box, clipped to the frame."""
    x1 = min(max(math.floor(box[0]), 0), width - 1)
    y1 = min(max(math.floor(box[1]), 0), height - 1)
    x2 = min(max(math.ceil(box[2]), x1), width - 1)
    y2 = min(max(math.ceil(box[3]), y1), height - 1)
    return x1, y1, x2, y2

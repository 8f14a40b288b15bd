"""What rules measure on the objects of one frame: zone membership and mask-to-mask distance.

:class:`FrameObjects` holds the confirmed tracks of one frame (``tracker_id >= 1``) and computes
each measure on demand, once per frame, and zone tests never decode a mask: with a CompactMask,
every object's pixels inside a zone are counted from its run lengths in one pass per zone (as are
mask areas and ground-contact profiles); with dense masks or boxes, a box entirely outside or
inside a zone is settled by the zone's summed-area table.

Distances in metres are computed for all objects of the frame at once: every footprint is found
and mapped to the ground in one vectorized pass, pairs whose footprints' bounds are too far
apart are dropped, and the point pairs left are compared exhaustively (no per-object loop; the
machinery is in :mod:`streamseg.rules.footprints`).

With numba installed, zone pixels, footprint columns and the nearest footprints run as compiled
kernels instead (:mod:`streamseg.accel`), with the same results.

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

from streamseg import accel
from streamseg.rle import (
    CompactRuns,
    compact_runs,
    decode_run_crop,
    run_bottoms_at,
    run_crop_areas,
    run_window_sums,
)
from streamseg.rules.footprints import (
    FOOTPRINT_POINTS,
    MIN_GROUND_W,
    Footprints,
    GroundFootprints,
    box_gaps2,
    first_minima,
    footprint_points,
    nearest_points,
    sample_columns,
    to_ground,
)
from streamseg.rules.geometry import PolygonZone

logger = logging.getLogger(__name__)

_NO_ZERO_DISTANCE = 1e5
"""cv2.distanceTransform gives every pixel a huge value (about 8e3 to 2e9 by version) when the
image has no zero pixel; any value above this means "no other mask in the region"."""

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
        self._crop_boxes: npt.NDArray[np.integer] = np.zeros((0, 4), dtype=np.int32)
        self._dense: npt.NDArray[np.bool_] | None = None
        self._box_array: npt.NDArray[np.integer] | None = None
        if isinstance(mask, sv.CompactMask):
            if mask.image_shape != (height, width):
                mask = mask.resize((height, width))
            self._compact = mask
            # Every crop's box (supervision builds the array anew on each read).
            self._crop_boxes = mask.bbox_xyxy
            box_array = self._crop_boxes[rows] if len(rows) else np.zeros((0, 4), dtype=np.int32)
            self._box_array = box_array
            boxes = box_array.tolist()
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

        self._runs: CompactRuns | None = None
        self._runs_read = False
        self._crops: dict[int, npt.NDArray[np.bool_]] = {}
        self._areas: dict[int, int] = {}
        self._row_areas: list[int] | None = None
        self._overlaps: dict[tuple[int, str], float] = {}
        self._box_sums: dict[str, list[int]] = {}
        self._in_zone: dict[str, list[int]] = {}
        self._zone_overlaps: dict[str, list[float]] = {}
        self._members: dict[tuple[str, str, float], tuple[list[bool], list[float | None]]] = {}
        self._footprints: Footprints | None = None
        self._ground_feet: tuple[npt.NDArray[np.float64], GroundFootprints] | None = None
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

    def _compact_runs(self) -> CompactRuns | None:
        """The CompactMask's run lengths, read once (None without one, or on the fallback)."""
        if not self._runs_read:
            self._runs_read = True
            if self._compact is not None:
                self._runs = compact_runs(self._compact)
        return self._runs

    def crop(self, k: int) -> npt.NDArray[np.bool_]:
        """Object ``k``'s mask cropped to :attr:`boxes` ``[k]``: (h, w) bool."""
        crop = self._crops.get(k)
        if crop is None:
            runs = self._compact_runs()
            if runs is not None:
                # From the runs: a few µs, against several times that for CompactMask.crop.
                crop = decode_run_crop(runs, self._rows[k])
            elif self._compact is not None:
                crop = self._compact.crop(self._rows[k])
            else:
                x1, y1, x2, y2 = self.boxes[k]
                if self._dense is not None:
                    crop = self._dense[self._rows[k], y1 : y2 + 1, x1 : x2 + 1]
                else:
                    crop = np.ones((max(y2 - y1 + 1, 0), max(x2 - x1 + 1, 0)), dtype=bool)
            self._crops[k] = crop
        return crop

    def area(self, k: int) -> int:
        """Number of mask pixels of object ``k``."""
        area = self._areas.get(k)
        if area is None:
            runs = self._compact_runs()
            if runs is not None:
                area = self._run_areas(runs)[self._rows[k]]
            else:
                area = int(np.count_nonzero(self.crop(k)))
            self._areas[k] = area
        return area

    def _run_areas(self, runs: CompactRuns) -> list[int]:
        """Every crop's area from the runs at once, without decoding a crop (cached)."""
        if self._row_areas is None:
            self._row_areas = run_crop_areas(runs).tolist()
        return self._row_areas

    def _object_areas(self) -> list[int]:
        """:meth:`area` of every object, in object order (from the runs when there are)."""
        runs = self._compact_runs()
        if runs is None:
            return [self.area(k) for k in range(len(self._rows))]
        row_areas = self._run_areas(runs)
        return [row_areas[row] for row in self._rows]

    # ------------------------------------------------------------------ membership

    def overlap(self, k: int, zone: PolygonZone) -> float:
        """Fraction of object ``k``'s mask pixels inside ``zone`` (0 for an empty mask)."""
        key = (k, zone.id)
        found = self._overlaps.get(key)
        if found is not None:
            return found
        if self._zone_pixels(zone) is not None:
            return self.overlaps(zone)[k]  # every object's, from the runs
        raster = zone.raster(self.frame_wh)
        x1, y1, x2, y2 = self.boxes[k]
        sums = self._box_sums.get(zone.id)
        if sums is None:  # every object's zone pixels in its box, in one pass per zone
            sums = raster.box_sums(self._boxes_array()).tolist()
            self._box_sums[zone.id] = sums
        in_box = sums[k]
        if in_box == 0:
            value = 0.0
        elif in_box == (x2 - x1 + 1) * (y2 - y1 + 1):
            value = 1.0 if self.area(k) else 0.0
        else:
            area = self.area(k)
            value = (
                int(np.count_nonzero(self.crop(k) & raster.mask[y1 : y2 + 1, x1 : x2 + 1])) / area
                if area
                else 0.0
            )
        self._overlaps[key] = value
        return value

    def _zone_pixels(self, zone: PolygonZone) -> list[int] | None:
        """Every object's mask pixels inside ``zone``, counted from the CompactMask's runs in
        one pass per zone (cached); None without runs."""
        found = self._in_zone.get(zone.id)
        if found is None:
            runs = self._compact_runs()
            if runs is None or self._compact is None:
                return None
            raster = zone.raster(self.frame_wh)
            counts = run_window_sums(runs, self._crop_boxes[:, :2], raster.column_counts)
            found = counts[self._rows].tolist() if len(self._rows) else []
            self._in_zone[zone.id] = found
        return found

    def overlaps(self, zone: PolygonZone) -> list[float]:
        """:meth:`overlap` of every object, in object order (cached per zone)."""
        found = self._zone_overlaps.get(zone.id)
        if found is None:
            inside = self._zone_pixels(zone)
            if inside is not None:
                areas = self._object_areas()
                found = [i / a if a else 0.0 for i, a in zip(inside, areas, strict=True)]
            else:
                found = [self.overlap(k, zone) for k in range(len(self._rows))]
            self._zone_overlaps[zone.id] = found
        return found

    def members(
        self, zone: PolygonZone, basis: str, min_overlap: float
    ) -> tuple[list[bool], list[float | None]]:
        """:meth:`member` of every object at once, in object order (cached): ``(inside,
        overlap)`` lists, as rules read them in their per-track loops."""
        key = (zone.id, basis, min_overlap)
        found = self._members.get(key)
        if found is None:
            if basis in ("mask", "any_pixel"):
                values = self.overlaps(zone)
                inside = (
                    [value >= min_overlap for value in values]
                    if basis == "mask"
                    else [value > 0.0 for value in values]
                )
                found = (inside, list(values))
            elif basis in ("bottom_center", "center") and self.xyxy:
                # The box anchors of every object in one pass (what anchor() and contains() do).
                box = np.asarray(self.xyxy, dtype=np.float64)
                x = (box[:, 0] + box[:, 2]) / 2.0
                y = box[:, 3] if basis == "bottom_center" else (box[:, 1] + box[:, 3]) / 2.0
                raster = zone.raster(self.frame_wh)
                found = (raster.contains_each(x, y).tolist(), [None] * len(self.xyxy))
            else:
                n = len(self._rows)
                found = (
                    [self.member(k, zone, basis, min_overlap)[0] for k in range(n)],
                    [None] * n,
                )
            self._members[key] = found
        return found

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

        At most :data:`~streamseg.rules.footprints.FOOTPRINT_POINTS` columns are kept, spread
        evenly over the box, its first and last included. Returns (M, 2) float64 ``(x, y)``
        frame pixels.
        """
        return self.footprints().of(k)

    def _boxes_array(self) -> npt.NDArray[np.integer]:
        """:attr:`boxes` as one (N, 4) integer array (the masks' own, or built once)."""
        if self._box_array is None:
            self._box_array = np.array(self.boxes, dtype=np.int64).reshape(-1, 4)
        return self._box_array

    def footprints(self) -> Footprints:
        """:meth:`footprint` of every object, computed for all of them in one pass (cached)."""
        found = self._footprints
        if found is None:
            boxes = self._boxes_array()
            runs = self._compact_runs() if self._rows else None
            compiled = accel.kernels()
            if compiled is not None and runs is not None:
                rows = np.asarray(self._rows, dtype=np.int64)
                found = Footprints(*compiled.footprints(runs, rows, boxes, FOOTPRINT_POINTS))
            else:
                owner, column = sample_columns(self._crop_widths())
                found = footprint_points(self._bottoms_at(owner, column), owner, column, boxes)
            self._footprints = found
        return found

    def _crop_widths(self) -> npt.NDArray[np.int64]:
        """(N,) int64 columns of each object's crop."""
        runs = self._compact_runs() if self._rows else None
        if runs is not None:
            return runs.widths[np.asarray(self._rows, dtype=np.int64)]
        boxes = self._boxes_array()
        return np.maximum(boxes[:, 2] - boxes[:, 0] + 1, 0).astype(np.int64)

    def _bottoms_at(
        self, owner: npt.NDArray[np.int64], column: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64]:
        """Crop-relative row of the lowest mask pixel of object ``owner[j]``'s column
        ``column[j]`` (-1: empty column), from the runs when there are some."""
        runs = self._compact_runs() if self._rows else None
        if runs is not None:
            return run_bottoms_at(runs, np.asarray(self._rows, dtype=np.int64)[owner], column)
        bottoms = np.full(owner.size, -1, dtype=np.int64)
        for k in np.unique(owner).tolist():
            crop = self.crop(k)
            at = np.flatnonzero(owner == k)
            picked = crop[:, column[at]]
            bottoms[at] = np.where(
                picked.any(axis=0), (crop.shape[0] - 1) - np.argmax(picked[::-1], axis=0), -1
            )
        return bottoms

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

    def ground_footprint(
        self, k: int, homography: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """Object ``k``'s :meth:`footprint` on the ground: (M, 2) metres (points behind the
        camera left out)."""
        return self.ground_footprints(homography).of(k)

    def ground_footprints(self, homography: npt.NDArray[np.float64]) -> GroundFootprints:
        """Every object's :meth:`footprint` mapped to the ground in one batch.

        Args:
            homography: (3, 3) float64, frame pixels to ground metres. The result is cached
                for the last matrix object passed.
        """
        cached = self._ground_feet
        if cached is not None and cached[0] is homography:
            return cached[1]
        feet = self.footprints()
        compiled = accel.kernels()
        if compiled is not None:
            ground = GroundFootprints(
                *compiled.to_ground(feet.points, feet.offsets, homography, MIN_GROUND_W)
            )
        else:
            ground = to_ground(feet, homography)
        self._ground_feet = (homography, ground)
        return ground

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
        return self.nearest_ground_each([a], others, homography, limit)[0]

    def nearest_ground_each(
        self,
        ks: Sequence[int],
        others: Sequence[int],
        homography: npt.NDArray[np.float64],
        limit: float = math.inf,
    ) -> list[tuple[float, int | None]]:
        """:meth:`nearest_ground_m` of every object of ``ks``, all in one vectorized pass.

        Pairs are pruned by the bounds of their footprints on the ground, then points by the
        bounds of the other footprint; the remaining point pairs are compared exhaustively.

        Args:
            ks: the objects to measure from.
            others: the objects to measure to (an object is never near itself).
            homography: (3, 3) float64, frame pixels to ground metres.
            limit: distances at or above it need not be exact.

        Returns:
            For each of ``ks``, ``(metres, index of the nearest of others)``, exact (for the
            footprint points) when below ``limit``; on a tie the earliest point of ``k``'s
            footprint, then the earliest of ``others``, wins. ``(value >= limit, None)`` when
            none is nearer than ``limit``: the smallest gap between the bounds of the
            footprints, or ``limit`` when some are that close but no points are (``inf`` when
            no other, or ``k`` itself, has a point on the ground).
        """
        if not len(ks):
            return []
        feet = self.ground_footprints(homography)
        a = np.asarray(ks, dtype=np.int64)
        b = np.asarray(others, dtype=np.int64)
        # sqrt(d2) < limit (sqrt rounds correctly) implies d2 < reach2.
        reach2 = float(np.nextafter(limit * limit, np.inf))
        compiled = accel.kernels()
        if compiled is not None:
            distance, other = compiled.nearest_each(
                feet.xy, feet.offsets, feet.bounds, a, b, limit, reach2
            )
            return [
                (d, None if j < 0 else j)
                for d, j in zip(distance.tolist(), other.tolist(), strict=True)
            ]
        # Unmapped footprints have NaN bounds: their gaps are NaN, neither near nor counted.
        gaps2 = box_gaps2(feet.bounds[:, a][:, :, None], feet.bounds[:, b][:, None, :])
        gaps2[a[:, None] == b] = np.nan
        near = gaps2 < reach2
        has_near = near.any(axis=1)
        # A row without a pair within reach gets its smallest gap (>= limit); one with a pair,
        # `limit` until a point pair turns out nearer.
        lowest = np.sqrt(np.fmin.reduce(gaps2, axis=1, initial=np.inf))
        values = np.where(has_near, limit, lowest).tolist()
        result: list[tuple[float, int | None]] = [(value, None) for value in values]
        if not has_near.any():
            return result
        pair_row, pair_col = np.nonzero(near)
        found = nearest_points(feet, a[pair_row], b[pair_col], reach2)
        if found is None:
            return result
        pair, point, d2 = found
        for row, best_d2, col in first_minima(pair_row[pair], d2, point, pair_col[pair]):
            best = math.sqrt(best_d2)
            if best < limit:
                result[row] = (best, int(b[col]))
        return result


def _pixel_box(box: list[float], width: int, height: int) -> Box:
    """The inclusive pixel box covering a float ``xyxy`` box, clipped to the frame."""
    x1 = min(max(math.floor(box[0]), 0), width - 1)
    y1 = min(max(math.floor(box[1]), 0), height - 1)
    x2 = min(max(math.ceil(box[2]), x1), width - 1)
    y2 = min(max(math.ceil(box[3]), y1), height - 1)
    return x1, y1, x2, y2

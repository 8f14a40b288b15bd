"""Drawing detections, zones and traces on frames (the only place masks are upsampled).

Masks arrive as ``supervision.CompactMask`` (crops of the boxes); supervision's
``MaskAnnotator`` paints each crop into its box region, so no full-frame (N, H, W) array is
built even here. Colours follow the track id (a pending or untracked detection takes its class
colour), so one object keeps one colour across frames.

Zones and lines come from the pipeline's config as pixel polygons (:class:`ZoneDrawing`); their
live state (:class:`OverlayState`: counts per class, which zones have an active rule) is given
per frame. A zone is drawn amber, and red while a rule on it is active.

A :class:`FrameAnnotator` keeps the motion traces of one stream: use one per stream
(:meth:`FrameAnnotator.fresh` makes another with the same options).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt
import supervision as sv

from streamseg.rle import decode_compact_crops

logger = logging.getLogger(__name__)

ZONE_IDLE = sv.Color(r=255, g=190, b=0)
"""Colour of a zone with no active rule (amber)."""
ZONE_ACTIVE = sv.Color(r=235, g=30, b=30)
"""Colour of a zone while a rule on it is active (red)."""
ZONE_FILL_OPACITY = 0.18
MASK_OPACITY = 0.45


@dataclass(frozen=True)
class ZoneDrawing:
    """Where a zone or a line is in one stream's frames.

    Attributes:
        id: the zone's id from the pipeline file.
        points_xy: (K, 2) int32, frame pixels: a polygon (K >= 3) or a line / polyline
            (K >= 2, ``is_line``).
        is_line: draw an open polyline (a counting line) instead of a closed polygon.
    """

    id: str
    points_xy: npt.NDArray[np.int32]
    is_line: bool = False

    def __post_init__(self) -> None:
        points = np.asarray(self.points_xy)
        least = 2 if self.is_line else 3
        if points.ndim != 2 or points.shape[1] != 2 or len(points) < least:
            raise ValueError(
                f"zone {self.id!r}: points_xy must be ({least} or more, 2), got shape "
                f"{points.shape}"
            )
        object.__setattr__(self, "points_xy", np.round(points).astype(np.int32))


@dataclass(frozen=True)
class OverlayState:
    """The live state drawn with the zones on one frame.

    Attributes:
        counts: zone id -> class name -> objects counted (what ``on_zone_count`` said last).
        active_zones: zones with at least one active rule.
    """

    counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    active_zones: frozenset[str] = frozenset()


def color_lookup(detections: sv.Detections) -> npt.NDArray[np.int_]:
    """(N,) palette index per detection: its track id, or its class id when it has none."""
    n = len(detections)
    class_id = (
        np.zeros(n, dtype=np.int64)
        if detections.class_id is None
        else np.asarray(detections.class_id, dtype=np.int64)
    )
    if detections.tracker_id is None:
        return class_id
    tracker_id = np.asarray(detections.tracker_id, dtype=np.int64)
    return np.where(tracker_id >= 0, tracker_id, class_id)


class FrameAnnotator:
    """Draws masks, boxes, labels, motion traces and zones for one stream.

    Args:
        masks: draw instance masks (semi-transparent).
        boxes: draw bounding boxes.
        labels: draw "class #track confidence" labels.
        traces: draw each track's recent path (bottom centre of its box).
        trace_length: frames of history per trace.
        zones: the stream's zones and lines, in frame pixels.
    """

    def __init__(
        self,
        masks: bool = True,
        boxes: bool = True,
        labels: bool = True,
        traces: bool = False,
        trace_length: int = 30,
        zones: Sequence[ZoneDrawing] = (),
    ) -> None:
        self.masks = masks
        self.boxes = boxes
        self.labels = labels
        self.traces = traces
        self.trace_length = trace_length
        self.zones = tuple(zones)
        self.palette = sv.ColorPalette.DEFAULT
        self._box = sv.BoxAnnotator(thickness=2)
        # smart_position moves labels apart: in a herd or a pack they were drawn on top of one
        # another, unreadable (about 2 ms more a frame for 23 labels on this CPU).
        self._label = sv.LabelAnnotator(text_scale=0.45, text_padding=3, smart_position=True)
        self._trace = sv.TraceAnnotator(
            position=sv.Position.BOTTOM_CENTER, trace_length=trace_length, thickness=2
        )

    def fresh(self, zones: Sequence[ZoneDrawing] | None = None) -> FrameAnnotator:
        """A new annotator with the same options and no trace history (for another stream).

        Args:
            zones: that stream's zones; None keeps these.
        """
        return FrameAnnotator(
            masks=self.masks,
            boxes=self.boxes,
            labels=self.labels,
            traces=self.traces,
            trace_length=self.trace_length,
            zones=self.zones if zones is None else zones,
        )

    def annotate(
        self,
        image: npt.NDArray[np.uint8],
        detections: sv.Detections,
        overlay: OverlayState | None = None,
    ) -> npt.NDArray[np.uint8]:
        """Return a new annotated copy of ``image``.

        Args:
            image: (H, W, 3) uint8 BGR, frame pixels.
            detections: the frame's detections (xyxy in frame pixels; masks as CompactMask or
                dense (N, H, W) bool).
            overlay: zone counts and states for this frame; None draws the zones idle.

        Returns:
            A new (H, W, 3) uint8 BGR image.
        """
        scene = image.copy()
        overlay = overlay or OverlayState()
        for zone in self.zones:
            draw_zone(scene, zone, overlay, label=False)
        lookup = color_lookup(detections)
        if self.masks and detections.mask is not None and len(detections):
            paint_masks(scene, detections, lookup, self.palette, MASK_OPACITY)
        if self.traces and (len(detections) == 0 or detections.tracker_id is not None):
            # Fed on every frame, even an empty one, so a trace stays a window in time.
            scene = self._trace.annotate(scene, detections, custom_color_lookup=lookup)
        if len(detections) == 0:
            self._zone_labels(scene, overlay)
            return scene
        if self.boxes:
            scene = self._box.annotate(scene, detections, custom_color_lookup=lookup)
        if self.labels:
            scene = self._label.annotate(
                scene, detections, labels=detection_labels(detections), custom_color_lookup=lookup
            )
        self._zone_labels(scene, overlay)
        return scene

    def _zone_labels(self, scene: npt.NDArray[np.uint8], overlay: OverlayState) -> None:
        # Last, so a zone's count and state stay readable under crowded object labels.
        for zone in self.zones:
            draw_zone_label(scene, zone, overlay)


def zone_label(zone_id: str, counts: Mapping[str, int] | None) -> str:
    """``"gate: person 2, truck 1"`` (classes sorted; zero counts left out)."""
    parts = [f"{name} {count}" for name, count in sorted((counts or {}).items()) if count]
    return f"{zone_id}: {', '.join(parts)}" if parts else zone_id


def draw_zone(
    scene: npt.NDArray[np.uint8], zone: ZoneDrawing, overlay: OverlayState, label: bool = True
) -> None:
    """Draw one zone or line (and its label, unless ``label`` is false), in place.

    Args:
        scene: (H, W, 3) uint8 BGR, modified in place.
        zone: where the zone is.
        overlay: its counts and state.
        label: also draw the label (:func:`draw_zone_label`).
    """
    color = zone_color(zone, overlay)
    points = zone.points_xy
    if zone.is_line:
        cv2.polylines(scene, [points], False, color.as_bgr(), 3, cv2.LINE_AA)
        for x, y in points[[0, -1]]:
            cv2.circle(scene, (int(x), int(y)), 5, color.as_bgr(), -1, cv2.LINE_AA)
    else:
        _fill_polygon(scene, points, color, ZONE_FILL_OPACITY)
        cv2.polylines(scene, [points], True, color.as_bgr(), 2, cv2.LINE_AA)
    if label:
        draw_zone_label(scene, zone, overlay)


def zone_color(zone: ZoneDrawing, overlay: OverlayState) -> sv.Color:
    """Red while a rule on the zone is active, else amber."""
    return ZONE_ACTIVE if zone.id in overlay.active_zones else ZONE_IDLE


def draw_zone_label(scene: npt.NDArray[np.uint8], zone: ZoneDrawing, overlay: OverlayState) -> None:
    """Draw a zone's label (id and counts) in place: above a polygon's top corner, beside a
    line's first end, always inside the frame."""
    points = zone.points_xy
    if zone.is_line:
        corner = points[0].astype(np.float64) + np.array([8.0, -8.0])
    else:
        corner = points[np.argmin(points[:, 1])].astype(np.float64) - np.array([0.0, 6.0])
    text = zone_label(zone.id, overlay.counts.get(zone.id))
    _draw_label(scene, text, corner, zone_color(zone, overlay))


def _draw_label(
    scene: npt.NDArray[np.uint8],
    text: str,
    bottom_left_xy: npt.NDArray[np.float64],
    color: sv.Color,
) -> None:
    """A filled label whose box starts at ``bottom_left_xy``, moved inside the frame."""
    scale, thickness, padding = 0.5, 1, 4
    (text_w, text_h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    half_w, half_h = text_w / 2 + padding, text_h / 2 + padding
    height, width = scene.shape[:2]
    x = float(np.clip(bottom_left_xy[0] + half_w, half_w, max(half_w, width - half_w)))
    y = float(np.clip(bottom_left_xy[1] - half_h, half_h, max(half_h, height - half_h)))
    sv.draw_text(
        scene,
        text,
        sv.Point(x, y),
        text_color=sv.Color.BLACK if color == ZONE_IDLE else sv.Color.WHITE,
        text_scale=scale,
        text_thickness=thickness,
        text_padding=padding,
        background_color=color,
    )


def _fill_polygon(
    scene: npt.NDArray[np.uint8], points: npt.NDArray[np.int32], color: sv.Color, opacity: float
) -> None:
    """Blend a filled polygon into ``scene`` over its bounding box only (not the whole frame)."""
    height, width = scene.shape[:2]
    x1, y1 = np.maximum(points.min(axis=0), 0)
    x2, y2 = np.minimum(points.max(axis=0) + 1, (width, height))
    if x1 >= x2 or y1 >= y2:
        return
    roi = scene[y1:y2, x1:x2]
    mask = np.zeros(roi.shape[:2], dtype=np.uint8)
    cv2.fillPoly(mask, [points - (x1, y1)], 1)
    inside = mask.astype(bool)
    tint = np.array(color.as_bgr(), dtype=np.float32)
    roi[inside] = (roi[inside] * (1 - opacity) + tint * opacity).astype(np.uint8)


def paint_masks(
    scene: npt.NDArray[np.uint8],
    detections: sv.Detections,
    lookup: npt.NDArray[np.int_],
    palette: sv.ColorPalette,
    opacity: float,
) -> None:
    """Blend each detection's mask into ``scene`` in place, within its box only.

    What ``supervision.MaskAnnotator`` draws (larger masks first, so small objects stay on
    top), at a fraction of its cost on large frames: it blends a full-frame layer, this touches
    only the masks' pixels. CompactMask crops are decoded in one vectorized pass.

    Args:
        scene: (H, W, 3) uint8 BGR, modified in place.
        detections: masks as ``sv.CompactMask`` (frame coordinates) or dense (N, H, W).
        lookup: (N,) palette index per detection (:func:`color_lookup`).
        palette: colours by index.
        opacity: weight of the colour over the image.
    """
    mask = detections.mask
    if mask is None or len(detections) == 0:
        return
    height, width = scene.shape[:2]
    if isinstance(mask, sv.CompactMask):
        crops, counted = decode_compact_crops(mask)
        origins = np.asarray(mask.offsets, dtype=np.int64).reshape(-1, 2)
    else:
        # Dense masks may reach outside their boxes: paint them whole (they are rare here).
        counted = None
        crops = list(np.asarray(mask, dtype=bool))
        origins = np.zeros((len(crops), 2), dtype=np.int64)
    areas = counted.tolist() if counted is not None else [int(np.count_nonzero(c)) for c in crops]
    for i in sorted(range(len(crops)), key=lambda j: -areas[j]):
        crop = crops[i]
        if areas[i] == 0:
            continue
        x1, y1 = (int(v) for v in origins[i])
        h = min(crop.shape[0], height - y1)
        w = min(crop.shape[1], width - x1)
        if h <= 0 or w <= 0 or x1 < 0 or y1 < 0:
            continue
        roi = scene[y1 : y1 + h, x1 : x1 + w]
        tint = np.empty_like(roi)
        tint[:] = palette.by_idx(int(lookup[i])).as_bgr()
        blended = cv2.addWeighted(roi, 1.0 - opacity, tint, opacity, 0.0)
        cv2.copyTo(blended, crop[:h, :w].view(np.uint8), roi)  # only the mask's pixels


def detection_labels(detections: sv.Detections) -> list[str]:
    """One label per detection: ``"person #7 0.91"`` (track id only when tracked)."""
    names = detections.data.get("class_name")
    labels = []
    for i in range(len(detections)):
        if names is not None:
            parts = [str(names[i])]
        else:
            parts = ["object" if detections.class_id is None else str(detections.class_id[i])]
        if detections.tracker_id is not None and detections.tracker_id[i] >= 0:
            parts.append(f"#{int(detections.tracker_id[i])}")
        if detections.confidence is not None:
            parts.append(f"{float(detections.confidence[i]):.2f}")
        labels.append(" ".join(parts))
    return labels

"""Zone and calibration previews: one frame of each source with what the rules will test drawn
on it (``streamseg preview``).

Writing zones by hand means guessing pixels; a preview shows where they landed before the
pipeline runs. Per source it draws:

* every zone and line of the stream, as the recording draws them (the same pixel conversion as
  the rules, :func:`streamseg.record.zones.zone_drawings`), with its id;
* for each line, an arrow from ``points[0]`` to ``points[1]`` and an ``L`` and ``R`` on its two
  sides: the sides a ``cross`` rule's ``direction`` (``left_to_right``, ...) names;
* with a ``calibration``, its four image points labelled with their ground coordinates, and a
  ground grid in metres mapped back into the image: a grid that does not lie flat on the
  ground, or squares that are not square, mean the calibration (and every ``near`` distance in
  metres) is wrong.

Everything but :func:`capture_frame` is pure drawing on a given image.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from streamseg.config import SourceConfig
from streamseg.config.zones import CalibrationConfig, ZoneConfig
from streamseg.outputs.annotate import OverlayState, ZoneDrawing, draw_zone
from streamseg.record.zones import zone_drawings
from streamseg.rules.geometry import GroundPlane, to_frame_px
from streamseg.types import Frame

logger = logging.getLogger(__name__)

GRID_BGR: Final = (255, 255, 0)
"""Colour of the ground grid (cyan)."""
MARK_BGR: Final = (255, 0, 255)
"""Colour of the calibration marks (magenta)."""
SIDE_OFFSET_PX: Final = 14.0
"""How far from a line's midpoint its ``L`` / ``R`` labels sit."""
GRID_STEPS_M: Final = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
"""Grid spacings to choose from: the smallest that keeps the grid to :data:`MAX_GRID_LINES`."""
MAX_GRID_LINES: Final = 16
"""Most grid lines per ground axis."""
GRID_SAMPLES: Final = 64
"""Points per grid line (a straight ground line stays straight in the image, but its part
behind the camera must be cut off)."""


def side_label_points(
    a: npt.ArrayLike, b: npt.ArrayLike, offset: float = SIDE_OFFSET_PX
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Where a line's ``L`` and ``R`` labels go: beside its midpoint, ``offset`` pixels out.

    Left and right are seen looking from ``a`` to ``b`` with image rows growing downwards, as
    :meth:`streamseg.rules.geometry.Segment.signed_distance` and the ``cross`` rule see them.

    Returns:
        ``((left x, left y), (right x, right y))``.
    """
    (ax, ay), (bx, by) = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    length = math.hypot(bx - ax, by - ay) or 1.0
    # The left normal of (dx, dy) with y down is (dy, -dx).
    nx, ny = (by - ay) / length, -(bx - ax) / length
    mx, my = (ax + bx) / 2, (ay + by) / 2
    return (mx + offset * nx, my + offset * ny), (mx - offset * nx, my - offset * ny)


def grid_step(extent_m: float) -> float:
    """The grid spacing for a ground extent: the smallest of :data:`GRID_STEPS_M` that needs no
    more than :data:`MAX_GRID_LINES` lines."""
    for step in GRID_STEPS_M:
        if extent_m / step <= MAX_GRID_LINES:
            return step
    return GRID_STEPS_M[-1]


def ground_grid(
    calibration: CalibrationConfig, frame_wh: tuple[int, int]
) -> tuple[float, list[npt.NDArray[np.float64]]]:
    """Grid lines of constant ground x and y around the calibration marks, in frame pixels.

    The grid spans the marks' ground bounding box grown by its own size on every side. Each line
    is sampled and mapped with the inverse of the calibration's homography; only the points in
    front of the camera are kept, so a line may be cut or missing near the horizon.

    Returns:
        ``(spacing in metres, [(N, 2) frame pixels per line piece])``.
    """
    matrix = GroundPlane(calibration).matrix(frame_wh)
    inverse = np.asarray(np.linalg.inv(matrix), dtype=np.float64)
    ground = np.asarray(calibration.ground_points, dtype=np.float64)
    low, high = ground.min(0), ground.max(0)
    span = high - low
    low, high = low - span, high + span
    step = grid_step(float(max(span.max() * 3, 1e-6)))
    pieces: list[npt.NDArray[np.float64]] = []
    for axis in (0, 1):
        other = 1 - axis
        start = math.ceil(low[axis] / step) * step
        for value in np.arange(start, high[axis] + step / 2, step):
            line = np.empty((GRID_SAMPLES, 2), dtype=np.float64)
            line[:, axis] = value
            line[:, other] = np.linspace(low[other], high[other], GRID_SAMPLES)
            pieces += _to_frame(inverse, line, frame_wh)
    return step, pieces


def _to_frame(
    inverse: npt.NDArray[np.float64], ground: npt.NDArray[np.float64], frame_wh: tuple[int, int]
) -> list[npt.NDArray[np.float64]]:
    """Ground points to frame pixels, split where they pass behind the camera (``w <= 0``)."""
    w = ground @ inverse[2, :2] + inverse[2, 2]
    pixels = (ground @ inverse[:2, :2].T + inverse[:2, 2]) / np.where(w > 0, w, 1.0)[:, None]
    # Keep coordinates within a few frames of the image: cv2 draws them clipped, in int32.
    limit = 4 * max(frame_wh)
    front = (w > 1e-12) & (np.abs(pixels) < limit).all(1)
    pieces = []
    edges = np.flatnonzero(np.diff(np.concatenate(([0], front.astype(np.int8), [0]))))
    for begin, end in zip(edges[::2], edges[1::2], strict=True):
        if end - begin >= 2:
            pieces.append(pixels[begin:end])
    return pieces


def _point(x: float, y: float) -> tuple[int, int]:
    """The nearest pixel, as OpenCV's drawing functions take it."""
    return round(float(x)), round(float(y))


def _label(
    image: npt.NDArray[np.uint8], text: str, xy: tuple[float, float], bgr: tuple[int, int, int]
) -> None:
    """Text centred on ``xy`` with a dark outline, readable on any background."""
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.45
    (w, h), _ = cv2.getTextSize(text, font, scale, 1)
    org = _point(xy[0] - w / 2, xy[1] + h / 2)
    cv2.putText(image, text, org, font, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, org, font, scale, bgr, 1, cv2.LINE_AA)


def draw_preview(
    image: npt.NDArray[np.uint8],
    stream_id: str,
    zones: Sequence[ZoneConfig],
    calibration: CalibrationConfig | None,
) -> npt.NDArray[np.uint8]:
    """A copy of ``image`` (BGR) with the stream's zones, line sides and calibration drawn.

    Args:
        image: (H, W, 3) uint8 BGR frame of the stream.
        stream_id: the stream, to pick its zones (``zone.streams``).
        zones: the pipeline's ``zones`` section.
        calibration: the stream's ground calibration, or None.
    """
    scene = np.ascontiguousarray(image).copy()
    height, width = scene.shape[:2]
    frame_wh = (width, height)
    notes = [f"{stream_id} {width}x{height}"]
    if calibration is not None:
        step, pieces = ground_grid(calibration, frame_wh)
        for piece in pieces:
            cv2.polylines(scene, [np.round(piece).astype(np.int32)], False, GRID_BGR, 1, cv2.LINE_8)
        image_points = to_frame_px(calibration.image_points, calibration.units, frame_wh)
        for (x, y), (gx, gy) in zip(image_points, calibration.ground_points, strict=True):
            cv2.circle(scene, _point(x, y), 5, MARK_BGR, -1, cv2.LINE_AA)
            _label(scene, f"({gx:g}, {gy:g}) m", (x, y - 14), MARK_BGR)
        notes.append(f"ground grid every {step:g} m")
    drawings = zone_drawings(zones, stream_id, frame_wh)
    for zone in drawings:
        draw_zone(scene, zone, OverlayState())
        if zone.is_line:
            _draw_sides(scene, zone)
    if not drawings:
        notes.append("no zones")
    _note(scene, ", ".join(notes))
    return scene


def _note(scene: npt.NDArray[np.uint8], text: str) -> None:
    """A line of white text on black in the top-left corner."""
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.45
    (w, h), baseline = cv2.getTextSize(text, font, scale, 1)
    cv2.rectangle(scene, (0, 0), (w + 8, h + baseline + 8), (0, 0, 0), -1)
    cv2.putText(scene, text, (4, h + 4), font, scale, (255, 255, 255), 1, cv2.LINE_AA)


def _draw_sides(scene: npt.NDArray[np.uint8], zone: ZoneDrawing) -> None:
    """An arrow from a line's first point to its second, and its L / R sides."""
    a, b = zone.points_xy[0].astype(np.float64), zone.points_xy[-1].astype(np.float64)
    mid = (a + b) / 2
    direction = (b - a) / (np.linalg.norm(b - a) or 1.0)
    tip = mid + 24 * direction
    cv2.arrowedLine(
        scene,
        _point(*mid),
        _point(*tip),
        (255, 255, 255),
        2,
        cv2.LINE_AA,
        tipLength=0.4,
    )
    left, right = side_label_points(a, b)
    _label(scene, "L", left, (255, 255, 255))
    _label(scene, "R", right, (255, 255, 255))


def capture_frame(source_config: SourceConfig, timeout_s: float, at_s: float = 0.0) -> Frame:
    """A frame of a source, opening and closing it as the runtime would.

    Args:
        source_config: one entry of the pipeline's ``sources`` (file, RTSP or USB).
        timeout_s: how long to wait for the first frame (and, with ``at_s``, that much longer
            for the chosen one).
        at_s: the first frame at least this many seconds of stream time after the first one
            (a file is read up to it; a camera is watched that long).

    Raises:
        TimeoutError: no frame in time, or the source ended (a missing file, a file shorter
            than ``at_s``) or failed first; the message says what the source reported.
    """
    from streamseg.sources import build_source

    source = build_source(source_config)
    source.start()
    deadline = time.monotonic() + timeout_s + at_s
    first_pts: float | None = None
    last_pts = 0.0
    try:
        while True:
            frame = source.get(max(0.0, deadline - time.monotonic()))
            if frame is None:
                break
            if first_pts is None:
                first_pts = frame.pts_s
            last_pts = frame.pts_s
            if frame.pts_s - first_pts >= at_s - 1e-6:
                return frame
    finally:
        source.stop()
    stats = source.stats()
    reason = f": {stats.last_error}" if stats.last_error else ""
    if first_pts is not None:
        what = f"reached no frame {at_s:g} s after its first"
    else:
        what = "delivered no frame"
    if not stats.state.terminal:
        when = f"within {timeout_s + at_s:g} s"
    elif first_pts is not None:
        # A file shorter than --at: say how far it goes, so the next try fits.
        when = f"before it ended (its last frame is {last_pts - first_pts:.2f} s after its first)"
    else:
        when = "before it ended"
    raise TimeoutError(
        f"source {source.stream_id!r}: {what} {when} (state {stats.state.value}{reason})"
    )

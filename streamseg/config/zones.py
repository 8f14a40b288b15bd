"""The ``zones`` section (polygons and lines the rules watch) and a source's ground calibration.

Coordinates are frame pixels (``units: px``, x to the right, y down, the pixel grid of the
decoded frame) or fractions of the frame's width and height (``units: normalized``, in [0, 1]),
which keep a zone right when a camera's resolution changes. A zone applies to one stream
(``stream: gate``), a list (``streams: [gate, crane]``) or, with neither key, every stream.

Example::

    zones:
      - id: swing                      # a polygon: at least 3 points, edges must not cross
        type: polygon
        stream: yard
        units: normalized
        points: [[0.30, 0.55], [0.62, 0.55], [0.70, 0.90], [0.22, 0.90]]
      - id: halfway                    # a line: exactly 2 distinct points (cross rules)
        type: line
        points: [[320, 0], [320, 359]]

Validation is pure geometry on the numbers written; whether a pixel zone fits in the frame is
only known at run time (parts outside the frame never match).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from itertools import combinations
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator, model_validator

from streamseg.config._base import ConfigModel, Float, Identifier

logger = logging.getLogger(__name__)

MAX_COORDINATE = 1e6
"""Largest magnitude of a point's coordinate: far beyond any frame (or ground, in metres), and
small enough for the fixed-point polygon fill (1/16 px in int32)."""

Coordinate = Annotated[Float, Field(ge=-MAX_COORDINATE, le=MAX_COORDINATE)]

Point = tuple[Coordinate, Coordinate]
"""``[x, y]``: frame pixels or normalized fractions, depending on ``units``."""

Units = Literal["px", "normalized"]

_AREA_EPS = 1e-9
"""Relative area (of the bounding box's) under which a polygon or triangle counts as flat."""


def points_as_pairs(value: Any) -> Any:
    """Refuse a flat list of numbers (``[0.1, 0.2, 0.5, 0.2, ...]``) with the pairs it was
    meant to be, rather than one "input should be a valid tuple" per number (a ``mode="before"``
    validator; anything else passes on to the field's own checks)."""
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        pairs = ", ".join(f"[{value[i]:g}, {value[i + 1]:g}]" for i in range(0, len(value) - 1, 2))
        odd = " (an odd count: a coordinate is missing)" if len(value) % 2 else ""
        raise ValueError(
            f"a flat list of {len(value)} numbers{odd}; expected [x, y] pairs: [{pairs}]"
        )
    return value


def _name(info: ValidationInfo) -> str:
    zone_id = info.data.get("id")
    return f"zone {zone_id!r}" if zone_id is not None else "zone"


def _check_fractions_in_px(points: Sequence[Point], info: ValidationInfo, what: str) -> None:
    """In pixels (``units: px``, the default), points that are all fractions in [0, 1] would
    outline less than one pixel, inside which nothing ever is: ``units: normalized`` was
    meant. Not judged when ``units`` itself is wrong (its own error says so)."""
    if info.data.get("units", "normalized") == "normalized":
        return
    coordinates = [c for point in points for c in point]
    if all(0.0 <= c <= 1.0 for c in coordinates) and any(c != int(c) for c in coordinates):
        raise ValueError(
            f"{what}: every point is within [0, 1], fractions of the frame by the look of it, "
            "but units is px (the default), where this covers less than one pixel; expected "
            "units: normalized"
        )


def _check_units(points: Sequence[Point], info: ValidationInfo, what: str) -> None:
    """Points fit their ``units``: fractions in [0, 1] when normalized, not all fractions in
    pixels (:func:`_check_fractions_in_px`)."""
    _check_fractions_in_px(points, info, what)
    if info.data.get("units") != "normalized":
        return
    for index, (x, y) in enumerate(points):
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(
                f"{what}: points[{index}] = [{x:g}, {y:g}] is outside [0, 1]; expected "
                "fractions of the frame with units: normalized (or set units: px)"
            )


def _cross(o: Point, a: Point, b: Point) -> float:
    """z of (a - o) x (b - o): > 0 counter-clockwise in x-right/y-up terms."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _on_segment(p: Point, a: Point, b: Point) -> bool:
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def segments_intersect(a: Point, b: Point, c: Point, d: Point) -> bool:
    """Whether the closed segments ``ab`` and ``cd`` share a point (touching counts)."""
    d1, d2 = _cross(c, d, a), _cross(c, d, b)
    d3, d4 = _cross(a, b, c), _cross(a, b, d)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    return (
        (d1 == 0 and _on_segment(a, c, d))
        or (d2 == 0 and _on_segment(b, c, d))
        or (d3 == 0 and _on_segment(c, a, b))
        or (d4 == 0 and _on_segment(d, a, b))
    )


def polygon_area(points: Sequence[Point]) -> float:
    """Signed shoelace area of a closed polygon, in squared units of ``points``."""
    total = 0.0
    for (x1, y1), (x2, y2) in zip(points, [*points[1:], points[0]], strict=True):
        total += x1 * y2 - x2 * y1
    return total / 2.0


def polygon_problem(points: Sequence[Point]) -> str | None:
    """What makes ``points`` an unusable polygon outline, or ``None`` when it is fine.

    Checks, in order: at least 3 points, no two consecutive points equal, edges that do not
    cross or touch except consecutive edges at their shared corner, and a non-zero area.
    """
    n = len(points)
    if n < 3:
        return f"a polygon needs at least 3 points, got {n}"
    for i in range(n):
        j = (i + 1) % n
        if points[i] == points[j]:
            return f"points[{i}] and points[{j}] are the same point; expected distinct corners"
    for i, j in combinations(range(n), 2):
        if j == i + 1 or (i == 0 and j == n - 1):
            continue  # neighbours share a corner
        a, b = points[i], points[(i + 1) % n]
        c, d = points[j], points[(j + 1) % n]
        if segments_intersect(a, b, c, d):
            return (
                f"edge points[{i}]-points[{(i + 1) % n}] crosses edge "
                f"points[{j}]-points[{(j + 1) % n}] (self-intersecting); expected the corners "
                "in order around the outline"
            )
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    box = (max(xs) - min(xs)) * (max(ys) - min(ys))
    if abs(polygon_area(points)) <= _AREA_EPS * max(box, 1e-12):
        return "the polygon has zero area (all points on one line)"
    return None


class _ZoneBase(ConfigModel):
    """Keys every zone has."""

    id: Identifier = Field(description="unique id of the zone (letters, digits, _ and -)")
    stream: Identifier | None = Field(
        default=None, description="the one stream this zone applies to (omit for every stream)"
    )
    streams: list[Identifier] | None = Field(
        default=None, min_length=1, description="the streams this zone applies to"
    )
    units: Units = Field(
        default="px",
        description="px: frame pixels; normalized: fractions of the frame width and height",
    )

    @field_validator("streams")
    @classmethod
    def _one_stream_key(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is not None and info.data.get("stream") is not None:
            raise ValueError(f"{_name(info)}: expected either 'stream' or 'streams', not both")
        return value

    @property
    def stream_ids(self) -> tuple[str, ...] | None:
        """The streams this zone applies to, or ``None`` for every stream."""
        if self.stream is not None:
            return (self.stream,)
        return tuple(self.streams) if self.streams is not None else None

    def applies_to(self, stream_id: str) -> bool:
        """Whether this zone exists on ``stream_id``."""
        ids = self.stream_ids
        return ids is None or stream_id in ids


class PolygonZoneConfig(_ZoneBase):
    """An area: a simple polygon (corners in order, edges not crossing, non-zero area)."""

    type: Literal["polygon"] = Field(description="zone type")
    points: list[Point] = Field(description="corners [[x, y], ...] in order around the outline")

    _pairs = field_validator("points", mode="before")(points_as_pairs)

    @field_validator("points")
    @classmethod
    def _simple_polygon(cls, points: list[Point], info: ValidationInfo) -> list[Point]:
        problem = polygon_problem(points)
        if problem is not None:
            raise ValueError(f"{_name(info)}: {problem}")
        _check_units(points, info, _name(info))
        return points


class LineZoneConfig(_ZoneBase):
    """A line segment from ``points[0]`` (A) to ``points[1]`` (B), for ``cross`` rules.

    Its sides are named looking from A towards B as drawn on the image: ``left`` is on your left
    hand (see :mod:`streamseg.rules.kinds.cross`).
    """

    type: Literal["line"] = Field(description="zone type")
    points: list[Point] = Field(description="the two ends [[xa, ya], [xb, yb]] of the segment")

    _pairs = field_validator("points", mode="before")(points_as_pairs)

    @field_validator("points")
    @classmethod
    def _two_distinct_points(cls, points: list[Point], info: ValidationInfo) -> list[Point]:
        if len(points) != 2:
            raise ValueError(f"{_name(info)}: a line needs exactly 2 points, got {len(points)}")
        if points[0] == points[1]:
            raise ValueError(f"{_name(info)}: the line's two points are the same point")
        _check_units(points, info, _name(info))
        return points


ZoneConfig = Annotated[PolygonZoneConfig | LineZoneConfig, Field(discriminator="type")]
"""One entry of ``zones``: ``type`` picks polygon or line."""


def _collinear_triple(points: Sequence[Point]) -> tuple[int, int, int] | None:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    scale = max(max(xs) - min(xs), max(ys) - min(ys), 1e-12) ** 2
    for i, j, k in combinations(range(len(points)), 3):
        if abs(_cross(points[i], points[j], points[k])) <= 1e-6 * scale:
            return i, j, k
    return None


def _marks_on_one_side(image: Sequence[Point], ground: Sequence[Point]) -> bool:
    """True when the homography image -> ground gives the four marks one sign of ``w``.

    A mapping of the points of one plane seen by a camera does; swapped points (a bow-tie)
    do not. Scaling the image points (pixels or fractions) changes no sign.
    """
    rows, rhs = [], []
    for (x, y), (u, v) in zip(image, ground, strict=True):
        rows.append([x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y])
        rows.append([0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y])
        rhs += [u, v]
    try:
        h = np.linalg.solve(np.asarray(rows, dtype=np.float64), np.asarray(rhs))
    except np.linalg.LinAlgError:
        return False
    w = [h[6] * x + h[7] * y + 1.0 for x, y in image]
    return all(value > 0 for value in w) or all(value < 0 for value in w)


class CalibrationConfig(ConfigModel):
    """A ground-plane calibration: four image points and where they lie on the ground.

    The four pairs define a homography from frame pixels to ground metres, used by ``near``
    rules with ``units: m``. Pick four marks on flat ground spread over the view (the corners
    of a parking bay, a pitch's penalty box), measure their positions in metres in any
    right-handed ground frame, and read their pixels off a frame.

    Example::

        calibration:
          image_points: [[102, 710], [1180, 705], [890, 402], [370, 405]]
          ground_points: [[0, 0], [12, 0], [12, 20], [0, 20]]
    """

    # units first: the image_points validator reads it (an error then points at the point).
    units: Units = Field(
        default="px",
        description="units of image_points: px (frame pixels) or normalized (fractions)",
    )
    image_points: list[Point] = Field(
        description="four points on the ground in the image [[x, y], ...] (see units)"
    )
    ground_points: list[Point] = Field(
        description="the same four points on the ground plane, metres [[x, y], ...]"
    )

    _pairs = field_validator("image_points", "ground_points", mode="before")(points_as_pairs)

    @field_validator("image_points", "ground_points")
    @classmethod
    def _four_in_general_position(cls, points: list[Point], info: ValidationInfo) -> list[Point]:
        if len(points) != 4:
            raise ValueError(f"expected exactly 4 points, got {len(points)}")
        if info.field_name == "image_points":
            _check_fractions_in_px(points, info, "image_points")
        triple = _collinear_triple(points)
        if triple is not None:
            i, j, k = triple
            raise ValueError(
                f"points[{i}], points[{j}] and points[{k}] are on one line; expected 4 points "
                "with no three on a line (e.g. the corners of a rectangle on the ground)"
            )
        return points

    @model_validator(mode="after")
    def _one_side_of_the_horizon(self) -> CalibrationConfig:
        if not _marks_on_one_side(self.image_points, self.ground_points):
            raise ValueError(
                "image_points and ground_points do not describe one ground plane (the "
                "homography between them puts some marks beyond the horizon); check that the "
                "two lists name the same four marks in the same order"
            )
        return self

    @field_validator("image_points")
    @classmethod
    def _normalized_in_range(cls, points: list[Point], info: ValidationInfo) -> list[Point]:
        if info.data.get("units") == "normalized":
            for index, (x, y) in enumerate(points):
                if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                    raise ValueError(
                        f"image_points[{index}] = [{x:g}, {y:g}] is outside [0, 1]; expected "
                        "fractions of the frame with units: normalized"
                    )
        return points

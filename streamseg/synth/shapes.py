"""Silhouettes of the six classes, drawn as a handful of 3-D primitives per object.

Every object is built in its own frame: ``a`` metres forward along its heading, ``c`` metres to
its left, ``u`` metres up, feet at the origin. Parts are ellipsoids (bodies, heads, wheels),
limbs (legs, arms, booms: thick segments), boxes (machines, torsos: shaded visible faces) and flat
polygons. A :class:`PartList` collects them, sorts them far to near along the camera's view and
draws each one twice on a :class:`Canvas`: the colour into the image and the object's slot number
into the id buffer, so the id buffer ends up holding, per pixel, the nearest object (painter's
algorithm) and its visible masks are disjoint by construction.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

from streamseg.synth.camera import GroundCamera

logger = logging.getLogger(__name__)

Colour = tuple[float, float, float]
"""BGR, 0..255."""


def scale_colour(colour: Colour, factor: float) -> Colour:
    """``colour`` times ``factor``, each channel capped at 255."""
    return (
        min(255.0, colour[0] * factor),
        min(255.0, colour[1] * factor),
        min(255.0, colour[2] * factor),
    )


_SHIFT = 4  # cv2 fractional bits: vertices at 1/16 pixel, so slow motion stays smooth
_ONE = float(1 << _SHIFT)

# Box faces: (outward normal in the box frame, corner indices in order).
_BOX_FACES: tuple[tuple[tuple[float, float, float], tuple[int, int, int, int]], ...] = (
    ((1.0, 0.0, 0.0), (1, 3, 7, 5)),
    ((-1.0, 0.0, 0.0), (0, 4, 6, 2)),
    ((0.0, 1.0, 0.0), (2, 6, 7, 3)),
    ((0.0, -1.0, 0.0), (0, 1, 5, 4)),
    ((0.0, 0.0, 1.0), (4, 5, 7, 6)),
    ((0.0, 0.0, -1.0), (0, 2, 3, 1)),
)
_BOX_SIGNS = tuple((sa, sc, su) for su in (-1.0, 1.0) for sc in (-1.0, 1.0) for sa in (-1.0, 1.0))


class Canvas:
    """The image and the id buffer of one frame, drawn together.

    Args:
        image: (H, W, 3) uint8 BGR, drawn in place.
        ids: (H, W) uint8, drawn in place; 0 is background, ``k`` is the object in slot ``k``.
    """

    def __init__(self, image: npt.NDArray[np.uint8], ids: npt.NDArray[np.uint8]) -> None:
        self.image = image
        self.ids = ids
        self.height, self.width = ids.shape
        self._slot = 0
        self._box = [math.inf, math.inf, -math.inf, -math.inf]

    def begin(self, slot: int) -> None:
        """Start drawing the object in id-buffer slot ``slot`` (1..255)."""
        self._slot = slot
        self._box = [math.inf, math.inf, -math.inf, -math.inf]

    def drawn_box(self) -> tuple[int, int, int, int] | None:
        """Pixel box (x1, y1, x2, y2), inclusive and clipped, that holds everything drawn since
        :meth:`begin`; None when nothing landed inside the frame."""
        if not math.isfinite(self._box[0]) or not math.isfinite(self._box[2]):
            return None
        x1 = max(0, math.floor(self._box[0]) - 1)
        y1 = max(0, math.floor(self._box[1]) - 1)
        x2 = min(self.width - 1, math.ceil(self._box[2]) + 1)
        y2 = min(self.height - 1, math.ceil(self._box[3]) + 1)
        if x2 < x1 or y2 < y1:
            return None
        return x1, y1, x2, y2

    def _grow(self, x1: float, y1: float, x2: float, y2: float) -> None:
        box = self._box
        if x1 < box[0]:
            box[0] = x1
        if y1 < box[1]:
            box[1] = y1
        if x2 > box[2]:
            box[2] = x2
        if y2 > box[3]:
            box[3] = y2

    def ellipse(
        self, x: float, y: float, ax1: float, ax2: float, angle_deg: float, colour: Colour
    ) -> None:
        """Filled ellipse, centre (x, y) pixels, half axes ``ax1`` along ``angle_deg``, ``ax2``."""
        ax1 = max(ax1, 0.5)
        ax2 = max(ax2, 0.5)
        reach = max(ax1, ax2)
        self._grow(x - reach, y - reach, x + reach, y + reach)
        centre = (int(x * _ONE), int(y * _ONE))
        axes = (int(ax1 * _ONE), int(ax2 * _ONE))
        cv2.ellipse(self.image, centre, axes, angle_deg, 0, 360, colour, -1, cv2.LINE_8, _SHIFT)
        cv2.ellipse(self.ids, centre, axes, angle_deg, 0, 360, self._slot, -1, cv2.LINE_8, _SHIFT)

    def polygon(self, pts: npt.NDArray[np.float64], colour: Colour, ids: bool = True) -> None:
        """Filled polygon, ``pts`` (K, 2) float pixels; ``ids=False`` paints colour only."""
        self._grow(pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max())
        fixed = [(pts * _ONE).astype(np.int32)]
        cv2.fillPoly(self.image, fixed, colour, cv2.LINE_8, _SHIFT)
        if ids:
            cv2.fillPoly(self.ids, fixed, self._slot, cv2.LINE_8, _SHIFT)

    def id_polygon(self, pts: npt.NDArray[np.float64]) -> None:
        """Filled polygon ``pts`` (K, 2) float pixels into the id buffer only."""
        self._grow(pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max())
        cv2.fillPoly(self.ids, [(pts * _ONE).astype(np.int32)], self._slot, cv2.LINE_8, _SHIFT)

    def line(
        self, x1: float, y1: float, x2: float, y2: float, thickness: int, colour: Colour
    ) -> None:
        """Thick segment with round caps between two pixel points."""
        half = thickness / 2.0 + 0.5
        self._grow(min(x1, x2) - half, min(y1, y2) - half, max(x1, x2) + half, max(y1, y2) + half)
        p1 = (int(x1 * _ONE), int(y1 * _ONE))
        p2 = (int(x2 * _ONE), int(y2 * _ONE))
        cv2.line(self.image, p1, p2, colour, thickness, cv2.LINE_8, _SHIFT)
        cv2.line(self.ids, p1, p2, self._slot, thickness, cv2.LINE_8, _SHIFT)


@dataclass(frozen=True)
class Lighting:
    """Direction of the sun and how much light is ambient.

    Attributes:
        sun: unit vector (x, z, u) in world metres pointing at the sun.
        ambient: share of light that reaches faces turned away from the sun, in [0, 1].
    """

    sun: tuple[float, float, float]
    ambient: float = 0.55

    def shade(self, colour: Colour, nx: float, nz: float, nu: float) -> Colour:
        """Colour of a face with world normal (nx, nz, nu) under this light."""
        lit = nx * self.sun[0] + nz * self.sun[1] + nu * self.sun[2]
        gain = self.ambient + (1.0 - self.ambient) * max(0.0, lit) * 1.25
        return (
            min(255.0, colour[0] * gain),
            min(255.0, colour[1] * gain),
            min(255.0, colour[2] * gain),
        )


class ObjectView:
    """How one object's frame lands in the image: its feet at (x, z) facing ``heading``.

    Args:
        camera: the scene camera.
        x: world metres right of the optical axis.
        z: world metres of ground depth (> 0).
        heading: radians, 0 = moving right (+x), pi/2 = moving away from the camera (+z).
    """

    def __init__(self, camera: GroundCamera, x: float, z: float, heading: float) -> None:
        self.camera = camera
        self.x = x
        self.z = z
        self.heading = heading
        self.cos_h = math.cos(heading)
        self.sin_h = math.sin(heading)
        self._f = camera.focal
        self._cam_h = camera.cam_height_m
        self._up = camera.up_scale
        self._tilt = camera.tilt
        self._cx = camera.cx
        self._hy = camera.horizon_y
        self.ppm = self._f / z

    def world(self, a: float, c: float) -> tuple[float, float]:
        """World ground point (x, z) of object-frame (a, c)."""
        return (
            self.x + a * self.cos_h - c * self.sin_h,
            self.z + a * self.sin_h + c * self.cos_h,
        )

    def point(self, a: float, c: float, u: float) -> tuple[float, float]:
        """Frame pixel of the object-frame point (a, c, u), exact perspective."""
        wx = self.x + a * self.cos_h - c * self.sin_h
        wz = max(self.z + a * self.sin_h + c * self.cos_h, 0.5)
        inv = self._f / wz
        return self._cx + wx * inv, self._hy + (self._cam_h - u * self._up) * inv

    def depth(self, a: float, c: float, u: float) -> float:
        """Distance along the camera's view, up to a constant: larger is farther."""
        dz = a * self.sin_h + c * self.cos_h
        return dz * self._up - u * self._tilt

    def axes(
        self, a: float, c: float, yaw: float
    ) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
        """Local linear map at object-frame ground point (a, c) for a part turned by ``yaw``.

        Returns:
            Pixel vectors of one metre along the part's forward, left and up axes.
        """
        wx, wz = self.world(a, c)
        wz = max(wz, 0.5)
        inv = self._f / wz
        jxx = inv
        jxz = -wx * inv / wz
        jyz = -self._cam_h * inv / wz
        ang = self.heading + yaw
        ca, sa = math.cos(ang), math.sin(ang)
        fwd = (jxx * ca + jxz * sa, jyz * sa)
        left = (-jxx * sa + jxz * ca, jyz * ca)
        up = (0.0, -inv * self._up)
        return fwd, left, up


def project_ellipsoid(
    view: ObjectView,
    a: float,
    c: float,
    u: float,
    radii: tuple[float, float, float],
    yaw: float = 0.0,
) -> tuple[float, float, float, float, float]:
    """Outline of an ellipsoid centred at object-frame (a, c, u), turned by ``yaw``.

    Under the local linear map ``M`` (pixels per metre along the part's axes) the outline is the
    ellipse with matrix ``M diag(radii)^2 M^T``; its eigen-decomposition gives the axes. A flat
    ellipse on the ground (a shadow) is the case ``radii[2] == 0``.

    Returns:
        ``(x, y, half_axis_1, half_axis_2, angle_deg)`` in pixels, axis 1 along ``angle_deg``.
    """
    fwd, left, up = view.axes(a, c, yaw)
    ra, rc, ru = radii
    m00, m01, m02 = fwd[0] * ra, left[0] * rc, up[0] * ru
    m10, m11, m12 = fwd[1] * ra, left[1] * rc, up[1] * ru
    s11 = m00 * m00 + m01 * m01 + m02 * m02
    s12 = m00 * m10 + m01 * m11 + m02 * m12
    s22 = m10 * m10 + m11 * m11 + m12 * m12
    mean = (s11 + s22) / 2.0
    spread = math.sqrt(((s11 - s22) / 2.0) ** 2 + s12 * s12)
    ax1 = math.sqrt(mean + spread)
    ax2 = math.sqrt(max(mean - spread, 0.0))
    angle = math.degrees(0.5 * math.atan2(2.0 * s12, s11 - s22))
    x, y = view.point(a, c, u)
    return x, y, ax1, ax2, angle


def _rot(a: float, c: float, yaw: float) -> tuple[float, float]:
    cy, sy = math.cos(yaw), math.sin(yaw)
    return a * cy - c * sy, a * sy + c * cy


class _Ellipsoid(NamedTuple):
    a: float
    c: float
    u: float
    radii: tuple[float, float, float]
    yaw: float
    colour: Colour


class _Limb(NamedTuple):
    a1: float
    c1: float
    u1: float
    a2: float
    c2: float
    u2: float
    thickness_m: float
    colour: Colour


class _Box(NamedTuple):
    a: float
    c: float
    u: float
    half: tuple[float, float, float]
    yaw: float
    colour: Colour
    front: Colour | None
    top: Colour | None


class _Polygon(NamedTuple):
    pts: list[tuple[float, float, float]]
    colour: Colour


_Part = _Ellipsoid | _Limb | _Box | _Polygon


class PartList:
    """Primitives of one object in its own frame, drawn far to near.

    Coordinates are object-frame metres; ``yaw`` turns a part (or a point) about the vertical
    axis through ``pivot`` (a, c), which is how the excavator's upper structure swings.
    ``bias`` (metres) moves a part along the view for ordering only: negative draws it later
    (on top), which keeps markings (patches, stripes) in front of the body they sit on.
    """

    def __init__(self, view: ObjectView, lighting: Lighting) -> None:
        self.view = view
        self.lighting = lighting
        self._parts: list[tuple[float, int, _Part]] = []

    def pixels(self, size_m: float) -> float:
        """About how many pixels ``size_m`` metres span at this object: level-of-detail test."""
        return size_m * self.view.ppm

    def _place(
        self, a: float, c: float, yaw: float, pivot: tuple[float, float]
    ) -> tuple[float, float]:
        if yaw == 0.0:
            return a + pivot[0], c + pivot[1]
        ra, rc = _rot(a, c, yaw)
        return ra + pivot[0], rc + pivot[1]

    def _add(self, depth: float, part: _Part) -> None:
        self._parts.append((depth, len(self._parts), part))

    def ellipsoid(
        self,
        centre: tuple[float, float, float],
        radii: tuple[float, float, float],
        colour: Colour,
        yaw: float = 0.0,
        pivot: tuple[float, float] = (0.0, 0.0),
        bias: float = 0.0,
    ) -> None:
        """An ellipsoid with half axes ``radii`` (forward, left, up) metres."""
        a, c = self._place(centre[0], centre[1], yaw, pivot)
        depth = self.view.depth(a, c, centre[2]) + bias
        self._add(depth, _Ellipsoid(a, c, centre[2], radii, yaw, colour))

    def limb(
        self,
        p1: tuple[float, float, float],
        p2: tuple[float, float, float],
        thickness_m: float,
        colour: Colour,
        yaw: float = 0.0,
        pivot: tuple[float, float] = (0.0, 0.0),
        bias: float = 0.0,
    ) -> None:
        """A thick segment (leg, arm, boom) between two points, ``thickness_m`` metres wide."""
        a1, c1 = self._place(p1[0], p1[1], yaw, pivot)
        a2, c2 = self._place(p2[0], p2[1], yaw, pivot)
        depth = self.view.depth((a1 + a2) / 2, (c1 + c2) / 2, (p1[2] + p2[2]) / 2) + bias
        self._add(depth, _Limb(a1, c1, p1[2], a2, c2, p2[2], thickness_m, colour))

    def box(
        self,
        centre: tuple[float, float, float],
        half: tuple[float, float, float],
        colour: Colour,
        yaw: float = 0.0,
        pivot: tuple[float, float] = (0.0, 0.0),
        front: Colour | None = None,
        top: Colour | None = None,
        bias: float = 0.0,
    ) -> None:
        """A box with half sizes ``half`` (forward, left, up); optional colours for its front
        (+forward) face and its top face; every face is shaded by the sun."""
        a, c = self._place(centre[0], centre[1], yaw, pivot)
        depth = self.view.depth(a, c, centre[2]) + bias
        self._add(depth, _Box(a, c, centre[2], half, yaw, colour, front, top))

    def polygon(
        self,
        pts: list[tuple[float, float, float]],
        colour: Colour,
        yaw: float = 0.0,
        pivot: tuple[float, float] = (0.0, 0.0),
        bias: float = 0.0,
    ) -> None:
        """A flat polygon through object-frame points."""
        placed = [(*self._place(p[0], p[1], yaw, pivot), p[2]) for p in pts]
        n = float(len(placed))
        ma = sum(p[0] for p in placed) / n
        mc = sum(p[1] for p in placed) / n
        mu = sum(p[2] for p in placed) / n
        self._add(self.view.depth(ma, mc, mu) + bias, _Polygon(placed, colour))

    def draw(self, canvas: Canvas) -> None:
        """Draw every part, farthest first."""
        view = self.view
        for _, _, part in sorted(self._parts, key=lambda item: (-item[0], item[1])):
            if isinstance(part, _Ellipsoid):
                self._draw_ellipsoid(canvas, part)
            elif isinstance(part, _Limb):
                x1, y1 = view.point(part.a1, part.c1, part.u1)
                x2, y2 = view.point(part.a2, part.c2, part.u2)
                wz = view.world((part.a1 + part.a2) / 2, (part.c1 + part.c2) / 2)[1]
                width = max(1, round(part.thickness_m * view.camera.ppm(max(wz, 0.5))))
                canvas.line(x1, y1, x2, y2, width, part.colour)
            elif isinstance(part, _Box):
                self._draw_box(canvas, part)
            else:
                pts = np.array([view.point(*p) for p in part.pts], dtype=np.float64)
                canvas.polygon(pts, part.colour)

    def _draw_ellipsoid(self, canvas: Canvas, part: _Ellipsoid) -> None:
        x, y, ax1, ax2, angle = project_ellipsoid(
            self.view, part.a, part.c, part.u, part.radii, part.yaw
        )
        canvas.ellipse(x, y, ax1, ax2, angle, part.colour)

    def _draw_box(self, canvas: Canvas, part: _Box) -> None:
        view = self.view
        ha, hc, hu = part.half
        cy, sy = math.cos(part.yaw), math.sin(part.yaw)
        corners = []
        for sa, sc, su in _BOX_SIGNS:
            la, lc = sa * ha, sc * hc
            corners.append(
                view.point(part.a + la * cy - lc * sy, part.c + la * sy + lc * cy, part.u + su * hu)
            )
        pts = np.array(corners, dtype=np.float64)
        # Direction from the box to the camera, in world metres (x, z, up).
        wx, wz = view.world(part.a, part.c)
        to_x, to_z, to_u = -wx, -wz, view.camera.cam_height_m - part.u
        ang = view.heading + part.yaw
        ca, sa_ = math.cos(ang), math.sin(ang)
        hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2).astype(np.float64)
        canvas.id_polygon(hull)
        for (na, nc, nu), idx in _BOX_FACES:
            nx = na * ca - nc * sa_
            nz = na * sa_ + nc * ca
            if nx * to_x + nz * to_z + nu * to_u <= 0.0:
                continue
            base = part.colour
            if nu > 0.5 and part.top is not None:
                base = part.top
            elif na > 0.5 and part.front is not None:
                base = part.front
            canvas.polygon(pts[list(idx)], self.lighting.shade(base, nx, nz, nu), ids=False)


# --------------------------------------------------------------------------- looks


@dataclass(frozen=True)
class PersonLook:
    """Colours and build of a person: a worker (hat, vest) or a player (shirt, shorts)."""

    height_m: float
    skin: Colour
    shirt: Colour
    legs: Colour
    shoes: Colour
    hat: Colour | None = None
    vest_stripe: Colour | None = None
    shorts: Colour | None = None
    hair: Colour | None = None


@dataclass(frozen=True)
class ExcavatorLook:
    """Colours and size of a tracked excavator."""

    scale: float
    body: Colour
    tracks: Colour
    glass: Colour
    bucket: Colour


@dataclass(frozen=True)
class TruckLook:
    """Colours and size of a dump truck."""

    scale: float
    cab: Colour
    dump: Colour
    chassis: Colour
    glass: Colour
    tyre: Colour


@dataclass(frozen=True)
class AnimalLook:
    """Colours and size of a cow or a sheep."""

    scale: float
    coat: Colour
    head: Colour
    legs: Colour
    patches: tuple[tuple[float, float, float, float], ...] = ()  # (a, u, ra, ru), body metres
    patch_colour: Colour | None = None


@dataclass(frozen=True)
class BallLook:
    """Colours and size of a ball."""

    radius_m: float
    colour: Colour
    patch: Colour


# --------------------------------------------------------------------------- silhouettes


def person(parts: PartList, look: PersonLook, gait: float, stride: float) -> None:
    """Head, torso, arms and legs; legs and arms swing with ``gait`` (radians) by ``stride``.

    Small people (under ~36 px tall) get one segment per leg and no shoes or neck: the detail
    would not show and drawing it costs time.

    Args:
        parts: where the primitives go.
        look: colours and height.
        gait: phase of the walk cycle in radians.
        stride: swing amplitude in metres at the feet (0 standing, ~0.35 walking, ~0.6 running).
    """
    k = look.height_m / 1.78
    fine = parts.pixels(look.height_m) > 36.0
    swing = math.sin(gait) * stride * k
    hip_u, shoulder_u = 0.92 * k, 1.42 * k
    thigh = look.legs if look.shorts is None else look.skin
    arm = look.shirt if look.shorts is None else look.skin
    for side, sign in ((0.11 * k, 1.0), (-0.11 * k, -1.0)):
        foot_a = sign * swing
        lift = max(0.0, -sign * math.cos(gait)) * 0.12 * k * min(1.0, stride / 0.3)
        if fine:
            knee = (foot_a * 0.5, side, 0.45 * k + lift)
            parts.limb((0.0, side, hip_u), knee, 0.16 * k, thigh)
            parts.limb(knee, (foot_a, side, 0.06 * k + lift), 0.13 * k, look.legs)
            parts.ellipsoid(
                (foot_a + 0.06 * k, side, 0.05 * k + lift),
                (0.13 * k, 0.06 * k, 0.05 * k),
                look.shoes,
            )
        else:
            parts.limb((0.0, side, hip_u), (foot_a, side, 0.05 * k + lift), 0.15 * k, look.legs)
        hand_a = -sign * swing * 0.7
        parts.limb((0.0, side * 2.1, shoulder_u), (hand_a, side * 2.3, 0.86 * k), 0.1 * k, arm)
    if look.shorts is not None:
        parts.ellipsoid((0.0, 0.0, 0.86 * k), (0.12 * k, 0.2 * k, 0.13 * k), look.shorts)
    if fine:
        parts.box((0.0, 0.0, 1.18 * k), (0.12 * k, 0.21 * k, 0.3 * k), look.shirt)
        parts.ellipsoid((0.0, 0.0, 1.52 * k), (0.07 * k, 0.07 * k, 0.06 * k), look.skin)  # neck
    else:
        parts.ellipsoid((0.0, 0.0, 1.18 * k), (0.13 * k, 0.22 * k, 0.3 * k), look.shirt)
    if look.vest_stripe is not None and fine:
        parts.box(
            (0.0, 0.0, 1.07 * k), (0.125 * k, 0.215 * k, 0.03 * k), look.vest_stripe, bias=-0.01
        )
    parts.ellipsoid((0.02 * k, 0.0, 1.63 * k), (0.11 * k, 0.1 * k, 0.12 * k), look.skin)
    if look.hat is not None:
        parts.ellipsoid(
            (0.02 * k, 0.0, 1.73 * k), (0.14 * k, 0.13 * k, 0.07 * k), look.hat, bias=-0.02
        )
    elif look.hair is not None and fine:
        parts.ellipsoid(
            (-0.01 * k, 0.0, 1.69 * k), (0.11 * k, 0.1 * k, 0.07 * k), look.hair, bias=-0.02
        )


def excavator(
    parts: PartList, look: ExcavatorLook, swing: float, boom: float, stick: float
) -> None:
    """Tracks, a rotating upper structure (body, counterweight, cab) and the boom, stick and
    bucket.

    Args:
        parts: where the primitives go.
        look: colours and size.
        swing: yaw of the upper structure relative to the tracks, radians.
        boom: elevation of the boom above horizontal, radians.
        stick: angle of the stick below horizontal, radians (positive points down).
    """
    s = look.scale
    for side in (1.15 * s, -1.15 * s):
        parts.box((0.0, side, 0.45 * s), (2.2 * s, 0.33 * s, 0.45 * s), look.tracks)
    if parts.pixels(4.4 * s) > 80.0:
        parts.box((0.0, 0.0, 0.75 * s), (1.3 * s, 0.8 * s, 0.25 * s), look.tracks)
    yaw = swing
    parts.box((-0.35 * s, 0.0, 1.45 * s), (1.55 * s, 1.25 * s, 0.45 * s), look.body, yaw=yaw)
    counter = scale_colour(look.body, 0.8)
    parts.box(
        (-1.85 * s, 0.0, 1.5 * s),
        (0.35 * s, 1.2 * s, 0.42 * s),
        counter,
        yaw=yaw,
    )
    parts.box(
        (0.55 * s, 0.62 * s, 2.55 * s),
        (0.5 * s, 0.45 * s, 0.65 * s),
        look.glass,
        yaw=yaw,
        top=look.body,
    )
    # Boom from the front of the body, then the stick, then the bucket.
    root = (1.1 * s, -0.35 * s, 1.9 * s)
    boom_len, stick_len = 5.2 * s, 2.9 * s
    elbow = (
        root[0] + boom_len * math.cos(boom),
        root[1],
        root[2] + boom_len * math.sin(boom),
    )
    wrist = (
        elbow[0] + stick_len * math.cos(stick),
        root[1],
        max(0.35 * s, elbow[2] - stick_len * math.sin(stick)),
    )
    parts.limb(root, elbow, 0.55 * s, look.body, yaw=yaw)
    parts.limb(elbow, wrist, 0.4 * s, look.body, yaw=yaw, bias=-0.01)
    bucket_pts = [
        (wrist[0] - 0.2 * s, root[1], wrist[2] + 0.25 * s),
        (wrist[0] + 0.55 * s, root[1], wrist[2] + 0.1 * s),
        (wrist[0] + 0.5 * s, root[1], wrist[2] - 0.55 * s),
        (wrist[0] - 0.1 * s, root[1], wrist[2] - 0.45 * s),
    ]
    parts.polygon(bucket_pts, look.bucket, yaw=yaw, bias=-0.02)


def truck(parts: PartList, look: TruckLook) -> None:
    """A two-axle dump truck: chassis, wheels, cab with windscreen and a dump body."""
    s = look.scale
    parts.box((0.0, 0.0, 0.9 * s), (3.7 * s, 1.1 * s, 0.3 * s), look.chassis)
    axles = (2.6 * s, -1.4 * s, -2.7 * s) if parts.pixels(8.0 * s) > 120.0 else (2.6 * s, -2.0 * s)
    for a in axles:
        for c in (1.12 * s, -1.12 * s):
            parts.ellipsoid((a, c, 0.55 * s), (0.55 * s, 0.18 * s, 0.55 * s), look.tyre)
    parts.box((2.95 * s, 0.0, 1.95 * s), (0.85 * s, 1.2 * s, 0.85 * s), look.cab, front=look.glass)
    parts.box((-1.0 * s, 0.0, 1.9 * s), (2.6 * s, 1.25 * s, 0.75 * s), look.dump)


def _animal_legs(
    parts: PartList,
    look: AnimalLook,
    gait: float,
    stride: float,
    front_a: float,
    back_a: float,
    half_width: float,
    hip_u: float,
    thickness: float,
    fine: bool,
) -> None:
    for i, (a, c) in enumerate(
        ((front_a, half_width), (front_a, -half_width), (back_a, half_width), (back_a, -half_width))
    ):
        phase = gait + (math.pi if i in (1, 2) else 0.0)
        foot = a + math.sin(phase) * stride
        if not fine:
            parts.limb((a, c, hip_u), (foot, c, 0.03), thickness * 0.9, look.legs)
            continue
        knee_u = hip_u * 0.45 + max(0.0, math.cos(phase)) * 0.06 * min(1.0, stride / 0.2)
        parts.limb((a, c, hip_u), ((a + foot) / 2, c, knee_u), thickness, look.legs)
        parts.limb(((a + foot) / 2, c, knee_u), (foot, c, 0.03), thickness * 0.8, look.legs)


def cow(parts: PartList, look: AnimalLook, gait: float, stride: float, head_down: float) -> None:
    """Barrel body, neck and head (lowered to graze), four legs and a tail.

    Args:
        parts: where the primitives go.
        look: colours, patches and size.
        gait: walk cycle phase, radians.
        stride: foot swing amplitude in metres (0 standing, ~0.3 walking).
        head_down: 0 head up, 1 muzzle on the grass.
    """
    s = look.scale
    body_u = 1.05 * s
    # Two overlapping ellipsoids (chest, hindquarters) give the long, deep, flat-backed barrel.
    parts.ellipsoid((0.42 * s, 0.0, body_u), (0.68 * s, 0.36 * s, 0.4 * s), look.coat)
    parts.ellipsoid((-0.42 * s, 0.0, body_u + 0.02 * s), (0.68 * s, 0.36 * s, 0.38 * s), look.coat)
    if look.patch_colour is not None:
        for a, u, ra, ru in look.patches:
            parts.ellipsoid(
                (a * s, 0.0, body_u + u * s),
                (ra * s, 0.37 * s, ru * s),
                look.patch_colour,
                bias=-0.02,
            )
    fine = parts.pixels(2.4 * s) > 60.0
    if fine:
        udder = (0.16 * s, 0.14 * s, 0.08 * s)
        parts.ellipsoid((-0.15 * s, 0.0, 0.72 * s), udder, look.legs)
    _animal_legs(parts, look, gait, stride, 0.72 * s, -0.78 * s, 0.2 * s, 0.9 * s, 0.14 * s, fine)
    head_u = (1.25 - 0.95 * head_down) * s
    head_a = (1.45 - 0.12 * head_down) * s
    parts.limb(
        (0.95 * s, 0.0, 1.2 * s),
        (head_a - 0.15 * s, 0.0, head_u + 0.05 * s),
        0.34 * s,
        look.coat,
    )
    parts.ellipsoid((head_a, 0.0, head_u), (0.28 * s, 0.13 * s, 0.15 * s), look.head)
    if fine:
        for side in (0.17 * s, -0.17 * s):  # ears
            ear = (head_a - 0.16 * s, side, head_u + 0.1 * s)
            parts.ellipsoid(ear, (0.05 * s, 0.1 * s, 0.04 * s), look.head)
        parts.limb((-1.08 * s, 0.0, 1.3 * s), (-1.15 * s, 0.0, 0.6 * s), 0.06 * s, look.coat)


def sheep(parts: PartList, look: AnimalLook, gait: float, stride: float, head_down: float) -> None:
    """Woolly body with lumps, dark head and thin legs.

    Args:
        parts: where the primitives go.
        look: colours and size.
        gait: walk cycle phase, radians.
        stride: foot swing amplitude in metres.
        head_down: 0 head up, 1 grazing.
    """
    s = look.scale
    body_u = 0.62 * s
    fine = parts.pixels(1.3 * s) > 40.0
    _animal_legs(parts, look, gait, stride, 0.35 * s, -0.35 * s, 0.14 * s, 0.5 * s, 0.08 * s, fine)
    parts.ellipsoid((0.0, 0.0, body_u), (0.62 * s, 0.32 * s, 0.3 * s), look.coat)
    wool = scale_colour(look.coat, 1.06)
    lumps = ((0.35, 0.18), (-0.05, 0.24), (-0.4, 0.16), (0.15, 0.22))
    for a, u in lumps if fine else lumps[:2]:
        parts.ellipsoid(
            (a * s, 0.0, body_u + u * s * 0.6),
            (0.2 * s, 0.27 * s, 0.16 * s),
            wool,
            bias=-0.01,
        )
    head_u = (0.8 - 0.45 * head_down) * s
    head_a = (0.72 + 0.02 * head_down) * s
    parts.ellipsoid((head_a, 0.0, head_u), (0.2 * s, 0.1 * s, 0.12 * s), look.head)
    if fine:
        for side in (0.12 * s, -0.12 * s):
            ear = (head_a - 0.08 * s, side, head_u + 0.07 * s)
            parts.ellipsoid(ear, (0.04 * s, 0.08 * s, 0.03 * s), look.head)


def ball(parts: PartList, look: BallLook, height_m: float) -> None:
    """A sphere with a dark patch, its bottom ``height_m`` metres above the grass."""
    r = look.radius_m
    parts.ellipsoid((0.0, 0.0, r + height_m), (r, r, r), look.colour)
    parts.ellipsoid(
        (0.0, 0.0, r * 1.2 + height_m), (r * 0.4, r * 0.4, r * 0.4), look.patch, bias=-0.1 - r
    )

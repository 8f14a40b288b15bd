"""Small synthetic scenes for tracker tests, defined in continuous time.

An object is a shape (filled box, disc, diagonal stroke) whose centre moves along a function of
time and that may be hidden during some intervals. A scene renders, at any timestamp, the
detections a perfect detector would give (visible masks are disjoint: objects later in the list
are in front), optionally with the masks as CompactMask, dense arrays or no masks. Because
positions are functions of time, one scene can be sampled at any frame rate.

Fixture: ``scene_kit`` hands the helpers below to the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import numpy.typing as npt
import pytest
import supervision as sv

from streamseg.track import MaskTracker
from streamseg.types import HIDDEN_TRACK_IDS

HW = (180, 320)
"""Frame (height, width) of the test scenes."""

Position = Callable[[float], tuple[float, float]]


def linear(x0: float, y0: float, vx: float, vy: float = 0.0) -> Position:
    """Centre moving at constant velocity (pixels per second) from (x0, y0) at t = 0."""
    return lambda t: (x0 + vx * t, y0 + vy * t)


def piecewise(points: Sequence[tuple[float, float, float]]) -> Position:
    """Centre interpolated linearly between (t, x, y) way points (held outside them)."""
    ts = np.array([p[0] for p in points])
    xs = np.array([p[1] for p in points])
    ys = np.array([p[2] for p in points])
    return lambda t: (float(np.interp(t, ts, xs)), float(np.interp(t, ts, ys)))


@dataclass(frozen=True)
class SceneObject:
    """One object of a scene.

    Attributes:
        gid: ground-truth identity.
        shape: ``box``, ``disc``, ``slash`` (``/``) or ``backslash`` (``\\``).
        size_wh: width and height of the shape, pixels.
        position: centre as a function of time.
        class_id: detector class.
        hidden: time intervals [start, end) during which the object is not detected.
        confidence: detection confidence.
    """

    gid: int
    shape: str
    size_wh: tuple[float, float]
    position: Position
    class_id: int = 0
    hidden: tuple[tuple[float, float], ...] = ()
    confidence: float = 0.9

    def visible(self, t: float) -> bool:
        """Whether the object is detected at time ``t``."""
        return not any(start <= t < end for start, end in self.hidden)


def shape_mask(
    shape: str, centre: tuple[float, float], size_wh: tuple[float, float]
) -> npt.NDArray[np.bool_]:
    """(H, W) bool mask of a shape centred at ``centre`` (computed inside its box only)."""
    out = np.zeros(HW, dtype=bool)
    cx, cy = centre
    w, h = size_wh
    x0, y0 = cx - w / 2, cy - h / 2
    c0, c1 = max(0, int(np.floor(x0))), min(HW[1], int(np.ceil(x0 + w)) + 1)
    r0, r1 = max(0, int(np.floor(y0))), min(HW[0], int(np.ceil(y0 + h)) + 1)
    if c1 <= c0 or r1 <= r0:
        return out
    yy, xx = np.mgrid[r0:r1, c0:c1].astype(np.float64)
    u = (xx - x0) / w  # 0..1 across the box
    v = (yy - y0) / h
    inside = (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)
    thickness = 0.18
    if shape == "box":
        window = inside
    elif shape == "disc":
        window = (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25
    elif shape == "slash":
        window = inside & (np.abs(u + v - 1) <= thickness)
    elif shape == "backslash":
        window = inside & (np.abs(u - v) <= thickness)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    out[r0:r1, c0:c1] = window
    return out


@dataclass
class Frame:
    """One rendered frame: its detections and the identity of each detection."""

    t: float
    detections: sv.Detections
    gids: npt.NDArray[np.int64]


def render(objects: Sequence[SceneObject], t: float, masks: str = "compact") -> Frame:
    """Detections of the visible objects at time ``t``.

    Args:
        objects: the scene; later objects hide earlier ones where they overlap.
        t: timestamp, seconds.
        masks: ``compact`` (CompactMask), ``dense`` ((N, H, W) bool) or ``none``.
    """
    visible = [o for o in objects if o.visible(t)]
    dense = [shape_mask(o.shape, o.position(t), o.size_wh) for o in visible]
    for i in range(len(dense)):
        for front in dense[i + 1 :]:
            dense[i] = dense[i] & ~front
    kept = [i for i, m in enumerate(dense) if m.any()]
    if not kept:
        return Frame(t, sv.Detections.empty(), np.zeros(0, dtype=np.int64))
    stack = np.stack([dense[i] for i in kept])
    xyxy = np.array(
        [[xs.min(), ys.min(), xs.max(), ys.max()] for ys, xs in (np.nonzero(m) for m in stack)],
        dtype=np.float32,
    )
    mask: sv.CompactMask | npt.NDArray[np.bool_] | None
    if masks == "compact":
        mask = sv.CompactMask.from_dense(stack, xyxy, image_shape=HW)
    elif masks == "dense":
        mask = stack
    else:
        mask = None
    chosen = [visible[i] for i in kept]
    detections = sv.Detections(
        xyxy=xyxy,
        mask=mask,
        confidence=np.array([o.confidence for o in chosen], dtype=np.float32),
        class_id=np.array([o.class_id for o in chosen], dtype=int),
    )
    return Frame(t, detections, np.array([o.gid for o in chosen], dtype=np.int64))


@dataclass
class Run:
    """What a tracker gave on every frame of a scene."""

    frames: list[Frame] = field(default_factory=list)
    ids: list[npt.NDArray[np.int64]] = field(default_factory=list)
    hidden: list[tuple[int, ...]] = field(default_factory=list)
    """Per frame, the track ids the tracker reported hidden (``HIDDEN_TRACK_IDS``)."""

    def ids_of(self, gid: int) -> list[int]:
        """Track ids given to object ``gid`` over time (-1 excluded), in frame order."""
        out: list[int] = []
        for frame, ids in zip(self.frames, self.ids, strict=True):
            out += [int(i) for g, i in zip(frame.gids, ids, strict=True) if g == gid and i >= 0]
        return out

    def distinct_ids(self, gid: int) -> list[int]:
        """Distinct track ids of object ``gid`` in order of first use."""
        return list(dict.fromkeys(self.ids_of(gid)))

    def all_ids(self) -> set[int]:
        """Every track id given out."""
        return {int(i) for ids in self.ids for i in ids if i >= 0}

    def canonical(self) -> dict[int, list[int]]:
        """Per object, its ids relabelled 1, 2, ... in order of first use over the run."""
        order: dict[int, int] = {}
        for ids in self.ids:
            for i in ids.tolist():
                if i >= 0:
                    order.setdefault(i, len(order) + 1)
        gids = sorted({int(g) for f in self.frames for g in f.gids})
        return {g: [order[i] for i in self.distinct_ids(g)] for g in gids}


def times(duration_s: float, fps: float) -> list[float]:
    """Frame timestamps 0, 1/fps, ... below ``duration_s``."""
    return [i / fps for i in range(round(duration_s * fps))]


def run(
    tracker: MaskTracker,
    objects: Sequence[SceneObject],
    timestamps: Sequence[float],
    masks: str = "compact",
) -> Run:
    """Feed a scene to a tracker frame by frame."""
    result = Run()
    for t in timestamps:
        frame = render(objects, t, masks)
        out = tracker.update(frame.detections, timestamp=t)
        assert out.tracker_id is not None
        result.frames.append(frame)
        result.ids.append(np.asarray(out.tracker_id, dtype=np.int64))
        result.hidden.append(tuple(out.metadata[HIDDEN_TRACK_IDS]))
    return result


@pytest.fixture
def scene_kit() -> SimpleNamespace:
    """Helpers to build and run synthetic tracker scenes (see the module docstring):
    ``SceneObject``, ``linear``, ``piecewise``, ``render``, ``run``, ``times`` and ``hw``."""
    return SimpleNamespace(
        SceneObject=SceneObject,
        linear=linear,
        piecewise=piecewise,
        render=render,
        run=run,
        times=times,
        hw=HW,
    )

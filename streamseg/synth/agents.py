"""The moving things of a scene and how they behave, step by step, in world metres.

One :class:`World` holds the agents of a scene and a seeded generator; :meth:`World.step` moves
them by one frame. This module has what every kind shares (agents, the roaming region, motion,
steering, collisions); each kind's spawn and behaviour is its own subclass:
:class:`~streamseg.synth.yard_world.YardWorld` (excavators, trucks, workers),
:class:`~streamseg.synth.field_world.FieldWorld` (herds of cattle and sheep) and
:class:`~streamseg.synth.pitch_world.PitchWorld` (two teams and a ball), built by
:func:`streamseg.synth.worlds.make_world`.

Everything random comes from the world's generator, so a seed fixes the whole sequence.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from streamseg.synth import shapes
from streamseg.synth.camera import GroundCamera
from streamseg.synth.frame import CLASS_NAMES, DIFFICULTIES

logger = logging.getLogger(__name__)

Look = (
    shapes.PersonLook
    | shapes.ExcavatorLook
    | shapes.TruckLook
    | shapes.AnimalLook
    | shapes.BallLook
)


def wrap_angle(angle: float) -> float:
    """``angle`` in radians wrapped into ``[-pi, pi)``."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def smoothstep(t: float) -> float:
    """Ease in and out: 0 at ``t = 0``, 1 at ``t = 1``, flat at both ends."""
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True)
class Region:
    """Where feet may go: ground depth ``z_min..z_max`` and, at each depth, a little wider than
    the frame so objects can walk out of view and back.

    Attributes:
        camera: the scene camera.
        z_min: nearest depth in metres (about the bottom row).
        z_max: farthest depth in metres (feet near the top of the frame).
        overscan: how far past the side edges objects may roam, as a factor on the half width.
    """

    camera: GroundCamera
    z_min: float
    z_max: float
    overscan: float = 1.12

    def half_width(self, z: float) -> float:
        """Half width in metres of the roaming area at depth ``z``."""
        return self.camera.half_width_m(z) * self.overscan

    def clamp(self, x: float, z: float, margin: float = 0.0) -> tuple[float, float]:
        """The nearest point of the region to (x, z)."""
        z = min(max(z, self.z_min + margin), self.z_max - margin)
        limit = max(self.half_width(z) - margin, 0.0)
        return min(max(x, -limit), limit), z

    def sample(self, rng: np.random.Generator, inner: float = 0.92) -> tuple[float, float]:
        """A point spread evenly over the frame's rows (so not crowded into the distance)."""
        cam = self.camera
        y_far, y_near = cam.row_at_depth(self.z_max), cam.row_at_depth(self.z_min)
        z = cam.depth_at_row(float(rng.uniform(y_far, y_near)))
        x = float(rng.uniform(-1.0, 1.0)) * cam.half_width_m(z) * inner
        return x, z

    def sample_near(
        self, rng: np.random.Generator, x: float, z: float, spread: float
    ) -> tuple[float, float]:
        """A point scattered ``spread`` metres (1 sigma) around (x, z), kept inside."""
        return self.clamp(
            x + float(rng.normal(0.0, spread)), z + float(rng.normal(0.0, spread)), 0.5
        )


@dataclass
class Agent:
    """One object of the world and its behavioural state. Positions are feet, world metres."""

    track_id: int
    class_name: str
    look: Look
    x: float
    z: float
    heading: float
    radius: float
    mass: float = 1.0
    speed: float = 0.0
    target_speed: float = 0.0
    max_speed: float = 1.4
    state: str = "idle"
    timer: float = 0.0
    gait: float = 0.0
    stride_len: float = 1.4
    waypoints: list[tuple[float, float]] = field(default_factory=list)
    group: int = 0
    attributes: dict[str, str] = field(default_factory=dict)
    # Excavator.
    cycle: float = 0.0
    cycle_period: float = 12.0
    dig_yaw: float = 0.0
    dump_yaw: float = 1.6
    swing: float = 0.0
    boom: float = 0.5
    stick: float = 1.3
    # Animals.
    head_down: float = 0.0
    offset: tuple[float, float] = (0.0, 0.0)
    # Ball and players.
    vx: float = 0.0
    vz: float = 0.0
    height: float = 0.0
    vheight: float = 0.0
    cooldown: float = 0.0
    home: tuple[float, float] = (0.0, 0.0)

    @property
    def class_id(self) -> int:
        """Global class id of the agent."""
        return CLASS_NAMES.index(self.class_name)

    def stride(self) -> float:
        """Foot swing amplitude in metres for the current speed."""
        if self.class_name == "person":
            return min(0.55, 0.3 * self.speed) if self.speed > 0.05 else 0.0
        if self.class_name in ("cow", "sheep"):
            return min(0.3, 0.28 * self.speed) if self.speed > 0.05 else 0.0
        return 0.0

    def build(self, parts: shapes.PartList) -> None:
        """Add this agent's silhouette, in its current pose, to ``parts``."""
        look = self.look
        if isinstance(look, shapes.PersonLook):
            shapes.person(parts, look, self.gait, self.stride())
        elif isinstance(look, shapes.ExcavatorLook):
            shapes.excavator(parts, look, self.swing, self.boom, self.stick)
        elif isinstance(look, shapes.TruckLook):
            shapes.truck(parts, look)
        elif isinstance(look, shapes.BallLook):
            shapes.ball(parts, look, self.height)
        elif self.class_name == "cow":
            shapes.cow(parts, look, self.gait, self.stride(), self.head_down)
        else:
            shapes.sheep(parts, look, self.gait, self.stride(), self.head_down)

    def shadow_size(self) -> tuple[float, float, float]:
        """(half length, half width, casting height) in metres of the shadow on the ground."""
        look = self.look
        if isinstance(look, shapes.PersonLook):
            return 0.3, 0.22, look.height_m
        if isinstance(look, shapes.ExcavatorLook):
            return 2.6 * look.scale, 1.8 * look.scale, 3.0 * look.scale
        if isinstance(look, shapes.TruckLook):
            return 3.9 * look.scale, 1.4 * look.scale, 2.6 * look.scale
        if isinstance(look, shapes.BallLook):
            return look.radius_m, look.radius_m, look.radius_m * 2 + self.height
        if self.class_name == "cow":
            return 1.0 * look.scale, 0.35 * look.scale, 1.4 * look.scale
        return 0.6 * look.scale, 0.3 * look.scale, 0.9 * look.scale


# --------------------------------------------------------------------------- world


def default_counts(
    kind: str, difficulty: str, rng: np.random.Generator, num_objects: int | None
) -> dict[str, int]:
    """How many objects of each class a scene gets.

    With ``num_objects`` the total is exact; without it, it is drawn per kind and difficulty.
    """
    busy = difficulty == "occlusion"
    if kind == "yard":
        if num_objects is None:
            exc = int(rng.integers(1, 3))
            trucks = int(rng.integers(1, 3))
            workers = int(rng.integers(6, 11) if busy else rng.integers(3, 8))
            return {"excavator": exc, "truck": trucks, "person": workers}
        exc = min(num_objects, max(1, round(num_objects * 0.15)))
        trucks = min(num_objects - exc, max(1 if num_objects > 2 else 0, round(num_objects * 0.2)))
        return {"excavator": exc, "truck": trucks, "person": num_objects - exc - trucks}
    if kind == "field":
        if num_objects is None:
            cows = int(rng.integers(8, 15) if busy else rng.integers(3, 8))
            sheep = int(rng.integers(10, 18) if busy else rng.integers(4, 10))
            return {"cow": cows, "sheep": sheep}
        cows = round(num_objects * float(rng.uniform(0.3, 0.6)))
        return {"cow": cows, "sheep": num_objects - cows}
    if num_objects is None:
        players = int(rng.integers(10, 17) if busy else rng.integers(6, 11))
        return {"ball": 1, "person": players}
    return {"ball": 1, "person": num_objects - 1}


class World(ABC):
    """All agents of one scene and the seeded generator that drives them.

    What all kinds share is here: spawning helpers, motion, steering, pushing overlapping agents
    apart and keeping them near the view. Each kind's spawn and behaviour is a subclass
    (:mod:`streamseg.synth.yard_world`, :mod:`~streamseg.synth.field_world`,
    :mod:`~streamseg.synth.pitch_world`); :func:`streamseg.synth.worlds.make_world` picks it.

    Attributes:
        kind: the scene kind the subclass animates (``yard``, ``field`` or ``pitch``).

    Args:
        difficulty: ``easy`` or ``occlusion``.
        region: where feet may go.
        rng: the world's generator (spawn and every later step).
        num_objects: exact number of objects, or None for a per-kind default.
        fps: frames per second; one :meth:`step` advances ``1 / fps`` seconds.
    """

    kind: ClassVar[str]

    def __init__(
        self,
        difficulty: str,
        region: Region,
        rng: np.random.Generator,
        num_objects: int | None,
        fps: float,
    ) -> None:
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty must be one of {list(DIFFICULTIES)}, got {difficulty!r}")
        self.difficulty = difficulty
        self.busy = difficulty == "occlusion"
        self.region = region
        self.rng = rng
        self.dt = 1.0 / fps
        self.agents: list[Agent] = []
        self.herd_anchors: tuple[tuple[float, float], tuple[float, float]] = ((0, 0), (0, 0))
        """The two herds' home spots of a field scene with ``occlusion`` (their goals cross);
        ``((0, 0), (0, 0))`` otherwise."""
        counts = default_counts(self.kind, difficulty, rng, num_objects)
        self._spawn(counts)
        self._masses = np.array([a.mass for a in self.agents], dtype=np.float64)
        self._radii = np.array([a.radius for a in self.agents], dtype=np.float64)
        self._solid = np.array([a.class_name != "ball" for a in self.agents], dtype=bool)

    # ---------------------------------------------------------------- spawning

    @abstractmethod
    def _spawn(self, counts: dict[str, int]) -> None:
        """Place the kind's agents (``counts`` per class) with :meth:`_add`."""

    @abstractmethod
    def _step_kind(self) -> None:
        """Move the kind's agents by one frame (before they are pushed apart)."""

    def _add(self, agent: Agent) -> Agent:
        self.agents.append(agent)
        return agent

    def _next_id(self) -> int:
        return len(self.agents) + 1

    def _free_spot(self, radius: float, tries: int = 20) -> tuple[float, float]:
        best = self.region.sample(self.rng)
        best_gap = -math.inf
        for _ in range(tries):
            x, z = self.region.sample(self.rng, inner=0.8)
            gap = min(
                (math.hypot(x - a.x, z - a.z) - a.radius - radius for a in self.agents),
                default=math.inf,
            )
            if gap > 0.5:
                return x, z
            if gap > best_gap:
                best, best_gap = (x, z), gap
        return best

    def step(self) -> None:
        """Advance every agent by one frame."""
        self._step_kind()
        self._separate()
        self._keep_near()

    def _keep_near(self) -> None:
        """Hold every agent within a margin around the roaming region: objects may step out of
        view for a while, but never wander off for good (or behind the camera)."""
        region = self.region
        z_lo, z_hi = region.z_min * 0.9, region.z_max * 1.05
        for agent in self.agents:
            if not z_lo <= agent.z <= z_hi:
                agent.z = min(max(agent.z, z_lo), z_hi)
            limit = region.half_width(agent.z) * 1.25
            if abs(agent.x) > limit:
                agent.x = math.copysign(limit, agent.x)

    def _move(self, agent: Agent, accel: float = 2.0) -> None:
        dt = self.dt
        agent.speed += (agent.target_speed - agent.speed) * min(1.0, accel * dt)
        if abs(agent.speed) < 1e-3:
            agent.speed = 0.0
        agent.x += math.cos(agent.heading) * agent.speed * dt
        agent.z += math.sin(agent.heading) * agent.speed * dt
        agent.gait = (agent.gait + agent.speed * dt / agent.stride_len * 2.0 * math.pi) % (
            2.0 * math.pi
        )

    def _steer(self, agent: Agent, tx: float, tz: float, rate: float) -> float:
        """Turn towards (tx, tz) by at most ``rate`` rad/s; returns the distance to it."""
        dx, dz = tx - agent.x, tz - agent.z
        err = wrap_angle(math.atan2(dz, dx) - agent.heading)
        step = rate * self.dt
        agent.heading = wrap_angle(agent.heading + max(-step, min(step, err)))
        return math.hypot(dx, dz)

    def _separate(self) -> None:
        """Push overlapping solid agents apart (heavier ones move less; excavators never)."""
        n = len(self.agents)
        if n < 2:
            return
        pos = np.array([(a.x, a.z) for a in self.agents], dtype=np.float64)
        diff = pos[:, None, :] - pos[None, :, :]
        dist = np.sqrt((diff**2).sum(-1)) + 1e-9
        overlap = self._radii[:, None] + self._radii[None, :] - dist
        solid = self._solid[:, None] & self._solid[None, :]
        np.fill_diagonal(overlap, 0.0)
        hit = (overlap > 0) & solid
        if not hit.any():
            return
        with np.errstate(invalid="ignore", divide="ignore"):
            inv_mass = np.where(np.isinf(self._masses), 0.0, 1.0 / np.maximum(self._masses, 1e-9))
            share = inv_mass[:, None] / (inv_mass[:, None] + inv_mass[None, :] + 1e-12)
        push = np.where(hit, overlap * share * 0.5, 0.0)
        moves = (push[:, :, None] * diff / dist[:, :, None]).sum(axis=1)
        for agent, (mx, mz) in zip(self.agents, moves, strict=True):
            if mx or mz:
                agent.x += float(mx)
                agent.z += float(mz)

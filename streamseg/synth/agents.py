"""The moving things of a scene and how they behave, step by step, in world metres.

One :class:`World` holds the agents of a scene and a seeded generator; :meth:`World.step` moves
them by one frame. Behaviours per kind:

- yard: excavators dig, swing to dump and swing back (the upper structure rotates); trucks drive
  between loading spots and the yard's edges; workers walk between waypoints and pause. With
  ``occlusion`` difficulty workers route behind machines.
- field: cattle and sheep graze (head down, still) and walk after their herd's goal; a cohesion
  pull keeps herds together. With ``occlusion`` herds are tight and their goals cross.
- pitch: the nearest players of each team chase the ball, the others hold shifted formation
  spots; a player at the ball kicks it. With ``occlusion`` more players contest the ball and the
  formation squeezes around it.

Everything random comes from the world's generator, so a seed fixes the whole sequence.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field

import numpy as np

from streamseg.synth import shapes
from streamseg.synth.camera import GroundCamera
from streamseg.synth.frame import CLASS_NAMES, DIFFICULTIES, SCENE_KINDS
from streamseg.synth.looks import (
    TEAM_SHIRTS,
    ball_look,
    cow_look,
    excavator_look,
    person_look,
    sheep_look,
    truck_look,
)

logger = logging.getLogger(__name__)

Look = (
    shapes.PersonLook
    | shapes.ExcavatorLook
    | shapes.TruckLook
    | shapes.AnimalLook
    | shapes.BallLook
)

# Dig cycle keyframes: (phase, share of the swing towards the dump side, boom rad, stick rad).
_DIG_KEYS: tuple[tuple[float, float, float, float], ...] = (
    (0.00, 0.0, 0.50, 1.30),
    (0.20, 0.0, 0.02, 0.95),
    (0.32, 0.0, 0.08, 0.25),
    (0.42, 0.0, 0.55, 0.55),
    (0.62, 1.0, 0.60, 0.65),
    (0.72, 1.0, 0.50, 1.40),
    (0.92, 0.0, 0.50, 1.30),
    (1.00, 0.0, 0.50, 1.30),
)


_BALL_TOP_ROW = 0.35  # the ball rebounds before its feet point rises above this share of rows


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def _smooth(t: float) -> float:
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


class World:
    """All agents of one scene and the seeded generator that drives them.

    Args:
        kind: ``yard``, ``field`` or ``pitch``.
        difficulty: ``easy`` or ``occlusion``.
        region: where feet may go.
        rng: the world's generator (spawn and every later step).
        num_objects: exact number of objects, or None for a per-kind default.
        fps: frames per second; one :meth:`step` advances ``1 / fps`` seconds.
    """

    def __init__(
        self,
        kind: str,
        difficulty: str,
        region: Region,
        rng: np.random.Generator,
        num_objects: int | None,
        fps: float,
    ) -> None:
        if kind not in SCENE_KINDS:
            raise ValueError(f"kind must be one of {list(SCENE_KINDS)}, got {kind!r}")
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty must be one of {list(DIFFICULTIES)}, got {difficulty!r}")
        self.kind = kind
        self.difficulty = difficulty
        self.busy = difficulty == "occlusion"
        self.region = region
        self.rng = rng
        self.dt = 1.0 / fps
        self.agents: list[Agent] = []
        self.herd_goals: list[tuple[float, float]] = []
        self.herd_timers: list[float] = []
        self.herd_spread: list[float] = []
        self.herd_anchors: tuple[tuple[float, float], tuple[float, float]] = ((0, 0), (0, 0))
        self.herd_resting: list[bool] = []
        counts = default_counts(kind, difficulty, rng, num_objects)
        spawn = {"yard": self._spawn_yard, "field": self._spawn_field, "pitch": self._spawn_pitch}
        spawn[kind](counts)
        self._masses = np.array([a.mass for a in self.agents], dtype=np.float64)
        self._radii = np.array([a.radius for a in self.agents], dtype=np.float64)
        self._solid = np.array([a.class_name != "ball" for a in self.agents], dtype=bool)

    # ---------------------------------------------------------------- spawning

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

    def _spawn_yard(self, counts: dict[str, int]) -> None:
        rng = self.rng
        for _ in range(counts["excavator"]):
            look = excavator_look(rng)
            x, z = self._free_spot(4.5 * look.scale)
            dig = float(rng.uniform(-math.pi, math.pi))
            side = 1.0 if rng.random() < 0.5 else -1.0
            agent = Agent(
                self._next_id(),
                "excavator",
                look,
                x,
                z,
                heading=float(rng.uniform(-math.pi, math.pi)),
                radius=3.0 * look.scale,
                mass=math.inf,
                max_speed=0.0,
                state="dig",
                cycle=float(rng.random()),
                cycle_period=float(rng.uniform(10.0, 16.0)),
                dig_yaw=dig,
                dump_yaw=dig + side * float(rng.uniform(1.6, 2.6)),
            )
            self._update_dig_pose(agent)
            self._add(agent)
        for _ in range(counts["truck"]):
            look_t = truck_look(rng)
            x, z = self._free_spot(4.0)
            truck = self._add(
                Agent(
                    self._next_id(),
                    "truck",
                    look_t,
                    x,
                    z,
                    heading=float(rng.uniform(-math.pi, math.pi)),
                    radius=2.4 * look_t.scale,
                    mass=20.0,
                    max_speed=float(rng.uniform(3.0, 5.0)),
                    state="stop",
                    timer=float(rng.uniform(0.0, 4.0)),
                )
            )
            truck.attributes["state"] = "stopped"
        machines = [a for a in self.agents if a.class_name in ("excavator", "truck")]
        for _ in range(counts["person"]):
            look_p = person_look(rng, "worker")
            if self.busy and machines and rng.random() < 0.5:
                # Start just behind a machine, as seen from the camera.
                m = machines[int(rng.integers(0, len(machines)))]
                x, z = self.region.clamp(
                    m.x + float(rng.uniform(-1.0, 1.0)) * m.radius,
                    m.z + m.radius + float(rng.uniform(0.3, 2.0)),
                    0.3,
                )
            else:
                x, z = self._free_spot(0.5)
            worker = self._add(
                Agent(
                    self._next_id(),
                    "person",
                    look_p,
                    x,
                    z,
                    heading=float(rng.uniform(-math.pi, math.pi)),
                    radius=0.35,
                    max_speed=float(rng.uniform(1.1, 1.6)),
                    state="idle",
                    timer=float(rng.uniform(0.0, 3.0)),
                    gait=float(rng.uniform(0, 2 * math.pi)),
                )
            )
            worker.attributes["role"] = "worker"
            if rng.random() < 0.6:
                self._plan_worker(worker)
                worker.speed = worker.max_speed * float(rng.uniform(0.5, 1.0))

    def _spawn_field(self, counts: dict[str, int]) -> None:
        rng = self.rng
        herds = 2 if self.busy or rng.random() < 0.5 else 1
        centres: list[tuple[float, float]] = []
        if self.busy:
            # Two herds on one line, walking towards each other's end: they meet, pass through
            # each other, then turn and cross again. ``t`` says how far along they start.
            p = self.region.sample(rng, inner=0.6)
            direction = -1.0 if p[0] > 0 else 1.0
            ang = float(rng.uniform(-0.5, 0.5))
            length = float(rng.uniform(12.0, 20.0))
            q = self.region.clamp(
                p[0] + direction * length * math.cos(ang), p[1] + length * math.sin(ang), 2.0
            )
            self.herd_anchors = (p, q)
            t = float(rng.uniform(0.0, 0.5))
            centres = [
                (p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])),
                (q[0] + t * (p[0] - q[0]), q[1] + t * (p[1] - q[1])),
            ]
            self.herd_goals = [q, p]
            for _ in range(2):
                self.herd_timers.append(float(rng.uniform(15.0, 25.0)))
                self.herd_spread.append(float(rng.uniform(1.8, 3.0)))
        else:
            for _ in range(herds):
                centre = self.region.sample(rng, inner=0.7)
                centres.append(centre)
                self.herd_goals.append(self.region.sample_near(rng, *centre, 6.0))
                self.herd_timers.append(float(rng.uniform(4.0, 15.0)))
                self.herd_spread.append(float(rng.uniform(5.0, 9.0)))
        self.herd_resting = [False] * herds
        for name in ("cow", "sheep"):
            for _ in range(counts[name]):
                herd = int(rng.integers(0, herds))
                gx, gz = centres[herd]
                spread = self.herd_spread[herd]
                x, z = self.region.sample_near(rng, gx, gz, spread)
                if name == "cow":
                    look, coat = cow_look(rng)
                    radius = 0.75 * look.scale
                else:
                    look = sheep_look(rng)
                    coat = "wool"
                    radius = 0.45 * look.scale
                grazing = rng.random() < 0.5
                agent = self._add(
                    Agent(
                        self._next_id(),
                        name,
                        look,
                        x,
                        z,
                        heading=float(rng.uniform(-math.pi, math.pi)),
                        radius=radius,
                        max_speed=float(
                            rng.uniform(0.7, 1.2) if name == "cow" else rng.uniform(0.8, 1.4)
                        ),
                        state="graze" if grazing else "walk",
                        timer=float(rng.uniform(0.0, 8.0)),
                        gait=float(rng.uniform(0, 2 * math.pi)),
                        stride_len=1.6 if name == "cow" else 0.9,
                        group=herd,
                        head_down=1.0 if grazing else 0.0,
                        offset=(
                            float(rng.normal(0, spread * 0.6)),
                            float(rng.normal(0, spread * 0.6)),
                        ),
                    )
                )
                agent.attributes.update({"herd": str(herd), "coat": coat})
                if not grazing:
                    agent.speed = agent.max_speed * 0.8

    def _spawn_pitch(self, counts: dict[str, int]) -> None:
        rng = self.rng
        picks = rng.choice(len(TEAM_SHIRTS), size=2, replace=False)
        teams = [TEAM_SHIRTS[int(i)] for i in picks]
        bx, bz = self.region.sample(rng, inner=0.5)
        look_b = ball_look(rng)
        ball = self._add(
            Agent(
                self._next_id(),
                "ball",
                look_b,
                bx,
                bz,
                heading=0.0,
                radius=look_b.radius_m,
                mass=0.0,
            )
        )
        ball.cooldown = 0.0
        players = counts["person"]
        chasers, squeeze = self._pitch_pressure()
        for i in range(players):
            team = i % 2
            name, colour = teams[team]
            look = person_look(rng, "player", colour)
            # Formation spot: each team keeps to its own half (left/right of the frame).
            hx, hz = self.region.sample(rng, inner=0.85)
            hx = abs(hx) * (-1.0 if team == 0 else 1.0) * 0.9
            if i // 2 < chasers:
                x, z = self.region.sample_near(rng, bx, bz, 1.5)
            else:
                x, z = self.region.sample_near(
                    rng, hx + (bx - hx) * squeeze, hz + (bz - hz) * squeeze, 2.5
                )
            agent = self._add(
                Agent(
                    self._next_id(),
                    "person",
                    look,
                    x,
                    z,
                    heading=math.atan2(bz - z, bx - x) + float(rng.normal(0.0, 0.6)),
                    radius=0.35,
                    speed=float(rng.uniform(0.0, 4.0)),
                    max_speed=float(rng.uniform(5.0, 7.0)),
                    state="formation",
                    gait=float(rng.uniform(0, 2 * math.pi)),
                    stride_len=1.7,
                    group=team,
                    home=(hx, hz),
                )
            )
            agent.attributes.update({"team": name, "role": "player"})

    # ---------------------------------------------------------------- stepping

    def step(self) -> None:
        """Advance every agent by one frame."""
        if self.kind == "yard":
            self._step_yard()
        elif self.kind == "field":
            self._step_field()
        else:
            self._step_pitch()
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
        err = _wrap(math.atan2(dz, dx) - agent.heading)
        step = rate * self.dt
        agent.heading = _wrap(agent.heading + max(-step, min(step, err)))
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

    # ---------------------------------------------------------------- yard

    def _update_dig_pose(self, agent: Agent) -> None:
        p = agent.cycle % 1.0
        for (p0, s0, b0, k0), (p1, s1, b1, k1) in itertools.pairwise(_DIG_KEYS):
            if p0 <= p <= p1:
                t = _smooth((p - p0) / (p1 - p0))
                share = s0 + (s1 - s0) * t
                agent.boom = b0 + (b1 - b0) * t
                agent.stick = k0 + (k1 - k0) * t
                agent.swing = agent.dig_yaw + _wrap(agent.dump_yaw - agent.dig_yaw) * share
                moving = s0 != s1
                agent.attributes["phase"] = (
                    "swing" if moving else ("dump" if share > 0.5 else "dig")
                )
                agent.attributes["swing_deg"] = f"{math.degrees(_wrap(agent.swing)):.0f}"
                return

    def _plan_worker(self, agent: Agent) -> None:
        rng = self.rng
        machines = [a for a in self.agents if a.class_name in ("excavator", "truck")]
        if machines and self.busy and rng.random() < 0.75:
            # Route behind a machine: to a spot just beyond one end of it, across behind it,
            # and stop there (to work) before the next plan: seen from the camera, the worker
            # walks and stands behind the machine.
            machines.sort(key=lambda m: math.hypot(m.x - agent.x, m.z - agent.z))
            m = machines[int(rng.integers(0, min(2, len(machines))))]  # one of the nearest two
            side = 1.0 if agent.x < m.x else -1.0
            behind = m.z + m.radius + float(rng.uniform(0.5, 2.5))
            agent.waypoints = [
                self.region.clamp(m.x - side * (m.radius + 1.0), behind, 0.3),
                self.region.clamp(
                    m.x + side * m.radius * float(rng.uniform(-0.3, 0.9)),
                    behind + float(rng.uniform(-0.5, 1.0)),
                    0.3,
                ),
            ]
        else:
            # Somewhere within a short walk: clips are seconds long, the yard is not.
            agent.waypoints = [self.region.sample_near(rng, agent.x, agent.z, 8.0)]
        agent.state = "walk"
        agent.target_speed = agent.max_speed

    def _plan_truck(self, agent: Agent) -> None:
        rng = self.rng
        excavators = [a for a in self.agents if a.class_name == "excavator"]
        roll = rng.random()
        if excavators and roll < 0.5:
            e = excavators[int(rng.integers(0, len(excavators)))]
            ang = e.heading + e.dump_yaw
            reach = 6.5 * getattr(e.look, "scale", 1.0)
            goal = self.region.clamp(e.x + math.cos(ang) * reach, e.z + math.sin(ang) * reach, 1.0)
        elif roll < 0.75:
            z = float(rng.uniform(self.region.z_min, self.region.z_max))
            edge = self.region.half_width(z) * (1.0 if rng.random() < 0.5 else -1.0)
            goal = (edge, z)  # drive out of view (and come back later)
        else:
            goal = self.region.sample(rng)
        agent.waypoints = [goal]
        agent.state = "drive"
        agent.attributes["state"] = "driving"

    def _step_yard(self) -> None:
        rng, dt = self.rng, self.dt
        for agent in self.agents:
            if agent.class_name == "excavator":
                agent.cycle = (agent.cycle + dt / agent.cycle_period) % 1.0
                if agent.cycle < dt / agent.cycle_period and rng.random() < 0.3:
                    # Now and then dig a little to the side of the last spot.
                    agent.dig_yaw += float(rng.uniform(-0.5, 0.5))
                    agent.dump_yaw += float(rng.uniform(-0.3, 0.3))
                self._update_dig_pose(agent)
                continue
            if agent.class_name == "truck":
                self._step_truck(agent)
                continue
            self._step_walker(agent)

    def _step_truck(self, agent: Agent) -> None:
        if agent.state == "stop":
            agent.target_speed = 0.0
            agent.timer -= self.dt
            if agent.timer <= 0.0:
                self._plan_truck(agent)
        else:
            tx, tz = agent.waypoints[0]
            dist = math.hypot(tx - agent.x, tz - agent.z)
            rate = max(agent.speed, 1.0) / 7.0  # about a 7 m turning radius
            self._steer(agent, tx, tz, rate)
            err = abs(_wrap(math.atan2(tz - agent.z, tx - agent.x) - agent.heading))
            agent.target_speed = min(agent.max_speed, 0.5 + dist * 0.5) * (
                0.5 if err > 1.0 else 1.0
            )
            if dist < 1.5 or (dist < 7.0 and err > 1.2):
                agent.state = "stop"
                agent.timer = float(self.rng.uniform(2.0, 7.0))
                agent.attributes["state"] = "stopped"
        self._move(agent, accel=0.8)

    def _step_walker(self, agent: Agent) -> None:
        rng, dt = self.rng, self.dt
        if agent.state == "idle":
            agent.target_speed = 0.0
            agent.timer -= dt
            agent.heading = _wrap(agent.heading + float(rng.normal(0.0, 0.6)) * dt)
            if agent.timer <= 0.0:
                self._plan_worker(agent)
        else:
            if not agent.waypoints:
                self._plan_worker(agent)
            tx, tz = agent.waypoints[0]
            dist = self._steer(agent, tx, tz, 3.0)
            agent.target_speed = agent.max_speed * min(1.0, 0.4 + dist)
            if dist < 0.5:
                agent.waypoints.pop(0)
                if not agent.waypoints:
                    agent.state = "idle"
                    agent.timer = float(rng.uniform(1.0, 5.0))
        self._move(agent, accel=3.0)

    # ---------------------------------------------------------------- field

    def _step_field(self) -> None:
        rng, dt = self.rng, self.dt
        herds = len(self.herd_goals)
        centroids = []
        for h in range(herds):
            members = [(a.x, a.z) for a in self.agents if a.group == h]
            centroids.append(tuple(np.mean(members, axis=0)) if members else self.herd_goals[h])
        for h in range(herds):
            self.herd_timers[h] -= dt
            gx, gz = self.herd_goals[h]
            cx, cz = centroids[h]
            if not self.herd_resting[h]:
                # Travelling: rest once the herd has gathered at its goal (or gave up on it).
                if math.hypot(gx - cx, gz - cz) < self.herd_spread[h] or self.herd_timers[h] <= 0:
                    self.herd_resting[h] = True
                    rest = (3.0, 8.0) if self.busy else (8.0, 25.0)
                    self.herd_timers[h] = float(rng.uniform(*rest))
                continue
            if self.herd_timers[h] > 0.0:
                continue
            if self.busy and herds == 2:
                # Turn round and cross the other herd again, from the far end of the line.
                p, q = self.herd_anchors
                near_q = math.hypot(gx - q[0], gz - q[1]) < math.hypot(gx - p[0], gz - p[1])
                end = p if near_q else q
                goal = self.region.clamp(
                    end[0] + float(rng.normal(0, 1.5)), end[1] + float(rng.normal(0, 1.5)), 2.0
                )
                self.herd_spread[h] = float(rng.uniform(1.2, 2.8))
            else:
                goal = self.region.sample_near(rng, gx, gz, 12.0)
            self.herd_goals[h] = goal
            self.herd_timers[h] = 60.0  # give up on a goal the herd cannot reach
            self.herd_resting[h] = False
        for agent in self.agents:
            self._step_animal(agent, centroids[agent.group])

    def _step_animal(self, agent: Agent, centroid: tuple[float, ...]) -> None:
        """Walk to the herd's goal while it travels; graze, and keep near the herd, at rest."""
        rng, dt = self.rng, self.dt
        herd = agent.group
        gx, gz = self.herd_goals[herd]
        cx, cz = centroid[0], centroid[1]
        spread = self.herd_spread[herd]
        target = (gx + agent.offset[0] * spread / 5.0, gz + agent.offset[1] * spread / 5.0)
        far_from_herd = math.hypot(agent.x - cx, agent.z - cz) > spread * 1.8
        to_target = math.hypot(agent.x - target[0], agent.z - target[1])
        travelling = not self.herd_resting[herd]
        agent.timer -= dt
        if agent.state == "graze":
            agent.target_speed = 0.0
            agent.heading = _wrap(agent.heading + float(rng.normal(0.0, 0.25)) * dt)
            # Travelling herds leave grazing quickly (each animal at its own moment).
            leave = travelling and to_target > 1.5 and rng.random() < 1.5 * dt
            if far_from_herd or leave or (agent.timer <= 0.0 and to_target > 1.0):
                agent.state = "walk"
                agent.timer = float(rng.uniform(3.0, 10.0))
        else:
            tx, tz = (cx, cz) if far_from_herd and not travelling else target
            dist = self._steer(agent, tx, tz, 1.2)
            agent.target_speed = agent.max_speed * min(1.0, 0.3 + dist / 3.0)
            done = dist < 1.0 or (not travelling and agent.timer <= 0.0)
            if done and not far_from_herd:
                agent.state = "graze"
                agent.timer = float(rng.uniform(3.0, 12.0))
        want_down = 1.0 if agent.state == "graze" else 0.0
        agent.head_down += (want_down - agent.head_down) * min(1.0, 1.5 * dt)
        agent.attributes["state"] = agent.state
        self._move(agent, accel=1.5)

    # ---------------------------------------------------------------- pitch

    def _step_pitch(self) -> None:
        dt = self.dt
        ball = self.agents[0]
        players = self.agents[1:]
        # Ball physics: roll with friction, bounce, rebound off the edges of the play area.
        ball.cooldown = max(0.0, ball.cooldown - dt)
        ball.x += ball.vx * dt
        ball.z += ball.vz * dt
        drag = math.exp(-(0.5 if ball.height > 0 else 0.9) * dt)
        ball.vx *= drag
        ball.vz *= drag
        ball.vheight -= 9.81 * dt
        ball.height += ball.vheight * dt
        if ball.height <= 0.0:
            ball.height = 0.0
            ball.vheight = -ball.vheight * 0.45 if ball.vheight < -1.0 else 0.0
        limit = self.region.half_width(ball.z) * 0.85
        if abs(ball.x) > limit:
            ball.x = math.copysign(limit, ball.x)
            ball.vx = -ball.vx * 0.6
        # Play stays in the nearer part of the view, where players are big enough to matter.
        cam = self.region.camera
        z_far = min(self.region.z_max - 1.0, cam.depth_at_row(cam.height * _BALL_TOP_ROW))
        if not self.region.z_min + 1.0 <= ball.z <= z_far:
            ball.z = min(max(ball.z, self.region.z_min + 1.0), z_far)
            ball.vz = -ball.vz * 0.6
        ball.heading = math.atan2(ball.vz, ball.vx) if ball.vx or ball.vz else ball.heading
        chasers_per_team, squeeze = self._pitch_pressure()
        for team in (0, 1):
            members = [p for p in players if p.group == team]
            members.sort(key=lambda p: math.hypot(p.x - ball.x, p.z - ball.z))
            for rank, player in enumerate(members):
                dist_ball = math.hypot(player.x - ball.x, player.z - ball.z)
                if rank < chasers_per_team:
                    player.state = "chase"
                    # Lead the ball a little; contesting players close in from both teams.
                    tx, tz = ball.x + ball.vx * 0.3, ball.z + ball.vz * 0.3
                    dist = self._steer(player, tx, tz, 6.0)
                    player.target_speed = player.max_speed * min(1.0, 0.3 + dist / 4.0)
                else:
                    player.state = "formation"
                    hx = player.home[0] + (ball.x - player.home[0]) * squeeze
                    hz = player.home[1] + (ball.z - player.home[1]) * squeeze
                    dist = math.hypot(hx - player.x, hz - player.z)
                    if dist > 1.0:
                        self._steer(player, hx, hz, 4.0)
                        player.target_speed = min(player.max_speed * 0.6, 0.8 + dist * 0.5)
                    else:
                        player.target_speed = 0.0
                        self._steer(player, ball.x, ball.z, 2.0)
                if dist_ball < 0.7 and ball.height < 0.6 and ball.cooldown <= 0.0:
                    self._kick(
                        player, ball, [p for p in players if p.group == team and p is not player]
                    )
                self._move(player, accel=3.0)

    def _pitch_pressure(self) -> tuple[int, float]:
        """(players per team who chase the ball, how far the formation leans towards it)."""
        return (3, 0.6) if self.busy else (1, 0.3)

    def _kick(self, player: Agent, ball: Agent, mates: list[Agent]) -> None:
        rng = self.rng
        if mates and rng.random() < 0.7:
            mate = mates[int(rng.integers(0, len(mates)))]
            ang = math.atan2(mate.z - ball.z, mate.x - ball.x) + float(rng.normal(0, 0.15))
            power = min(14.0, 3.0 + math.hypot(mate.z - ball.z, mate.x - ball.x) * 0.7)
        else:
            ang = float(rng.uniform(-math.pi, math.pi))
            power = float(rng.uniform(5.0, 12.0))
        ball.vx = math.cos(ang) * power
        ball.vz = math.sin(ang) * power
        ball.vheight = float(rng.uniform(2.0, 6.0)) if rng.random() < 0.2 else 0.0
        ball.cooldown = 0.8
        ball.attributes["last_touch"] = player.attributes.get("team", "")

"""The field's world: cattle and sheep graze (head down, still) and walk after their herd's goal;
a cohesion pull keeps herds together. With ``occlusion`` two tight herds walk to each other's end
of a line and back, so they cross and bunch up.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from streamseg.synth.agents import Agent, World, wrap_angle
from streamseg.synth.looks import cow_look, sheep_look

logger = logging.getLogger(__name__)


class FieldWorld(World):
    """Herds of cattle and sheep (module docstring)."""

    kind = "field"

    herd_goals: list[tuple[float, float]]
    """Where each herd walks to, metres."""
    herd_timers: list[float]
    """Seconds each herd keeps its goal (or rests)."""
    herd_spread: list[float]
    """How close each herd's members stay to its centre, metres."""
    herd_resting: list[bool]
    """Whether each herd is resting (grazing) rather than travelling."""

    def _spawn(self, counts: dict[str, int]) -> None:
        self.herd_goals, self.herd_timers, self.herd_spread, self.herd_resting = [], [], [], []
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
                agent.attributes.update({"herd": str(herd), "coat": coat, "state": agent.state})
                if not grazing:
                    agent.speed = agent.max_speed * 0.8

    def _step_kind(self) -> None:
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
            agent.heading = wrap_angle(agent.heading + float(rng.normal(0.0, 0.25)) * dt)
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

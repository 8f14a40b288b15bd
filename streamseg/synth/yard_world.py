"""The construction yard's world: excavators dig, swing to dump and swing back (the upper
structure rotates); trucks drive between loading spots and the yard's edges; workers walk
between waypoints and pause. With ``occlusion`` difficulty workers route behind machines.
"""

from __future__ import annotations

import itertools
import logging
import math

from streamseg.synth.agents import Agent, World, smoothstep, wrap_angle
from streamseg.synth.looks import excavator_look, person_look, truck_look

logger = logging.getLogger(__name__)

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


class YardWorld(World):
    """Excavators, trucks and workers (module docstring)."""

    kind = "yard"

    def _spawn(self, counts: dict[str, int]) -> None:
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

    def _update_dig_pose(self, agent: Agent) -> None:
        p = agent.cycle % 1.0
        for (p0, s0, b0, k0), (p1, s1, b1, k1) in itertools.pairwise(_DIG_KEYS):
            if p0 <= p <= p1:
                t = smoothstep((p - p0) / (p1 - p0))
                share = s0 + (s1 - s0) * t
                agent.boom = b0 + (b1 - b0) * t
                agent.stick = k0 + (k1 - k0) * t
                agent.swing = agent.dig_yaw + wrap_angle(agent.dump_yaw - agent.dig_yaw) * share
                moving = s0 != s1
                agent.attributes["phase"] = (
                    "swing" if moving else ("dump" if share > 0.5 else "dig")
                )
                agent.attributes["swing_deg"] = f"{math.degrees(wrap_angle(agent.swing)):.0f}"
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

    def _step_kind(self) -> None:
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
            err = abs(wrap_angle(math.atan2(tz - agent.z, tx - agent.x) - agent.heading))
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
            agent.heading = wrap_angle(agent.heading + float(rng.normal(0.0, 0.6)) * dt)
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

"""The pitch's world: the nearest players of each team chase the ball, the others hold shifted
formation spots; a player at the ball kicks it. With ``occlusion`` more players contest the ball
and the formation squeezes around it.
"""

from __future__ import annotations

import logging
import math

from streamseg.synth.agents import Agent, World
from streamseg.synth.looks import TEAM_SHIRTS, ball_look, person_look

logger = logging.getLogger(__name__)

_BALL_TOP_ROW = 0.35  # the ball rebounds before its feet point rises above this share of rows


class PitchWorld(World):
    """Two teams and a ball (module docstring)."""

    kind = "pitch"

    def _spawn(self, counts: dict[str, int]) -> None:
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

    def _step_kind(self) -> None:
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

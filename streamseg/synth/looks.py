"""Colours and builds of the objects: seeded draws within class-plausible ranges.

Hues vary per object (hi-vis orange or lime, machine yellows, cattle coats, team shirts) so a
model trained on the renders does not learn one colour per class.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from streamseg.synth import shapes
from streamseg.synth.shapes import Colour

logger = logging.getLogger(__name__)


def _vary(rng: np.random.Generator, colour: Colour, amount: float = 0.12) -> Colour:
    f = rng.uniform(1.0 - amount, 1.0 + amount, size=3)
    return (
        float(min(255.0, colour[0] * f[0])),
        float(min(255.0, colour[1] * f[1])),
        float(min(255.0, colour[2] * f[2])),
    )


def _pick(rng: np.random.Generator, options: Sequence[Colour], amount: float = 0.1) -> Colour:
    return _vary(rng, options[int(rng.integers(0, len(options)))], amount)


_SKIN: tuple[Colour, ...] = (
    (150.0, 180.0, 225.0),
    (120.0, 155.0, 205.0),
    (90.0, 120.0, 170.0),
    (60.0, 85.0, 125.0),
    (45.0, 60.0, 90.0),
)
_HIVIS: tuple[Colour, ...] = ((20.0, 130.0, 255.0), (40.0, 235.0, 205.0), (30.0, 95.0, 245.0))
_HATS: tuple[Colour, ...] = (
    (240.0, 240.0, 240.0),
    (20.0, 215.0, 250.0),
    (20.0, 120.0, 245.0),
    (180.0, 90.0, 30.0),
)
_TROUSERS: tuple[Colour, ...] = (
    (70.0, 45.0, 30.0),
    (60.0, 60.0, 60.0),
    (90.0, 120.0, 135.0),
    (30.0, 30.0, 30.0),
)
TEAM_SHIRTS: tuple[tuple[str, Colour], ...] = (
    ("red", (40.0, 40.0, 200.0)),
    ("blue", (190.0, 80.0, 30.0)),
    ("white", (235.0, 235.0, 235.0)),
    ("black", (35.0, 35.0, 35.0)),
    ("yellow", (30.0, 220.0, 245.0)),
    ("skyblue", (230.0, 190.0, 120.0)),
    ("orange", (20.0, 120.0, 250.0)),
    ("purple", (140.0, 40.0, 110.0)),
)
_MACHINE_BODY: tuple[Colour, ...] = (
    (10.0, 175.0, 235.0),
    (15.0, 120.0, 235.0),
    (30.0, 200.0, 225.0),
    (40.0, 150.0, 210.0),
)
_TRUCK_CAB: tuple[Colour, ...] = (
    (235.0, 235.0, 235.0),
    (40.0, 40.0, 190.0),
    (170.0, 90.0, 30.0),
    (20.0, 130.0, 240.0),
    (30.0, 200.0, 235.0),
    (60.0, 130.0, 60.0),
)
_TRUCK_DUMP: tuple[Colour, ...] = (
    (120.0, 120.0, 120.0),
    (20.0, 170.0, 230.0),
    (30.0, 110.0, 220.0),
    (50.0, 50.0, 160.0),
)
_COW_COATS: tuple[tuple[str, Colour, Colour | None], ...] = (
    ("brown", (35.0, 65.0, 115.0), None),
    ("black", (32.0, 32.0, 36.0), None),
    ("red", (40.0, 80.0, 150.0), None),
    ("holstein", (235.0, 235.0, 235.0), (30.0, 30.0, 32.0)),
    ("patched", (40.0, 70.0, 120.0), (225.0, 230.0, 235.0)),
    ("cream", (150.0, 190.0, 215.0), None),
)


def person_look(
    rng: np.random.Generator, role: str, team_colour: Colour | None = None
) -> shapes.PersonLook:
    """A worker (hard hat, hi-vis vest) or a player (team shirt, shorts, socks)."""
    skin = _pick(rng, _SKIN, 0.06)
    height = float(rng.uniform(1.62, 1.92))
    shoes = _pick(rng, [(30.0, 30.0, 30.0), (200.0, 200.0, 200.0), (40.0, 60.0, 90.0)], 0.1)
    hair = _pick(rng, [(20.0, 25.0, 30.0), (30.0, 60.0, 100.0), (90.0, 150.0, 200.0)], 0.1)
    if role == "worker":
        return shapes.PersonLook(
            height_m=height,
            skin=skin,
            shirt=_pick(rng, _HIVIS, 0.08),
            legs=_pick(rng, _TROUSERS, 0.12),
            shoes=shoes,
            hat=_pick(rng, _HATS, 0.06),
            vest_stripe=_vary(rng, (205.0, 205.0, 200.0), 0.05),
        )
    shirt = team_colour if team_colour is not None else _pick(rng, [c for _, c in TEAM_SHIRTS])
    shorts = (250.0, 250.0, 250.0) if sum(shirt) < 300 else (30.0, 30.0, 30.0)
    return shapes.PersonLook(
        height_m=height,
        skin=skin,
        shirt=_vary(rng, shirt, 0.04),
        legs=_vary(rng, shirt, 0.05),  # socks in the team colour
        shoes=shoes,
        shorts=shorts,
        hair=hair,
    )


def excavator_look(rng: np.random.Generator) -> shapes.ExcavatorLook:
    """A yellow-to-orange excavator, 0.85..1.15 of a 20 t machine."""
    body = _pick(rng, _MACHINE_BODY, 0.08)
    return shapes.ExcavatorLook(
        scale=float(rng.uniform(0.85, 1.15)),
        body=body,
        tracks=_vary(rng, (45.0, 45.0, 48.0), 0.1),
        glass=_vary(rng, (70.0, 60.0, 45.0), 0.1),
        bucket=_vary(rng, (55.0, 60.0, 65.0), 0.1),
    )


def truck_look(rng: np.random.Generator) -> shapes.TruckLook:
    """A dump truck with a random cab and body colour."""
    return shapes.TruckLook(
        scale=float(rng.uniform(0.85, 1.1)),
        cab=_pick(rng, _TRUCK_CAB, 0.08),
        dump=_pick(rng, _TRUCK_DUMP, 0.1),
        chassis=_vary(rng, (40.0, 40.0, 42.0), 0.1),
        glass=_vary(rng, (90.0, 70.0, 50.0), 0.1),
        tyre=_vary(rng, (28.0, 28.0, 30.0), 0.1),
    )


def cow_look(rng: np.random.Generator) -> tuple[shapes.AnimalLook, str]:
    """A cow: plain brown, black, red, cream, or patched; returns the look and its coat name."""
    name, coat, patch = _COW_COATS[int(rng.integers(0, len(_COW_COATS)))]
    coat = _vary(rng, coat, 0.1)
    patches: tuple[tuple[float, float, float, float], ...] = ()
    if patch is not None:
        patches = tuple(
            (
                float(rng.uniform(-0.6, 0.6)),
                float(rng.uniform(-0.15, 0.15)),
                float(rng.uniform(0.18, 0.35)),
                float(rng.uniform(0.12, 0.25)),
            )
            for _ in range(int(rng.integers(2, 4)))
        )
    head = coat if patch is None or rng.random() < 0.5 else _vary(rng, patch, 0.05)
    look = shapes.AnimalLook(
        scale=float(rng.uniform(0.9, 1.12)),
        coat=coat,
        head=head,
        legs=shapes.scale_colour(coat, 0.85),
        patches=patches,
        patch_colour=None if patch is None else _vary(rng, patch, 0.05),
    )
    return look, name


def sheep_look(rng: np.random.Generator) -> shapes.AnimalLook:
    """A woolly sheep, cream to grey, with a black or white face."""
    wool = _pick(
        rng,
        [
            (200.0, 220.0, 228.0),
            (175.0, 195.0, 205.0),
            (215.0, 225.0, 230.0),
            (150.0, 160.0, 170.0),
        ],
        0.05,
    )
    face = _pick(rng, [(30.0, 30.0, 32.0), (45.0, 50.0, 55.0), (170.0, 185.0, 195.0)], 0.08)
    return shapes.AnimalLook(
        scale=float(rng.uniform(0.9, 1.15)),
        coat=wool,
        head=face,
        legs=_vary(rng, (40.0, 42.0, 45.0), 0.1),
    )


def ball_look(rng: np.random.Generator) -> shapes.BallLook:
    """A white ball with a dark patch. Bigger than a real one (0.22 m) so it stays a few
    pixels wide across the pitch."""
    return shapes.BallLook(
        radius_m=float(rng.uniform(0.2, 0.24)),
        colour=_vary(rng, (240.0, 242.0, 242.0), 0.03),
        patch=_vary(rng, (40.0, 40.0, 40.0), 0.1),
    )

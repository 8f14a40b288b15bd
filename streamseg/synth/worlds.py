"""Which :class:`~streamseg.synth.agents.World` subclass a scene kind gets."""

from __future__ import annotations

import logging

import numpy as np

from streamseg.synth.agents import Region, World
from streamseg.synth.field_world import FieldWorld
from streamseg.synth.frame import SCENE_KINDS
from streamseg.synth.pitch_world import PitchWorld
from streamseg.synth.yard_world import YardWorld

logger = logging.getLogger(__name__)

WORLDS: dict[str, type[World]] = {"yard": YardWorld, "field": FieldWorld, "pitch": PitchWorld}
"""The world class of each scene kind."""


def make_world(
    kind: str,
    difficulty: str,
    region: Region,
    rng: np.random.Generator,
    num_objects: int | None,
    fps: float,
) -> World:
    """The world of a scene of ``kind`` (the other arguments as
    :class:`~streamseg.synth.agents.World`'s).

    Raises:
        ValueError: ``kind`` or ``difficulty`` is not one the synthetic world knows.
    """
    if kind not in WORLDS:
        raise ValueError(f"kind must be one of {list(SCENE_KINDS)}, got {kind!r}")
    return WORLDS[kind](difficulty, region, rng, num_objects, fps)

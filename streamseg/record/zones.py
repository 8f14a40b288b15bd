"""Zones to draw, from the pipeline's ``zones`` and ``rules`` sections.

A zone written in normalized units only has pixels once the frame size is known, so zones are
given to the recorder as a :data:`ZoneProvider`: ``provider(stream_id, (width, height))`` is
called on the stream's first recorded frame. The conversion is the rule engine's
(:func:`streamseg.rules.geometry.to_frame_px`), so the zone drawn is the zone the rules test.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from streamseg.config.pipeline import PipelineConfig
from streamseg.config.zones import LineZoneConfig, ZoneConfig
from streamseg.outputs.annotate import ZoneDrawing
from streamseg.rules.geometry import to_frame_px

logger = logging.getLogger(__name__)

ZoneProvider = Callable[[str, tuple[int, int]], Sequence[ZoneDrawing]]
"""``provider(stream_id, (width, height)) -> the stream's zones in frame pixels``."""


def zone_drawings(
    zones: Sequence[ZoneConfig], stream_id: str, resolution_wh: tuple[int, int]
) -> list[ZoneDrawing]:
    """The zones of ``stream_id`` in frame pixels.

    Args:
        zones: the pipeline's ``zones`` section.
        stream_id: the stream.
        resolution_wh: (width, height) of its frames.

    Returns:
        One :class:`ZoneDrawing` per zone that applies to the stream, in config order.
    """
    return [
        ZoneDrawing(
            zone.id,
            np.round(to_frame_px(zone.points, zone.units, resolution_wh)).astype(np.int32),
            is_line=isinstance(zone, LineZoneConfig),
        )
        for zone in zones
        if zone.applies_to(stream_id)
    ]


def config_zone_provider(config: PipelineConfig) -> ZoneProvider:
    """A :data:`ZoneProvider` over the pipeline's ``zones`` section."""
    zones = list(config.zones)

    def provide(stream_id: str, resolution_wh: tuple[int, int]) -> Sequence[ZoneDrawing]:
        return zone_drawings(zones, stream_id, resolution_wh)

    return provide


def fixed_zone_provider(zones: Mapping[str, Sequence[ZoneDrawing]]) -> ZoneProvider:
    """A :data:`ZoneProvider` from pixel zones given per stream (whatever the frame size)."""
    table = {stream_id: tuple(drawings) for stream_id, drawings in zones.items()}

    def provide(stream_id: str, resolution_wh: tuple[int, int]) -> Sequence[ZoneDrawing]:
        return table.get(stream_id, ())

    return provide


def rule_zone_ids(config: PipelineConfig) -> dict[str, str]:
    """Rule id -> the zone it watches, for the rules that watch one (``near`` does not)."""
    table: dict[str, str] = {}
    for rule in config.rules:
        zone = getattr(rule, "zone", None)
        if isinstance(zone, str):
            table[rule.id] = zone
    return table

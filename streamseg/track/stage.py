"""The tracker as a runtime analytics stage: one :class:`MaskTracker` per stream."""

from __future__ import annotations

import logging

import supervision as sv

from streamseg.config.tracker import TrackerConfig
from streamseg.runtime.analytics import AnalyticsStage, StageFactory
from streamseg.track.tracker import MaskTracker
from streamseg.types import Frame

logger = logging.getLogger(__name__)


class TrackerStage:
    """Runs a stream's :class:`MaskTracker` on each frame, timed by the frame's ``pts_s``.

    The frame's image goes along, for the colour term (``appearance_weight``).

    Args:
        stream_id: the stream this stage serves (names the tracker in log messages).
        config: tracker options.
    """

    name = "tracker"

    def __init__(self, stream_id: str, config: TrackerConfig) -> None:
        self.stream_id = stream_id
        self.tracker = MaskTracker(config, name=f"tracker[{stream_id}]")

    def process(self, frame: Frame, detections: sv.Detections) -> sv.Detections:
        """Track one frame; returns a new Detections with ``tracker_id`` set (-1: untracked)."""
        return self.tracker.update(detections, timestamp=frame.pts_s, image=frame.image)


def tracker_stage_factory(config: TrackerConfig) -> StageFactory | None:
    """A factory that builds a fresh :class:`TrackerStage` per stream, or None when disabled.

    Args:
        config: the pipeline's ``tracker`` section.

    Returns:
        ``stream_id -> TrackerStage``, or ``None`` when ``config.enabled`` is false.
    """
    if not config.enabled:
        return None

    def build(stream_id: str) -> AnalyticsStage:
        return TrackerStage(stream_id, config)

    return build

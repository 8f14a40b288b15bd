"""The tracker as a runtime analytics stage: one :class:`MaskTracker` per stream.

With a tracker, the model keeps detections down to ``tracker.low_threshold``
(:func:`model_for_tracking`), below ``model.confidence``: ByteTrack's second stage and
``persist_threshold`` need the weak ones (an animal in a herd the model scores 0.15-0.25).
:class:`TrackerStage` hands on a detection below ``model.confidence`` only where a confirmed track
claims it, so the outputs show what they showed without the weak band, plus the objects the
tracker follows through it.
"""

from __future__ import annotations

import logging

import numpy as np
import supervision as sv

from streamseg.config.model import ModelConfig
from streamseg.config.tracker import TrackerConfig
from streamseg.runtime.analytics import AnalyticsStage, StageFactory
from streamseg.track.tracker import MaskTracker
from streamseg.types import Frame

logger = logging.getLogger(__name__)


def model_for_tracking(model: ModelConfig, tracker: TrackerConfig) -> ModelConfig:
    """The ``model`` section the segmenter is built with: its ``confidence`` lowered to the
    tracker's ``low_threshold`` when a tracker runs and that is lower (else ``model`` itself)."""
    if not tracker.enabled or tracker.low_threshold >= model.confidence:
        return model
    return model.model_copy(update={"confidence": tracker.low_threshold})


def shown(detections: sv.Detections, confidence: float) -> sv.Detections:
    """The tracker's output less the weak detections no confirmed track claimed: those below
    ``confidence`` (``model.confidence``) with ``tracker_id`` < 1. Rows keep their order."""
    if len(detections) == 0 or detections.confidence is None or detections.tracker_id is None:
        return detections
    keep = (np.asarray(detections.confidence) >= confidence) | (
        np.asarray(detections.tracker_id) >= 1
    )
    if keep.all():
        return detections
    kept = detections[keep]
    assert isinstance(kept, sv.Detections)  # a boolean index selects rows
    return kept


class TrackerStage:
    """Runs a stream's :class:`MaskTracker` on each frame, timed by the frame's ``pts_s``.

    The frame's image goes along, for the colour term (``appearance_weight``).

    Args:
        stream_id: the stream this stage serves (names the tracker in log messages).
        config: tracker options.
        confidence: ``model.confidence``: untracked detections below it are not handed on
            (:func:`shown`); None hands on every detection.
    """

    name = "tracker"

    def __init__(
        self, stream_id: str, config: TrackerConfig, confidence: float | None = None
    ) -> None:
        self.stream_id = stream_id
        self.tracker = MaskTracker(config, name=f"tracker[{stream_id}]")
        self.confidence = confidence

    def process(self, frame: Frame, detections: sv.Detections) -> sv.Detections:
        """Track one frame; returns a new Detections with ``tracker_id`` set (-1: untracked)."""
        tracked = self.tracker.update(detections, timestamp=frame.pts_s, image=frame.image)
        return tracked if self.confidence is None else shown(tracked, self.confidence)


def tracker_stage_factory(
    config: TrackerConfig, confidence: float | None = None
) -> StageFactory | None:
    """A factory that builds a fresh :class:`TrackerStage` per stream, or None when disabled.

    Args:
        config: the pipeline's ``tracker`` section.
        confidence: ``model.confidence`` (see :class:`TrackerStage`).

    Returns:
        ``stream_id -> TrackerStage``, or ``None`` when ``config.enabled`` is false.
    """
    if not config.enabled:
        return None

    def build(stream_id: str) -> AnalyticsStage:
        return TrackerStage(stream_id, config, confidence)

    return build

"""The rules as a step of a stream's analytics (:mod:`streamseg.runtime.analytics`).

The lead wires it after the tracker::

    factory = build_rules_stage_factory(config, listeners=[publisher, event_log])
    if factory is not None:
        stage_factories.append(factory)     # one RulesStage per stream, after the tracker

and, when a stream ends, calls ``stage.close()`` so open occurrences end
(``details.reason: stream_end``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import supervision as sv

from streamseg.config.pipeline import PipelineConfig
from streamseg.rules.engine import RuleEngine
from streamseg.rules.events import Event, EventListener
from streamseg.runtime.analytics import AnalyticsStage, StageFactory
from streamseg.types import Frame

logger = logging.getLogger(__name__)


class RulesStage:
    """Runs one stream's :class:`RuleEngine` on every frame; detections pass through unchanged.

    Args:
        engine: the stream's engine (it holds the listeners).

    Attributes:
        name: ``"rules"`` (the stage's label in timings and metrics).
        events: how many event messages this stage has raised.
    """

    name = "rules"

    def __init__(self, engine: RuleEngine) -> None:
        self.engine = engine
        self.events = 0

    def process(self, frame: Frame, detections: sv.Detections) -> sv.Detections:
        """Evaluate the rules on one frame; returns ``detections`` itself (not modified)."""
        self.events += len(self.engine.evaluate(frame, detections))
        return detections

    def close(self) -> list[Event]:
        """End the stream's open occurrences (the stream ended); returns the ``end`` events."""
        events = self.engine.close()
        self.events += len(events)
        return events


def build_rules_stage_factory(
    config: PipelineConfig, listeners: Sequence[EventListener]
) -> StageFactory | None:
    """A factory of :class:`RulesStage` per stream, or ``None`` when the pipeline has no rules.

    Args:
        config: the validated pipeline (zones, rules, sources' calibrations).
        listeners: told about every stream's events, rule states and zone counts; they must be
            thread-safe (each stream's analytics thread calls them).

    Returns:
        ``factory(stream_id) -> RulesStage``, or ``None``.
    """
    if not config.rules:
        return None
    shared = tuple(listeners)

    def factory(stream_id: str) -> AnalyticsStage:
        return RulesStage(RuleEngine.from_config(config, stream_id, shared))

    return factory

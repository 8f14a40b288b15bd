"""Zones, rules over object masks, and the events they raise."""

from streamseg.rules.engine import RuleEngine
from streamseg.rules.events import Event, EventListener, EventType, event_schema, new_event_id
from streamseg.rules.stage import RulesStage, build_rules_stage_factory

__all__ = [
    "Event",
    "EventListener",
    "EventType",
    "RuleEngine",
    "RulesStage",
    "build_rules_stage_factory",
    "event_schema",
    "new_event_id",
]

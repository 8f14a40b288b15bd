"""Zones, rules over object masks, and the events they raise."""

from streamseg.rules.events import Event, EventListener, EventType, event_schema, new_event_id

__all__ = ["Event", "EventListener", "EventType", "event_schema", "new_event_id"]

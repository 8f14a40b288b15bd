"""Put the recorder's paths into every event before the other listeners see it.

The rule engine calls each of its listeners with the same :class:`Event`. For the MQTT payload
(and any event log) to carry the snapshot and clip paths, the event must be enriched first;
:class:`RecordingListeners` does that and then fans out, so the rule engine is given one
listener::

    listeners = RecordingListeners(recorder, [publisher, event_log])
    build_rules_stage_factory(config, listeners=[listeners])
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from streamseg.record.recorder import Recorder
from streamseg.rules.events import Event, EventListener

logger = logging.getLogger(__name__)


class RecordingListeners:
    """An :class:`EventListener` that adds the recorder's paths to each event, then tells the
    recorder and every other listener, in order.

    A listener that raises is logged and skipped; the others are still told.

    Args:
        recorder: the pipeline's recorder (told first).
        listeners: the other listeners (MQTT publisher, event log, ...).
    """

    def __init__(self, recorder: Recorder, listeners: Sequence[EventListener] = ()) -> None:
        self.recorder = recorder
        self.listeners: list[EventListener] = [recorder, *listeners]

    def on_event(self, event: Event) -> None:
        """Enrich with :meth:`Recorder.with_paths`, then tell everyone."""
        enriched = self.recorder.with_paths(event)
        for listener in self.listeners:
            self._call(listener, "on_event", enriched)

    def on_rule_state(self, stream_id: str, rule_id: str, active: bool) -> None:
        """Tell everyone."""
        for listener in self.listeners:
            self._call(listener, "on_rule_state", stream_id, rule_id, active)

    def on_zone_count(self, stream_id: str, zone_id: str, class_name: str, count: int) -> None:
        """Tell everyone."""
        for listener in self.listeners:
            self._call(listener, "on_zone_count", stream_id, zone_id, class_name, count)

    @staticmethod
    def _call(listener: EventListener, method: str, *args: object) -> None:
        try:
            getattr(listener, method)(*args)
        except Exception:
            logger.exception("listener %s.%s failed; continuing", type(listener).__name__, method)

"""Events as JSON Lines: an append-only log of every event message the rules raise.

One line per message, the payload of :meth:`streamseg.rules.Event.to_payload` (validated by the
shipped ``event.schema.json``). Each line is flushed as it is written, so a crash loses at most
the line being written. It is the simplest consumer of events for operators without a broker,
and what the end-to-end tests read back.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from streamseg.rules.events import Event

logger = logging.getLogger(__name__)


class EventLog:
    """An :class:`~streamseg.rules.EventListener` that appends every event to a JSONL file.

    Thread-safe: every stream's analytics thread may call it. Rule states and zone counts are
    not logged (they are state, not events; MQTT carries them as retained topics).

    Args:
        path: output file; parent folders are created; an existing file is appended to.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self.written = 0

    def on_event(self, event: Event) -> None:
        """Append one event message."""
        line = event.to_json() + "\n"
        with self._lock:
            if self._fh.closed:
                logger.error(
                    "event log %s is closed; event %s not logged", self.path, event.event_id
                )
                return
            self._fh.write(line)
            self._fh.flush()
            self.written += 1

    def on_rule_state(self, stream_id: str, rule_id: str, active: bool) -> None:
        """Not logged."""

    def on_zone_count(self, stream_id: str, zone_id: str, class_name: str, count: int) -> None:
        """Not logged."""

    def close(self) -> None:
        """Close the file (idempotent)."""
        with self._lock:
            self._fh.close()

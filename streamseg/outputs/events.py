"""Events as JSON Lines: an append-only log of every event message the rules raise.

One line per message, the payload of :meth:`streamseg.rules.Event.to_payload` (validated by the
shipped ``event.schema.json``). Each line is flushed as it is written, so a crash loses at most
the line being written. It is the simplest consumer of events for operators without a broker,
and what the end-to-end tests read back.

A run that died (SIGKILL, a crash, a power loss) leaves its open occurrences with a ``start``
and no ``end``, and possibly a last line cut short. The next run with the same file reads it
through once when it opens it: a cut line is ended with a newline (so the next line is whole),
and each occurrence left open gets its ``end`` (``details.reason: interrupted``, see
:mod:`streamseg.outputs.interrupted`) before the run's own events, dated when the file was last
written: the dead run still held the occurrence open then (its end would be in the file). While
any occurrence is open, the run touches the file's modification time every
:data:`SEEN_INTERVAL_S`, so that date is within that interval of its death even when no event
came for a while (an ``inside`` occurrence sends an update only every ``update_interval_s``).
The file's time is the only clock it has: a copy that does not keep it (``cp`` without ``-p``, a
restore from a backup) or a ``touch`` before the next run dates those ends then.

So that a live run's occurrences are never taken for a dead one's, a run holds an exclusive
lock on the file while it writes it: a second pipeline pointed at the same file fails at once.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from streamseg.outputs.interrupted import interrupted_end, payload_json
from streamseg.rules.events import Event

logger = logging.getLogger(__name__)

SEEN_INTERVAL_S = 2.0
"""How often a run touches the log's modification time while an occurrence is open."""


class EventLog:
    """An :class:`~streamseg.rules.EventListener` that appends every event to a JSONL file.

    Thread-safe: every stream's analytics thread may call it. Rule states and zone counts are
    not logged (they are state, not events; MQTT carries them as retained topics).

    Args:
        path: output file; parent folders are created; an existing file is appended to, after
            the ends of the occurrences a run that died left open in it (module docstring).
        seen_interval_s: how often the file's modification time is touched while an
            occurrence is open.

    Attributes:
        interrupted: the ``end`` payloads written at open for occurrences left open.

    Raises:
        OSError: the file cannot be opened, or another process writes it (its lock is held).
    """

    def __init__(self, path: str | Path, seen_interval_s: float = SEEN_INTERVAL_S) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", encoding="utf-8")
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.close()
            raise OSError(
                f"event log {self.path} is written by another running streamseg (it holds the "
                "file's lock); give each running pipeline its own outputs.events.path"
            ) from None
        self._lock = threading.Lock()
        self.written = 0
        self._open: set[str] = set()
        """Event ids of this run's occurrences with no ``end`` yet."""
        try:
            self.interrupted = self._end_interrupted()
        except BaseException:
            self._fh.close()
            raise
        self._seen_interval_s = seen_interval_s
        self._stop = threading.Event()
        self._toucher = threading.Thread(
            target=self._touch_while_open, name="event-log-open-occurrences", daemon=True
        )
        self._toucher.start()

    def _touch_while_open(self) -> None:
        """Touch the file's modification time every ``seen_interval_s`` while an occurrence
        of this run is open (module docstring); a failure is logged once."""
        failing = False
        while not self._stop.wait(self._seen_interval_s):
            with self._lock:
                if self._fh.closed or not self._open:
                    continue
                try:
                    os.utime(self._fh.fileno())
                except OSError:
                    if not failing:
                        logger.warning(
                            "event log %s: cannot touch its modification time; if this run "
                            "dies, the ends of its open occurrences are dated at its last line",
                            self.path,
                            exc_info=True,
                        )
                    failing = True
                else:
                    failing = False

    def _end_interrupted(self) -> list[dict[str, Any]]:
        """End a cut last line, and the occurrences left open (module docstring)."""
        left: dict[str, dict[str, Any]] = {}
        last = b"\n"
        written_at = self.path.stat().st_mtime
        with self.path.open("rb") as lines:
            for line in lines:
                last = line[-1:]
                try:
                    payload = json.loads(line)
                except ValueError:
                    continue
                event_id = payload.get("event_id") if isinstance(payload, dict) else None
                if not isinstance(event_id, str):
                    continue
                if payload.get("type") == "end":
                    left.pop(event_id, None)
                else:
                    left[event_id] = payload
        if last != b"\n":
            logger.warning(
                "event log %s: its last line was cut short (streamseg died while writing it); "
                "it stays as it is, on a line of its own",
                self.path,
            )
            self._fh.write("\n")
        ended = []
        for latest in left.values():
            try:
                ended.append(interrupted_end(latest, written_at))
            except ValueError as exc:
                logger.warning(
                    "event log %s: occurrence %s was left open by an earlier run, and its latest "
                    "line cannot be ended (%s)",
                    self.path,
                    latest.get("event_id"),
                    exc,
                )
        for end in ended:
            self._fh.write(payload_json(end) + "\n")
        self._fh.flush()
        if ended:
            logger.warning(
                "event log %s: an earlier run left %d occurrence(s) without an end (it was "
                "killed, crashed or lost power); each gets an end with details.reason "
                "'interrupted'",
                self.path,
                len(ended),
            )
        return ended

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
            if event.type == "end":
                self._open.discard(event.event_id)
            else:
                self._open.add(event.event_id)

    def on_rule_state(self, stream_id: str, rule_id: str, active: bool) -> None:
        """Not logged."""

    def on_zone_count(self, stream_id: str, zone_id: str, class_name: str, count: int) -> None:
        """Not logged."""

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._stop.set()
        with self._lock:
            self._fh.close()

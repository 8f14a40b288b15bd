"""Events: what the rule engine raises and every event output (MQTT, files, recorder) receives.

An event has a lifecycle: one ``start`` when a rule becomes active for an object (or a zone),
any number of ``update`` while it stays active (new track ids, a snapshot or clip path, a
periodic refresh), and one ``end``. All messages of one occurrence share ``event_id`` (a UUID4
string); with ``type`` it identifies a message, so consumers deduplicate on
``(event_id, type, seq)`` (delivery is at-least-once).

The payload schema ships with the package: :func:`event_schema` (``event.schema.json``).

Times: ``started_at`` / ``ended_at`` are wall-clock UNIX seconds (UTC) of the frames that began
and ended the occurrence; ``frame_pts`` is the stream timestamp (seconds) of the frame that
produced this message, ``started_pts`` that of the first frame of the occurrence.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any, Literal, Protocol

logger = logging.getLogger(__name__)

EventType = Literal["start", "update", "end"]
Severity = Literal["info", "warning", "critical"]

SCHEMA_VERSION = 1
"""Version of the payload layout; bumped on any incompatible change."""


def new_event_id() -> str:
    """A fresh event id (UUID4, canonical lower-case string)."""
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Event:
    """One message of an event occurrence.

    Attributes:
        event_id: UUID4 string shared by the ``start``/``update``/``end`` of one occurrence.
        type: ``start``, ``update`` or ``end``.
        seq: 0 for ``start``, then 1, 2, ... for each later message of the occurrence.
        rule_id: the rule's id from the pipeline file.
        rule_kind: ``inside``, ``enter``, ``exit``, ``dwell``, ``cross``, ``count``, ``near``.
        stream_id: the source the frame came from.
        zone_id: the zone or line the rule watches, or ``None`` (``near`` has none).
        track_ids: tracks involved (sorted); empty for zone-level rules such as ``count``.
        class_names: class of each entry of ``track_ids`` (same order), or the classes counted.
        severity: ``info``, ``warning`` or ``critical`` (from the rule).
        started_at: wall-clock UNIX seconds of the occurrence's first frame.
        ended_at: wall-clock UNIX seconds of its last frame; ``None`` until ``end``.
        started_pts: stream seconds of the occurrence's first frame.
        frame_pts: stream seconds of the frame that produced this message.
        frame_index: index of that frame in its stream.
        details: rule-specific figures, JSON-compatible (``overlap``, ``distance_px``,
            ``distance_m``, ``count``, ``direction``, ``dwell_s`` ...).
        snapshot: path of a JPEG of the event frame, when recorded.
        clip: path of the event clip, when recorded.
    """

    event_id: str
    type: EventType
    rule_id: str
    rule_kind: str
    stream_id: str
    started_at: float
    started_pts: float
    frame_pts: float
    frame_index: int
    seq: int = 0
    zone_id: str | None = None
    track_ids: tuple[int, ...] = ()
    class_names: tuple[str, ...] = ()
    severity: Severity = "warning"
    ended_at: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    snapshot: str | None = None
    clip: str | None = None

    def to_payload(self) -> dict[str, Any]:
        """The JSON-compatible payload (see ``event.schema.json``)."""
        payload = asdict(self)
        payload["track_ids"] = list(self.track_ids)
        payload["class_names"] = list(self.class_names)
        payload["schema_version"] = SCHEMA_VERSION
        return payload

    def to_json(self) -> str:
        """The payload as compact JSON text (what MQTT publishes)."""
        return json.dumps(self.to_payload(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Event:
        """Rebuild an event from :meth:`to_payload` output (e.g. read back from the outbox)."""
        data = dict(payload)
        data.pop("schema_version", None)
        data["track_ids"] = tuple(data.get("track_ids", ()))
        data["class_names"] = tuple(data.get("class_names", ()))
        return cls(**data)

    def with_paths(self, snapshot: str | None = None, clip: str | None = None) -> Event:
        """A copy with the snapshot and/or clip path set (the others kept)."""
        return replace(
            self,
            snapshot=snapshot if snapshot is not None else self.snapshot,
            clip=clip if clip is not None else self.clip,
        )


class EventListener(Protocol):
    """Receives what the rule engine decides, per stream, in frame order.

    Implementations (the MQTT publisher, a JSON Lines event log, the recorder) must be
    thread-safe: every stream's analytics thread calls them. They must not block for long: a
    publisher hands events to its durable outbox and returns.
    """

    def on_event(self, event: Event) -> None:
        """An event message (``start``, ``update`` or ``end``)."""
        ...

    def on_rule_state(self, stream_id: str, rule_id: str, active: bool) -> None:
        """A rule turned active (any occurrence open) or inactive on a stream."""
        ...

    def on_zone_count(self, stream_id: str, zone_id: str, class_name: str, count: int) -> None:
        """The number of objects of a class in a zone changed."""
        ...


@cache
def event_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of an event payload, shipped with the package."""
    text = resources.files("streamseg.rules").joinpath("event.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema

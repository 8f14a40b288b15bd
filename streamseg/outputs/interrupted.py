"""The ``end`` of an occurrence a run that died left open, built from its latest message.

A clean stop ends every open occurrence (``details.reason: stream_end``). A run killed by
SIGKILL, a crash or a power loss ends none: a consumer that opened an incident on ``start``
would wait for its ``end`` forever, and the next run knows nothing of it (its rules start
afresh). The outputs that keep events on disk end them at the next start: the MQTT outbox
(:mod:`streamseg.outputs.mqtt.recovery`) and the event log (:mod:`streamseg.outputs.events`).
The end (:func:`interrupted_end`):

- ``details.reason`` is ``interrupted``, and the other details are the latest message's;
- ``seq`` follows the latest message's, so consumers deduplicating on
  ``(event_id, type, seq)`` take it;
- ``frame_pts`` is the latest message's, and ``ended_at`` the last moment the dead run is
  known to have held the occurrence open: the outbox dates it every few seconds while the run
  goes on (:meth:`~streamseg.outputs.mqtt.outbox.Outbox.touch_open`), the event log touches
  its file's modification time. That is within seconds of the death, even for an ``inside``
  occurrence that sends an update only every ``update_interval_s``.

An occurrence is left open by a run that died, and also by one that could not store an ``end``
(larger than ``max_payload_bytes``, the outbox full or its disk failing, an analytics thread
that outlived the stop): its end comes late, but it comes.

It works on payloads (JSON), not on :class:`streamseg.rules.events.Event`, so the MQTT output
does not load the rule engine.
"""

from __future__ import annotations

import json
from typing import Any

INTERRUPTED = "interrupted"
"""``details.reason`` of an ``end`` sent for an occurrence a run that died left open."""

_MESSAGE_ONLY_DETAILS = ("hidden", "last_seen_pts", "other_last_seen_pts")
"""Details that describe the frame of one ``update`` rather than the occurrence."""


def interrupted_end(latest: dict[str, Any], ended_at: float) -> dict[str, Any]:
    """The ``end`` payload of an occurrence whose latest message is ``latest``, dated
    ``ended_at`` (wall-clock UNIX seconds; not before the occurrence's ``started_at``); see
    the module docstring.

    Raises:
        ValueError: ``latest`` is already an ``end``, or lacks a field an end needs (the
            message names it).
    """
    if latest.get("type") == "end":
        raise ValueError("the occurrence's latest message is already its end")
    started_at = _number(latest, "started_at")
    _number(latest, "frame_pts")
    seq = int(_number(latest, "seq"))
    given = latest.get("details")
    details = {
        key: value
        for key, value in (given.items() if isinstance(given, dict) else ())
        if key not in _MESSAGE_ONLY_DETAILS
    }
    details["reason"] = INTERRUPTED
    return {
        **latest,
        "type": "end",
        "seq": seq + 1,
        "ended_at": max(started_at, ended_at),
        "details": details,
    }


def minimal_end(end: dict[str, Any]) -> dict[str, Any]:
    """``end`` with only ``details.reason`` and no snapshot or clip path: for an end too large
    to send whole (its latest message was near ``max_payload_bytes``)."""
    return {**end, "details": {"reason": INTERRUPTED}, "snapshot": None, "clip": None}


def _number(payload: dict[str, Any], key: str) -> float:
    value = payload.get(key)
    if key not in payload:
        raise ValueError(f"the latest message has no {key!r}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"the latest message's {key!r} is not a number: {value!r}")
    return float(value)


def payload_json(payload: dict[str, Any]) -> str:
    """A payload as compact JSON text, keys sorted, as :meth:`Event.to_json` writes it."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True)

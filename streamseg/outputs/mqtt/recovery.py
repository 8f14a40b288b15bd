"""Ending the occurrences a run that died left open.

A clean stop ends every open occurrence (``details.reason: stream_end``). A run killed by
SIGKILL, a crash or a power loss ends none: a consumer that opened an incident on ``start``
would wait for its ``end`` forever, and the next run knows nothing of it (its rules start
afresh). The outbox keeps each open occurrence's latest message in the same transaction as the
message (:meth:`Outbox.open_occurrences`); when the publisher starts, before the new run's
events, :func:`end_interrupted` stores an ``end`` for each one it finds there:

- ``details.reason`` is ``interrupted``, and the other details are the latest message's;
- ``seq`` follows the latest message's, so consumers deduplicating on
  ``(event_id, type, seq)`` take it;
- ``ended_at`` and ``frame_pts`` are those of the latest message's frame: the last moment
  the occurrence is known to have held (the run may have seen it hold longer before it died).

It works on payloads (JSON), not on :class:`streamseg.rules.events.Event`, so the MQTT output
does not load the rule engine.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from streamseg.outputs.mqtt.outbox import Outbox, OutboxFullError

logger = logging.getLogger(__name__)

INTERRUPTED = "interrupted"
"""``details.reason`` of an ``end`` sent for an occurrence a run that died left open."""

_MESSAGE_ONLY_DETAILS = ("hidden", "last_seen_pts", "other_last_seen_pts")
"""Details that describe the frame of one ``update`` rather than the occurrence."""


def interrupted_end(latest: dict[str, Any]) -> dict[str, Any]:
    """The ``end`` payload of an occurrence whose latest message is ``latest`` (see the module
    docstring).

    Raises:
        ValueError: ``latest`` is already an ``end``, or lacks a field an end needs (the
            message names it).
    """
    if latest.get("type") == "end":
        raise ValueError("the occurrence's latest message is already its end")
    try:
        started_at = float(latest["started_at"])
        frame_pts = float(latest["frame_pts"])
        started_pts = float(latest["started_pts"])
        seq = int(latest["seq"])
    except KeyError as exc:
        raise ValueError(f"the latest message has no {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the latest message has a field of the wrong type ({exc})") from None
    details = {
        key: value
        for key, value in dict(latest.get("details") or {}).items()
        if key not in _MESSAGE_ONLY_DETAILS
    }
    details["reason"] = INTERRUPTED
    return {
        **latest,
        "type": "end",
        "seq": seq + 1,
        # The wall time of the latest message's frame: the stream's clock runs with the wall
        # clock from the occurrence's first frame.
        "ended_at": started_at + max(0.0, frame_pts - started_pts),
        "details": details,
    }


def end_interrupted(outbox: Outbox) -> list[dict[str, Any]]:
    """Store an ``end`` for every occurrence the outbox holds open (call before the run stores
    anything); return the payloads stored.

    An occurrence whose latest message cannot be read back is dropped from the open ones with a
    warning. When the outbox is full, the rest stay open for the next start (an error says so).
    """
    ended: list[dict[str, Any]] = []
    for occurrence in outbox.open_occurrences():
        try:
            latest = json.loads(occurrence.payload)
            if not isinstance(latest, dict):
                raise ValueError("not a JSON object")
            end = interrupted_end(latest)
        except ValueError as exc:
            logger.warning(
                "MQTT: outbox %s: occurrence %s was left open by an earlier run, and its latest "
                "message cannot be read back (%s); no end is sent for it",
                outbox.path,
                occurrence.event_id,
                exc,
            )
            outbox.forget_occurrence(occurrence.event_id)
            continue
        payload = json.dumps(end, separators=(",", ":"), sort_keys=True).encode("utf-8")
        try:
            outbox.add(
                occurrence.topic, payload, occurrence.qos, occurrence=occurrence.event_id, ends=True
            )
        except OutboxFullError as exc:
            logger.error(
                "MQTT: outbox %s is full (%d events wait): the ends of occurrences an earlier run "
                "left open are sent at a later start",
                outbox.path,
                exc.depth,
            )
            break
        ended.append(end)
    if ended:
        logger.warning(
            "MQTT: an earlier run stopped without ending %d occurrence(s) (killed, crashed or "
            "powered off); each gets an end with details.reason 'interrupted': %s",
            len(ended),
            ", ".join(
                f"{end.get('rule_id')} on {end.get('stream_id')} ({end.get('event_id')})"
                for end in ended
            ),
        )
    return ended

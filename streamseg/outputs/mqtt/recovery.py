"""Ending, at start, the occurrences an earlier run left open in the MQTT outbox.

The outbox keeps each open occurrence's latest message, and when it was stored, in the same
transaction as the message (:meth:`Outbox.open_occurrences`), and the publisher dates them
"still open" every :data:`~streamseg.outputs.mqtt.publisher.OPEN_OCCURRENCES_SEEN_S` while the
run goes on (:meth:`Outbox.touch_open`). When the publisher starts, before the new run's events,
:func:`end_interrupted` stores for each one it finds there the ``end`` that
:func:`streamseg.outputs.interrupted.interrupted_end` builds (``details.reason: interrupted``),
dated when the run that died last saw it open (``seen_at``): within that interval of its death.

The ends go to this run's events topic at this run's QoS, not to the topic the occurrence
started on: they are this run's messages, and a topic an earlier configuration used may no
longer be one the broker lets this client write (its ACL follows the current prefix); an end
refused there would hold back every event behind it. An end larger than ``max_payload_bytes``
(its latest message was near the limit) goes out with ``details.reason`` alone.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from streamseg.outputs.interrupted import interrupted_end, minimal_end, payload_json
from streamseg.outputs.mqtt.outbox import OpenOccurrence, Outbox, OutboxFullError

logger = logging.getLogger(__name__)


def end_interrupted(
    outbox: Outbox, topic: str, qos: int, max_payload_bytes: int
) -> list[dict[str, Any]]:
    """Store an ``end`` on ``topic`` at ``qos`` for every occurrence the outbox holds open
    (call before the run stores anything); return the payloads stored.

    An occurrence whose latest message cannot be read back, or whose end cannot be made small
    enough, is dropped from the open ones with a warning. When the outbox is full, the rest stay
    open for the next start (an error says so).

    Raises:
        sqlite3.Error: the outbox's database failed (the caller logs it and goes on).
    """
    ended: list[dict[str, Any]] = []
    for occurrence in outbox.open_occurrences():
        made = _end_payload(outbox, occurrence, max_payload_bytes)
        if made is None:
            outbox.forget_occurrence(occurrence.event_id)
            continue
        end, payload = made
        try:
            outbox.add(topic, payload, qos, occurrence=occurrence.event_id, ends=True)
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
            "MQTT: an earlier run left %d occurrence(s) without an end (it was killed, crashed, "
            "lost power, or could not store the end); each gets an end with details.reason "
            "'interrupted' on %s: %s",
            len(ended),
            topic,
            ", ".join(
                f"{end.get('rule_id')} on {end.get('stream_id')} ({end.get('event_id')})"
                for end in ended
            ),
        )
    return ended


def _end_payload(
    outbox: Outbox, occurrence: OpenOccurrence, max_payload_bytes: int
) -> tuple[dict[str, Any], bytes] | None:
    """The end of ``occurrence`` and its bytes to store, or None (logged) when there can be
    none."""
    try:
        latest = json.loads(occurrence.payload)
        if not isinstance(latest, dict):
            raise ValueError("not a JSON object")
        end = interrupted_end(latest, occurrence.seen_at)
    except ValueError as exc:
        logger.warning(
            "MQTT: outbox %s: occurrence %s was left open by an earlier run, and its latest "
            "message cannot be read back (%s); no end is sent for it",
            outbox.path,
            occurrence.event_id,
            exc,
        )
        return None
    for candidate in (end, minimal_end(end)):
        payload = payload_json(candidate).encode("utf-8")
        if len(payload) <= max_payload_bytes:
            return candidate, payload
    logger.error(
        "MQTT: outbox %s: the end of occurrence %s (left open by an earlier run) is over "
        "outputs.mqtt.max_payload_bytes (%d) even without its details; it is not sent",
        outbox.path,
        occurrence.event_id,
        max_payload_bytes,
    )
    return None

"""Ending, at start, the occurrences a run that died left open in the MQTT outbox.

The outbox keeps each open occurrence's latest message in the same transaction as the message
(:meth:`Outbox.open_occurrences`). When the publisher starts, before the new run's events,
:func:`end_interrupted` stores for each one it finds there the ``end`` that
:func:`streamseg.outputs.interrupted.interrupted_end` builds (``details.reason:
interrupted``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from streamseg.outputs.interrupted import interrupted_end, payload_json
from streamseg.outputs.mqtt.outbox import Outbox, OutboxFullError

logger = logging.getLogger(__name__)


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
        payload = payload_json(end).encode("utf-8")
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

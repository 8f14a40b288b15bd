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
- ``ended_at`` and ``frame_pts`` are those of the latest message's frame: the last moment
  the occurrence is known to have held (the run may have seen it hold longer before it died).

It works on payloads (JSON), not on :class:`streamseg.rules.events.Event`, so the MQTT output
does not load the rule engine.
"""

from __future__ import annotations

import json
import logging
from typing import Any

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


def payload_json(payload: dict[str, Any]) -> str:
    """A payload as compact JSON text, keys sorted, as :meth:`Event.to_json` writes it."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True)

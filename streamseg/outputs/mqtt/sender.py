"""The sender thread of the MQTT publisher: the outbox's events out to the broker, in order.

:class:`OutboxSender` owns the in-flight map ``mid -> outbox row`` (memory only) and is the only
thread that reads or writes it. It publishes outbox rows in order, at most ``max_inflight``
unacknowledged at a time, and deletes a row when its PUBACK (PUBCOMP at QoS 2) arrives. On every
(re)connect it forgets the map and sends every row left in the outbox again, from the oldest: an
event is delivered at least once, possibly twice around a reconnect, never zero times.

The other threads only post to its inbox (:meth:`OutboxSender.work`, :meth:`~OutboxSender.acked`,
:meth:`~OutboxSender.connected`, ...) and never wait on it: paho's ``on_publish`` runs under
paho's message lock and must take no lock. Each message is handled under its own ``try``: a
failure is logged and the thread goes on (it is the only one that sends events).

Undeliverable events: a row over ``max_payload_bytes`` (stored by a run with a higher limit) is
never sent. For a broker with a lower limit than configured, the sender sets aside what it
cannot deliver: when :data:`QUARANTINE_AFTER` connections in a row are closed with the same
oldest event sent and not acknowledged, that event moves to the outbox's quarantine file
(``<outbox>.quarantine.jsonl``, logged at ERROR, counted) and the events behind it go out.

A broker closes the connection over such a packet as soon as it reads it. A connection that
went silent says nothing about the events in flight and counts against none: one the client gave
up on its keepalive (a hung broker, a dead link), and one the broker closed ``keepalive_s`` or
more after the event went out (a broker closes a client it has not heard from for 1.5 x
keepalive: the link lost what the client sent).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from streamseg.config.mqtt import MqttOutputConfig
from streamseg.outputs.mqtt.metrics import MqttMetrics
from streamseg.outputs.mqtt.outbox import Outbox, OutboxRow

logger = logging.getLogger(__name__)

QUARANTINE_AFTER = 3
"""Connections in a row that end with the same oldest event sent and not acknowledged before the
sender moves that event to the outbox's quarantine file. A broker disconnects a client that sends
a message it will not take (over its maximum packet size); left at the head of the outbox, that
message would be sent first after every reconnect and hold back every event behind it. After the
first such connection the suspect is sent alone, so an event sent with it is never blamed."""

# Messages of the inbox.
_ACK: Final = "ack"
_CONNECTED: Final = "connected"
_DISCONNECTED: Final = "disconnected"
_WORK: Final = "work"
_CALL: Final = "call"
_STOP: Final = "stop"


@dataclass
class _SenderState:
    """What the sender thread knows; only that thread reads or writes it.

    Attributes:
        inflight: paho mid -> (outbox row id, when it was handed to paho (monotonic)), sent on
            this connection and not acknowledged.
        cursor: highest row id handed to paho on this connection.
        connected: a connection is up (as far as the sender has heard).
        suspect: row id that was the oldest sent and unacknowledged when the last
            ``strikes`` connections ended (0: none); sent alone until acknowledged.
        strikes: connections in a row that ended with ``suspect`` unacknowledged.
    """

    inflight: dict[int, tuple[int, float]] = field(default_factory=dict)
    cursor: int = 0
    connected: bool = False
    suspect: int = 0
    strikes: int = 0


class OutboxSender:
    """Sends the outbox's rows through a paho client, on a thread of its own.

    Args:
        client: the publisher's paho client (connected and reconnected by paho's own thread).
        outbox: the durable store; rows are deleted once the broker acknowledges them.
        config: the ``outputs.mqtt`` section (``max_inflight``, ``max_payload_bytes``).
        metrics: the publisher's metrics (acknowledged and quarantined events).
        shrunk: called on this thread after rows left the outbox (acknowledged or set aside).
        closing: whether the publisher is closing (a connection it ends counts against no row).
    """

    def __init__(
        self,
        client: mqtt.Client,
        outbox: Outbox,
        config: MqttOutputConfig,
        metrics: MqttMetrics,
        *,
        shrunk: Callable[[], None],
        closing: Callable[[], bool],
    ) -> None:
        self._client = client
        self._outbox = outbox
        self._config = config
        self._metrics = metrics
        self._shrunk = shrunk
        self._closing = closing
        self._inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ other threads

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is not None:
            raise RuntimeError("the MQTT sender was already started")
        self._thread = threading.Thread(target=self._run, name="mqtt-sender", daemon=True)
        self._thread.start()

    def work(self) -> None:
        """Rows were added to the outbox: send them if connected."""
        self._inbox.put((_WORK,))

    def acked(self, mid: int) -> None:
        """The broker acknowledged message ``mid`` (from paho's ``on_publish``: takes no lock)."""
        self._inbox.put((_ACK, mid))

    def connected(self) -> None:
        """A connection is up: every row left in the outbox is sent again, from the oldest."""
        self._inbox.put((_CONNECTED,))

    def disconnected(self, established: bool, timed_out: bool = False) -> None:
        """The connection ended.

        Args:
            established: it had been up (not a refused attempt).
            timed_out: the client gave it up after its keepalive went unanswered (the broker or
                the link went silent) rather than seeing it closed.
        """
        self._inbox.put((_DISCONNECTED, established, timed_out))

    def call(self, function: Callable[..., None], *args: Any) -> None:
        """Run ``function(*args)`` on the sender's thread (file reads kept off the callers)."""
        self._inbox.put((_CALL, function, args))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after the messages already posted; wait up to ``timeout`` s."""
        if self._thread is None:
            return
        self._inbox.put((_STOP,))
        self._thread.join(timeout=timeout)

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        state = _SenderState()
        while True:
            messages = [self._inbox.get()]
            while True:
                try:
                    messages.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            acked: list[int] = []
            stop = False
            for message in messages:
                if message[0] == _STOP:
                    stop = True
                    continue
                # One message's failure (a bug, a snapshot paho refuses) must not end the only
                # thread that sends events: log it and go on with the next.
                try:
                    self._handle(message, state, acked)
                except Exception:
                    logger.exception(
                        "MQTT: the sender failed on a %r message; it goes on", message[0]
                    )
            if acked:
                self._ack(acked)
            if stop:
                return
            if state.connected:
                try:
                    self._fill(state)
                except Exception:
                    # Keep the thread alive: the rows stay in the outbox for the next attempt.
                    logger.exception("MQTT: sending from the outbox failed")

    def _handle(self, message: tuple[Any, ...], state: _SenderState, acked: list[int]) -> None:
        """Apply one inbox message to the sender's state; acknowledged row ids go to ``acked``."""
        kind = message[0]
        if kind == _ACK:
            sent = state.inflight.pop(message[1], None)
            if sent is not None:
                row_id = sent[0]
                acked.append(row_id)
                if row_id == state.suspect:
                    state.suspect, state.strikes = 0, 0
        elif kind == _CONNECTED:
            state.inflight.clear()
            state.cursor = 0
            state.connected = True
        elif kind == _DISCONNECTED:
            state.connected = False
            # paho also reports a connection that never got its CONNACK (a refused login, a load
            # balancer with no broker behind it closing at once): only one that was established
            # can have dropped the rows in flight, so only that one counts against them. A broker
            # refusing a packet closes the connection; one that went silent until the keepalive
            # ran out (hung, or a dead link) refused nothing.
            if message[1] and not message[2]:
                self._strike(state)
        elif kind == _CALL:
            message[1](*message[2])

    def _strike(self, state: _SenderState) -> None:
        """A connection ended: count it against the oldest row it left unacknowledged.

        After :data:`QUARANTINE_AFTER` connections in a row that were closed with the same row
        unacknowledged, that row goes to the quarantine file (see the module docstring).
        """
        if self._closing() or not state.inflight:
            return
        oldest, sent_at = min(state.inflight.values())
        if time.monotonic() - sent_at >= self._config.keepalive_s:
            return  # closed long after it went out: the broker did not hear it (module docstring)
        if oldest == state.suspect:
            state.strikes += 1
        else:
            state.suspect, state.strikes = oldest, 1
        if state.strikes < QUARANTINE_AFTER:
            return
        suspect, state.suspect, state.strikes = state.suspect, 0, 0
        rows = self._outbox.pending(after=suspect - 1, limit=1)
        if rows and rows[0].row_id == suspect:
            self._quarantine(
                rows[0],
                f"the broker dropped the connection {QUARANTINE_AFTER} times in a row while it "
                "was sent and not acknowledged (over the broker's maximum packet size?)",
                "disconnects",
            )

    def _fill(self, state: _SenderState) -> None:
        """Hand outbox rows after ``state.cursor`` to paho until the window is full.

        The window is ``max_inflight`` rows, or one while a suspect row waits for its
        acknowledgement. A row over ``max_payload_bytes`` (stored by a run with a higher limit)
        is moved to the quarantine file instead of being sent.
        """
        limit = self._config.max_payload_bytes
        while True:
            window = 1 if state.suspect else self._config.max_inflight
            room = window - len(state.inflight)
            rows = self._outbox.pending(after=state.cursor, limit=room) if room > 0 else []
            if not rows:
                return
            for row in rows:
                if len(row.payload) > limit:
                    reason = (
                        f"{len(row.payload)} bytes, over outputs.mqtt.max_payload_bytes ({limit})"
                    )
                    self._quarantine(row, reason, "too_large")
                    state.cursor = row.row_id
                    continue
                info = self._client.publish(row.topic, row.payload, qos=row.qos)
                if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    # Lost the connection meanwhile: the next CONNECTED resends from the oldest.
                    state.connected = False
                    return
                state.inflight[info.mid] = (row.row_id, time.monotonic())
                state.cursor = row.row_id

    def _quarantine(self, row: OutboxRow, reason: str, label: str) -> None:
        """Move a row the broker will not take to the outbox's quarantine file, loudly."""
        try:
            moved = self._outbox.quarantine(row, reason)
        except OSError as exc:
            logger.error(
                "MQTT: cannot set aside %s in %s (%s); it stays at the head of the outbox: %s",
                describe(row.payload),
                self._outbox.quarantine_path,
                exc,
                reason,
            )
            return
        if not moved:  # acknowledged meanwhile
            return
        self._metrics.events_quarantined.labels(reason=label).inc()
        logger.error(
            "MQTT: %s (%d bytes) moved from the outbox to %s, not sent: %s; the events behind "
            "it go on",
            describe(row.payload),
            len(row.payload),
            self._outbox.quarantine_path,
            reason,
        )
        self._shrunk()

    def _ack(self, row_ids: list[int]) -> None:
        try:
            deleted = self._outbox.ack(row_ids)
        except Exception:
            logger.exception("MQTT: could not delete acknowledged events from the outbox")
            return
        self._metrics.events_acked.inc(deleted)
        self._shrunk()


def describe(payload: bytes) -> str:
    """``event <id> (<rule> <type> on <stream>)`` from an event payload, for log lines."""
    try:
        fields = json.loads(payload)
        return (
            f"event {fields['event_id']} ({fields['rule_id']} {fields['type']} on "
            f"{fields['stream_id']})"
        )
    except (ValueError, TypeError, KeyError):
        return "a message that is not an event"

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

Refused events (MQTT 5): a broker may acknowledge an event with a refusal (a reason code of
0x80 or more: ``Not authorized`` when its ACL does not let this client write the events topic,
``Quota exceeded``, ...). Such an event is not delivered, so it stays in the outbox: the refusal
is logged at ERROR (once per reason, until an event gets through), counted in
``streamseg_mqtt_events_rejected_total{reason}``, and the oldest refused event is sent again, alone,
every :data:`REFUSED_RETRY_S` until the broker takes it (the ACL fixed); then the rest follow.
Only ``Payload format invalid``, a fault of that one message, moves it to the quarantine file.
With MQTT 3.1.1 the acknowledgement carries no verdict: a broker that drops an event it refuses
acknowledges it all the same, and it leaves the outbox as delivered.

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

REFUSED_RETRY_S = 10.0
"""Seconds between attempts to send again the oldest event the broker refused (MQTT 5)."""

PAYLOAD_FORMAT_INVALID = 0x99
"""The MQTT 5 reason code that faults the message itself: it is quarantined, not retried."""

NOT_AUTHORIZED = 0x87
"""The MQTT 5 reason code of a publish the broker's ACL does not allow."""

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
        receive_maximum: the broker's Receive Maximum (MQTT 5 CONNACK): it takes no more
            unacknowledged messages than this (0: not given).
        maximum_packet: the broker's Maximum Packet Size (MQTT 5 CONNACK), bytes; it closes the
            connection of a client that sends a larger packet (0: not given).
        refused: the reason of the last refusal, while no event has got through since (sent
            one at a time then); ``None``: none.
        resume_at: monotonic time before which nothing is sent, after a refusal.
    """

    inflight: dict[int, tuple[int, float]] = field(default_factory=dict)
    cursor: int = 0
    connected: bool = False
    suspect: int = 0
    strikes: int = 0
    receive_maximum: int = 0
    maximum_packet: int = 0
    refused: str | None = None
    resume_at: float = 0.0


class OutboxSender:
    """Sends the outbox's rows through a paho client, on a thread of its own.

    Args:
        client: the publisher's paho client (connected and reconnected by paho's own thread).
        outbox: the durable store; rows are deleted once the broker acknowledges them.
        config: the ``outputs.mqtt`` section (``max_inflight``, ``max_payload_bytes``).
        metrics: the publisher's metrics (acknowledged and quarantined events).
        shrunk: called on this thread after rows left the outbox (acknowledged or set aside).
        closing: whether the publisher is closing (a connection it ends counts against no row).
        other_refused: called on this thread with ``(reason code, name)`` when the broker refuses
            a message that is not an event (a retained state, count, discovery config or clear).
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
        other_refused: Callable[[tuple[int, str]], None] | None = None,
    ) -> None:
        self._client = client
        self._outbox = outbox
        self._config = config
        self._metrics = metrics
        self._shrunk = shrunk
        self._closing = closing
        self._other_refused = other_refused
        self._inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.refusing = threading.Event()
        """Set while the broker refuses events (MQTT 5) and none has got through since:
        waiting for acknowledgements (a closing publisher) is of no use then."""

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

    def acked(self, mid: int, refusal: tuple[int, str] | None = None) -> None:
        """The broker acknowledged message ``mid`` (from paho's ``on_publish``: takes no lock).

        Args:
            mid: paho's message id.
            refusal: ``(reason code, its name)`` when the acknowledgement refuses the message
                (MQTT 5, code 0x80 or more); ``None``: delivered.
        """
        self._inbox.put((_ACK, mid, refusal))

    def connected(self, receive_maximum: int = 0, maximum_packet: int = 0) -> None:
        """A connection is up: every row left in the outbox is sent again, from the oldest.

        Args:
            receive_maximum: the broker's Receive Maximum (MQTT 5), 0 when not given.
            maximum_packet: the broker's Maximum Packet Size in bytes (MQTT 5), 0 when not
                given: a row whose packet would be larger is quarantined, not sent.
        """
        self._inbox.put((_CONNECTED, receive_maximum, maximum_packet))

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
            wait = state.resume_at - time.monotonic() if state.connected else 0.0
            try:
                # After a refusal, wake to send again when the pause is over.
                messages = [self._inbox.get(timeout=wait if wait > 0 else None)]
            except queue.Empty:
                messages = []
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
            if sent is None:
                if message[2] is not None and self._other_refused is not None:
                    self._other_refused(message[2])
                return
            row_id = sent[0]
            if row_id == state.suspect:
                state.suspect, state.strikes = 0, 0
            refusal = message[2]
            if refusal is not None:
                self._refused(row_id, refusal, state)
                return
            acked.append(row_id)
            if state.refused is not None:
                logger.info(
                    "MQTT: the broker takes events again (%d wait in the outbox)",
                    self._outbox.depth,
                )
                state.refused = None
                self.refusing.clear()
        elif kind == _CONNECTED:
            state.inflight.clear()
            state.cursor = 0
            state.connected = True
            state.receive_maximum = int(message[1])
            state.maximum_packet = int(message[2])
            state.resume_at = 0.0
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
        row = self._row(suspect)
        if row is not None:
            self._quarantine(
                row,
                f"the broker dropped the connection {QUARANTINE_AFTER} times in a row while it "
                "was sent and not acknowledged (over the broker's maximum packet size, or its "
                "message_size_limit?)",
                "disconnects",
            )

    def _refused(self, row_id: int, refusal: tuple[int, str], state: _SenderState) -> None:
        """The broker refused row ``row_id`` (MQTT 5): keep it and send it again later, or
        quarantine it when the message itself is at fault (module docstring)."""
        code, name = refusal
        self._metrics.events_rejected.labels(reason=name).inc()
        if code == PAYLOAD_FORMAT_INVALID:
            row = self._row(row_id)
            if row is not None:
                self._quarantine(row, f"the broker refused it: {name}", "rejected")
            return
        # Sent again from this row on (rows behind it still in flight are not sent twice).
        state.cursor = min(state.cursor, row_id - 1)
        state.resume_at = time.monotonic() + REFUSED_RETRY_S
        if not self.refusing.is_set():
            self.refusing.set()
            self._shrunk()  # wakes a closing publisher that waits for acknowledgements
        if state.refused != name:
            state.refused = name
            logger.error(
                "MQTT: the broker refused an event on %s: %s (reason code 0x%02X); it stays in "
                "the outbox (%d events wait) and is sent again every %g s%s",
                self._head_topic(),
                name,
                code,
                self._outbox.depth,
                REFUSED_RETRY_S,
                " (does the broker's ACL let this client write that topic?)"
                if code == NOT_AUTHORIZED
                else "",
            )

    def _row(self, row_id: int) -> OutboxRow | None:
        """Outbox row ``row_id``, or ``None`` once it has left (acknowledged meanwhile)."""
        rows = self._outbox.pending(after=row_id - 1, limit=1)
        return rows[0] if rows and rows[0].row_id == row_id else None

    def _head_topic(self) -> str:
        """The topic of the oldest event waiting (for log lines)."""
        rows = self._outbox.pending(after=0, limit=1)
        return rows[0].topic if rows else "the events topic"

    def _fill(self, state: _SenderState) -> None:
        """Hand outbox rows after ``state.cursor`` to paho until the window is full.

        The window is ``max_inflight`` rows (no more than the broker's Receive Maximum), or one
        while a suspect row waits for its acknowledgement or after a refusal. A row over
        ``max_payload_bytes`` (stored by a run with a higher limit) is moved to the quarantine
        file instead of being sent.
        """
        if time.monotonic() < state.resume_at:
            return
        limit = self._config.max_payload_bytes
        while True:
            window = self._config.max_inflight
            if state.receive_maximum:
                window = min(window, state.receive_maximum)
            if state.suspect or state.refused is not None:
                window = 1
            room = window - len(state.inflight)
            rows = self._outbox.pending(after=state.cursor, limit=room) if room > 0 else []
            if not rows:
                return
            sending = {row_id for row_id, _ in state.inflight.values()}
            for row in rows:
                if row.row_id in sending:
                    state.cursor = row.row_id  # in flight already (sent before a refusal)
                    continue
                reason = None
                size = packet_size(row)
                if len(row.payload) > limit:
                    reason = (
                        f"{len(row.payload)} bytes, over outputs.mqtt.max_payload_bytes ({limit})"
                    )
                elif state.maximum_packet and size > state.maximum_packet:
                    reason = (
                        f"a {size}-byte packet, over the broker's maximum packet size "
                        f"({state.maximum_packet} bytes, from its CONNACK)"
                    )
                if reason is not None:
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


PUBLISH_OVERHEAD_BYTES = 16
"""A PUBLISH packet's bytes besides its topic and payload, at most: fixed header (5), topic length
(2), packet id (2), MQTT 5 properties length (1), with room to spare."""


def packet_size(row: OutboxRow) -> int:
    """The size of the PUBLISH packet that carries ``row``, bytes (an upper bound)."""
    return len(row.topic.encode()) + len(row.payload) + PUBLISH_OVERHEAD_BYTES


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

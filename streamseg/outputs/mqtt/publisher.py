"""The MQTT publisher: events through the durable outbox, retained state topics, a last will.

Threads:

* callers (every stream's analytics thread, the sources' reader threads) call
  :meth:`MqttPublisher.on_event`, :meth:`~MqttPublisher.on_rule_state`,
  :meth:`~MqttPublisher.on_zone_count` and :meth:`~MqttPublisher.on_source_state`. An event is
  committed to the outbox and the call returns; it never waits on the network.
* paho's network thread (``loop_start``) connects, reconnects with back-off, reads and writes.
  Its callbacks post ``connected``, ``disconnected`` and ``acked mid`` to the sender's inbox.
  ``on_publish`` runs under paho's internal message lock, so it takes no lock of ours;
  ``on_connect`` drops what paho still queued from the previous connection and publishes the
  retained values.
* the sender thread (:class:`~streamseg.outputs.mqtt.sender.OutboxSender`) publishes the
  outbox's rows in order, at most ``max_inflight`` unacknowledged at a time, deletes a row when
  the broker acknowledges it, and sends every row left again, from the oldest, after each
  (re)connect: an event is delivered at least once, possibly twice around a reconnect, never
  zero times. Consumers deduplicate on ``(event_id, type, seq)``. It also reads the snapshot
  files.

Retained topics (availability, rule state, zone counts, source status, outbox status) do not go
through the outbox: the latest value of each topic is kept in memory, published at once while
connected and published again after every (re)connect. Snapshots (retained too) come from the
recorder once their file exists (:meth:`MqttPublisher.on_snapshot`) and are sent once: while the
connection is down the newest per topic waits for the next connect, but one already sent is not
sent again after a reconnect. They are the only large messages, and one the broker refuses (over
its maximum packet size: it disconnects the client) must not be sent first on every reconnect.

Message sizes: an event over ``max_payload_bytes`` is refused at :meth:`MqttPublisher.on_event`
(logged, counted as ``too_large``); a snapshot over ``max_snapshot_bytes`` is skipped with a
warning. Both limits should stay under the broker's maximum packet size; an event a broker with
a lower limit keeps refusing is set aside by the sender (:mod:`streamseg.outputs.mqtt.sender`).

With Home Assistant discovery (``home_assistant.enabled``), the retained discovery config of
each rule state and zone count topic is published the same way, just before the topic's first
value and again after every (re)connect (QoS 1, retained; see
:mod:`streamseg.outputs.mqtt.discovery`). The rule states known from the pipeline are announced
on the first connect, before any frame.

Occurrences an earlier run left open (a ``start`` with no ``end``: SIGKILL, a crash, an end it
could not store) get their ``end`` (``details.reason: interrupted``) when the next run's
publisher starts, before its own events (:mod:`streamseg.outputs.mqtt.recovery`). So that such
an end is dated within seconds of the death, a thread dates this run's open occurrences "still
open" in the outbox every :data:`OPEN_OCCURRENCES_SEEN_S` (one small write while any is open,
none otherwise).

The outbox is bounded. When it is full a new event is refused at the door (nothing already
accepted is ever dropped): the refusal is counted (``streamseg_mqtt_events_refused``), logged at
ERROR once per episode, and the retained ``<prefix>/outbox`` topic says ``"full": true`` until
the outbox drains below its low-water mark.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import ssl
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from prometheus_client import CollectorRegistry

from streamseg.config.mqtt import MqttOutputConfig
from streamseg.outputs.mqtt.client import make_client
from streamseg.outputs.mqtt.discovery import DISCOVERY_QOS, DiscoveryMessage, HomeAssistantDiscovery
from streamseg.outputs.mqtt.metrics import MqttMetrics
from streamseg.outputs.mqtt.outbox import Outbox, OutboxFullError
from streamseg.outputs.mqtt.recovery import end_interrupted
from streamseg.outputs.mqtt.sender import PUBLISH_OVERHEAD_BYTES, OutboxSender
from streamseg.outputs.mqtt.stale import OwnedTopics, StaleCleaner
from streamseg.outputs.mqtt.topics import OFFLINE, ONLINE, Topics
from streamseg.types import SourceState

if TYPE_CHECKING:
    # Only for annotations: importing streamseg.rules loads the rule engine and supervision.
    from streamseg.rules.events import Event, EventListener
    from streamseg.sources.base import StateListener

logger = logging.getLogger(__name__)

OPEN_OCCURRENCES_SEEN_S = 2.0
"""How often the run dates its open occurrences "still open" in the outbox
(:meth:`Outbox.touch_open`): the end of one left open by a run that died is dated at most this
long before the death."""

LOW_WATER_FRACTION = 0.9
"""After the outbox was full, it counts as having room again at this fraction of its bound (so
a full outbox that drains one event at a time does not flap between full and not full)."""

OFFLINE_WAIT_S = 0.5

FIRST_CONNECT_WAIT_S = 1.0
"""At close, how long a publisher that never reached the broker in this run waits for a first
connection before it gives up on flushing (the whole ``timeout`` only once it has connected:
a broker that was down all run will not come up in those seconds, and a stop should be prompt)."""
""":meth:`MqttPublisher.close` waits at least this long for the broker to acknowledge
``offline``, even when its flush timeout is spent."""

OUTBOX_STATUS_MIN_S = 1.0
"""Least time between two publishes of the retained outbox status as events come and go (a
change that comes sooner goes out when the interval is over)."""

UNSUPPORTED_PROTOCOL_VERSION = 0x84
"""The CONNACK reason of a broker that does not speak the client's MQTT version (paho reads a
3.1.1 broker's "unacceptable protocol version" as this)."""

SHORT_CONNECTION_S = 3.0
"""A connection the broker closes sooner than this after accepting it is a short one."""

SHORT_CONNECTIONS_CLASH = 3
"""Short connections in a row after which the publisher says why it keeps losing them (another
client with its client id, most likely: mosquitto 2.0 closes the older one without telling it),
once; the lost connections of that episode are logged at DEBUG."""


class MqttPublisher:
    """Publishes events (QoS 1/2, durable) and retained state to an MQTT broker.

    Implements :class:`streamseg.rules.events.EventListener` plus :meth:`on_source_state` (a
    :data:`streamseg.sources.base.StateListener`). Every method is thread-safe.

    Lifecycle: build (no network), :meth:`start`, then the listener methods, then
    :meth:`close`. Use :func:`streamseg.outputs.mqtt.build_mqtt_publisher` to build one from a
    pipeline.

    Args:
        config: the ``outputs.mqtt`` section.
        client_id: MQTT client id (stable across restarts).
        topic_prefix: first topic levels, e.g. ``streamseg/yard``.
        outbox: the opened outbox; the publisher closes it in :meth:`close`.
        registry: Prometheus registry for the metrics; ``None`` = a private one.
        discovery: Home Assistant discovery settings; ``None`` = no discovery configs.
        shard: the shard index when this process runs one shard of several (its availability
            and outbox topics are its own, see :class:`Topics`); ``None`` otherwise.
        owned: the retained topics the pipeline publishes: at the first connection, the
            retained topics under the prefix an earlier configuration left are cleared (see
            :mod:`streamseg.outputs.mqtt.stale`); ``None`` clears nothing.

    Raises:
        ValueError: the TLS files cannot be loaded (the message names the key), or
            ``discovery`` was built for another topic prefix or availability topic.
    """

    def __init__(
        self,
        config: MqttOutputConfig,
        *,
        client_id: str,
        topic_prefix: str,
        outbox: Outbox,
        registry: CollectorRegistry | None = None,
        discovery: HomeAssistantDiscovery | None = None,
        shard: int | None = None,
        owned: OwnedTopics | None = None,
    ) -> None:
        self.config = config
        self.client_id = client_id
        self.topics = Topics(topic_prefix, shard)
        self.outbox = outbox
        self.host = config.host
        self.port = config.resolved_port()
        self.metrics = MqttMetrics(lambda: float(outbox.depth), registry)
        self._low_water = int(outbox.bound * LOW_WATER_FRACTION)

        # Latest payload per retained topic; publishing happens under the lock so that two
        # threads setting one topic reach the broker in the order they set it.
        self._retained: dict[str, bytes] = {}
        self._retained_lock = threading.Lock()
        # Snapshots that came while the connection was down, newest per topic (same lock).
        self._snapshots: dict[str, bytes] = {}
        # The latest 'offline' published by close() or by a reconnect during close().
        self._offline: mqtt.MQTTMessageInfo | None = None
        # The availability topic follows from the prefix and the shard: one check covers both.
        if discovery is not None and discovery.availability_topic != self.topics.available:
            raise ValueError(
                f"discovery: built for availability topic {discovery.availability_topic!r}, "
                f"expected the publisher's {self.topics.available!r}"
            )
        self.discovery = discovery
        # Home Assistant discovery, under the same lock: config topic -> message, in the order
        # announced, and the state topics already announced (or skipped).
        self._configs: dict[str, DiscoveryMessage] = {}
        self._announced: set[str] = set()
        # Notified when the outbox shrinks and when the connection comes or goes.
        self._cond = threading.Condition()
        self._connected = False
        self._ever_connected = False
        self._full_lock = threading.Lock()
        self._full = False
        self._refused_in_episode = 0
        self._refused_total = 0
        self._status_at = -math.inf
        self._status_lock = threading.Lock()
        self._status_timer: threading.Timer | None = None
        """Publishes the outbox status when the interval is over, after a change inside it."""
        self._connect_failure: str | None = None
        """The reason of the last failed connection attempt since the last connection: each new
        reason is logged once (a refused login after an outage must not hide behind it)."""
        self._closing = False
        self._closed = False
        self._started = False
        self._seen_stop = threading.Event()
        self._seen_thread = threading.Thread(
            target=self._date_open_occurrences, name="mqtt-open-occurrences", daemon=True
        )
        self._retained_refusals: set[str] = set()
        """Reasons already logged by :meth:`_retained_refused`."""
        self._connected_at = 0.0
        self._maximum_packet = 0
        """The broker's Maximum Packet Size from its last CONNACK (MQTT 5), bytes; 0: unknown."""
        self._short_connections = 0
        """Connections in a row the broker closed within SHORT_CONNECTION_S of accepting."""
        self._clash_said = False
        """The ERROR about connections that keep dropping was logged (until one lasts)."""
        if owned is not None and owned.topics != self.topics:
            raise ValueError(
                f"owned topics: built for {owned.topics!r}, "
                f"expected the publisher's {self.topics!r}"
            )
        self.stale: StaleCleaner | None = (
            StaleCleaner(owned, max(config.state_qos, 1), self._publishes)
            if owned is not None
            else None
        )
        """Clears the retained topics earlier configurations left (``None``: off)."""
        self._client = self._make_client()
        self._sender = OutboxSender(
            self._client,
            outbox,
            config,
            self.metrics,
            shrunk=self._outbox_shrunk,
            closing=lambda: self._closing,
            other_refused=self._retained_refused,
        )
        if discovery is not None:  # the entities known up front go out on the first connect
            for stream_id in discovery.streams:
                topic = self.topics.source_status(stream_id)
                self._announce(discovery.source_status(stream_id, topic))
            for stream_id, rule_id in discovery.rules:
                topic = self.topics.rule_state(stream_id, rule_id)
                self._announce(discovery.rule_state(stream_id, rule_id, topic))
                if discovery.snapshots:
                    image = self.topics.snapshot(stream_id, rule_id)
                    self._announce(discovery.snapshot(stream_id, rule_id, image))

    # ------------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        """True while connected to the broker."""
        return self._connected

    def start(self) -> None:
        """Start the sender thread and paho's network thread, and connect in the background.

        Returns at once: connecting, and reconnecting after failures, happen in the background
        with back-off; events wait in the outbox meanwhile.

        Raises:
            RuntimeError: the publisher was already started or closed.
        """
        if self._started or self._closed:
            raise RuntimeError("the MQTT publisher was already started (or closed)")
        self._started = True
        # Before this run's events: the ends of the occurrences an earlier run left open.
        try:
            end_interrupted(
                self.outbox, self.topics.events, self.config.qos, self.config.max_payload_bytes
            )
        except Exception:
            # The run goes on: its own events meet the same outbox and say what it does then.
            logger.exception(
                "MQTT: could not store the ends of the occurrences an earlier run left open in "
                "the outbox %s; they stay open there for the next start",
                self.outbox.path,
            )
        self._seen_thread.start()
        self._sender.start()
        logger.info(
            "MQTT: connecting to %s:%d (%s%s) as %r; topics under %s/; %d events wait in %s",
            self.host,
            self.port,
            self.config.transport,
            "+tls" if self.config.tls.enabled else "",
            self.client_id,
            self.topics.prefix,
            self.outbox.depth,
            self.outbox.path,
        )
        self._client.connect_async(self.host, self.port, keepalive=self.config.keepalive_s)
        self._client.loop_start()
        if self.outbox.depth:
            self._sender.work()

    def close(self, timeout: float = 5.0) -> None:
        """Flush and stop: wait up to ``timeout`` s for pending acks, then disconnect.

        While connected, ``offline`` is published on ``<prefix>/available`` before a clean
        disconnect (the broker sends the last will only when a client vanishes). A reconnect
        while closing publishes ``offline`` again, never ``online``, so the retained
        availability after a clean exit is ``offline`` (or the will fires). Events not
        acknowledged by then stay in the outbox and go out on the next start. Idempotent.

        Call it after the analytics threads have stopped: an event raised after ``close`` cannot
        be stored (it is logged and counted as refused).

        Args:
            timeout: seconds to wait for the outbox to empty (returns earlier when it does).
        """
        if self._closed:
            return
        self._closed = True
        if not self._started:
            self.outbox.close()
            return
        self._seen_stop.set()
        self._seen_thread.join(timeout=5.0)
        deadline = time.monotonic() + timeout
        with self._cond:
            if not self._ever_connected:
                self._cond.wait_for(
                    lambda: self._connected, timeout=min(timeout, FIRST_CONNECT_WAIT_S)
                )
                if not self._connected:
                    deadline = time.monotonic()  # no broker all run: nothing to flush to
            # Not while the broker refuses events: no acknowledgement is coming.
            self._cond.wait_for(
                lambda: self.outbox.depth == 0 or self._sender.refusing.is_set(),
                timeout=max(0.0, deadline - time.monotonic()),
            )
        left = self.outbox.depth
        if self.stale is not None:
            self.stale.cancel()
        with self._status_lock:
            if self._status_timer is not None:
                self._status_timer.cancel()
        # Under the lock _on_connect holds: a reconnect either comes before (and this publishes
        # 'offline' on it) or after (and publishes 'offline' itself).
        with self._retained_lock:
            self._closing = True
            if self._connected:
                # The last status, ahead of 'offline': the sender wakes this wait before it
                # refreshes the status, and its refresh may come after the disconnect below.
                self._put_outbox_status(changed_only=True)
                self._offline = self._publish_offline()
        self._wait_offline(max(deadline, time.monotonic() + OFFLINE_WAIT_S))
        self._client.disconnect()
        self._client.loop_stop()
        self._sender.stop(timeout=5.0)
        self.outbox.close()
        if left:
            logger.warning(
                "MQTT: %d events not acknowledged stay in %s; they go out on the next start",
                left,
                self.outbox.path,
            )
        logger.info("MQTT: closed (%d events refused in this run)", self._refused_total)

    def _date_open_occurrences(self) -> None:
        """The thread that dates this run's open occurrences "still open" every
        :data:`OPEN_OCCURRENCES_SEEN_S` until :meth:`close`. A failure is logged once per
        episode: the ends after a crash would then be dated earlier, nothing is lost."""
        failing = False
        while not self._seen_stop.wait(OPEN_OCCURRENCES_SEEN_S):
            try:
                self.outbox.touch_open()
            except Exception:
                if not failing:
                    logger.warning(
                        "MQTT: could not date the open occurrences in the outbox %s; if this "
                        "run dies, their interrupted ends are dated at their latest messages",
                        self.outbox.path,
                        exc_info=True,
                    )
                failing = True
            else:
                if failing:
                    logger.info("MQTT: open occurrences are dated in %s again", self.outbox.path)
                failing = False

    def _publish_offline(self) -> mqtt.MQTTMessageInfo:
        """Publish ``offline`` (retained, like the will); its info tells when it is through."""
        return self._client.publish(
            self.topics.available, OFFLINE, qos=self.config.state_qos, retain=self.config.retain
        )

    def _wait_offline(self, deadline: float) -> None:
        """Wait until the latest ``offline`` is acknowledged, or ``deadline`` (monotonic).

        Re-reads ``self._offline`` while waiting: a reconnect drops the one published on the
        connection before and publishes its own.
        """
        while True:
            info = self._offline
            if info is None or _published(info):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                # Not confirmed: the DISCONNECT that follows goes out behind it on the same
                # connection, or, if that connection is dead, the broker sends the will.
                logger.debug("MQTT: 'offline' not confirmed before closing")
                return
            try:
                info.wait_for_publish(timeout=min(remaining, 0.05))
            except (RuntimeError, ValueError):  # not sent on this connection; wait for the next
                time.sleep(min(remaining, 0.05))

    # ------------------------------------------------------------------ listener API

    def on_event(self, event: Event) -> None:
        """Store the event in the outbox (committed before this returns) for the sender.

        Never raises: a refused event (outbox full, larger than ``max_payload_bytes``, database
        error, a payload that is not JSON) is logged and counted in
        ``streamseg_mqtt_events_refused_total``.

        The event's ``snapshot`` path is not read here: the recorder writes the file after the
        ``start`` message and reports it to :meth:`on_snapshot`.
        """
        payload: bytes | None = None
        try:
            payload = event.to_json().encode("utf-8")
            if len(payload) > self.config.max_payload_bytes:
                self._refuse_too_large(event, len(payload))
                self._let_go(event)
                return
            self.outbox.add(
                self.topics.events,
                payload,
                self.config.qos,
                occurrence=event.event_id,
                ends=event.type == "end",
            )
        except OutboxFullError as exc:
            self._let_go(event)
            self._refuse(event, exc)
        except Exception:
            self.metrics.events_refused.labels(reason="error").inc()
            with self._full_lock:
                self._refused_total += 1
            # Its disk full or failing, the outbox cannot keep the event; while connected it
            # still goes out, without the guarantee (paho holds it until the broker acks).
            sent = payload is not None and self._send_unstored(payload)
            if sent and event.type == "end":
                # Sent: the next start need not end it again (if the disk lets us say so).
                with contextlib.suppress(Exception):
                    self.outbox.forget_occurrence(event.event_id)
            else:
                self._let_go(event)
            logger.exception(
                "MQTT: could not store event %s (%s %s on %s) in the outbox %s; %s",
                event.event_id,
                event.rule_id,
                event.type,
                event.stream_id,
                self.outbox.path,
                "published without it (lost if the connection drops before the broker "
                "acknowledges it)"
                if sent
                else "it is lost (not connected)",
            )
        else:
            self._sender.work()
        self._refresh_outbox_status()

    def _let_go(self, event: Event) -> None:
        """After an ``end`` that could not be stored: the occurrence stays open in the outbox
        for the next start to end, and this run stops dating it "still open" (its end would
        be dated at this run's stop, not near its real end). Nothing for other messages: their
        occurrence is still open."""
        if event.type != "end":
            return
        try:
            self.outbox.release_occurrence(event.event_id)
        except Exception:
            logger.debug("MQTT: could not release occurrence %s", event.event_id, exc_info=True)

    def _send_unstored(self, payload: bytes) -> bool:
        """Publish an event the outbox could not store, if connected: whether it went out.

        The sender ignores its acknowledgement (its message id is none of the outbox's).
        """
        if not self._connected or self._closing:
            return False
        info = self._client.publish(self.topics.events, payload, qos=self.config.qos)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        self.metrics.events_sent_unstored.inc()
        return True

    def on_snapshot(self, event: Event, path: Path) -> None:
        """Publish an event's JPEG on ``<prefix>/<stream>/<rule>/snapshot`` (retained), when
        ``snapshots`` is on.

        The recorder's ``on_snapshot`` callback (``build_recorder(...,
        on_snapshot=publisher.on_snapshot)``): it calls this once the file exists, on its
        recording thread. Returns at once; the sender thread reads the file.
        """
        if self.config.snapshots:
            topic = self.topics.snapshot(event.stream_id, event.rule_id)
            self._sender.call(self._send_snapshot, topic, str(path))

    def on_rule_state(self, stream_id: str, rule_id: str, active: bool) -> None:
        """Publish ``ON`` / ``OFF`` on ``<prefix>/<stream>/<rule>/state`` (retained)."""
        topic = self.topics.rule_state(stream_id, rule_id)
        # Unlocked look first (a set lookup is atomic): the config is built once per topic.
        if self.discovery is not None and topic not in self._announced:
            self._announce(self.discovery.rule_state(stream_id, rule_id, topic))
        self._set_retained(topic, b"ON" if active else b"OFF")

    def on_zone_count(self, stream_id: str, zone_id: str, class_name: str, count: int) -> None:
        """Publish the count on ``<prefix>/<stream>/<zone>/<class>/count`` (retained).

        With discovery, the count's sensor config goes out first, the first time the topic is
        published (classes are only known once seen).
        """
        topic = self.topics.zone_count(stream_id, zone_id, class_name)
        if self.discovery is not None and topic not in self._announced:
            self._announce(self.discovery.zone_count(stream_id, zone_id, class_name, topic))
        self._set_retained(topic, str(int(count)).encode("ascii"))

    def on_source_state(self, stream_id: str, old: SourceState, new: SourceState) -> None:
        """Publish the source state (``streaming``, ...) on ``<prefix>/<stream>/status``.

        Has the signature of a source state listener:
        ``source.add_state_listener(publisher.on_source_state)``.
        """
        self._set_retained(self.topics.source_status(stream_id), SourceState(new).value.encode())

    # ------------------------------------------------------------------ outbox bound

    def _refuse(self, event: Event, exc: OutboxFullError) -> None:
        self.metrics.events_refused.labels(reason="full").inc()
        with self._full_lock:
            self._refused_total += 1
            self._refused_in_episode += 1
            if self._full:
                return
            self._full = True
        self.metrics.outbox_full.set(1)
        logger.error(
            "MQTT: outbox %s is full (%d events wait, bound %d): new events are refused "
            "(first: %s, %s %s on %s) until it drains below %d; is the broker reachable?",
            self.outbox.path,
            exc.depth,
            exc.bound,
            event.event_id,
            event.rule_id,
            event.type,
            event.stream_id,
            self._low_water,
        )
        self._publish_outbox_status()

    def _refuse_too_large(self, event: Event, size: int) -> None:
        # Every one is logged: each is an event lost, and they do not come in floods.
        self.metrics.events_refused.labels(reason="too_large").inc()
        with self._full_lock:
            self._refused_total += 1
        logger.error(
            "MQTT: event %s (%s %s on %s) refused: %d bytes, over outputs.mqtt.max_payload_bytes "
            "(%d); it is lost. Raise the limit if the broker takes larger messages",
            event.event_id,
            event.rule_id,
            event.type,
            event.stream_id,
            size,
            self.config.max_payload_bytes,
        )
        self._publish_outbox_status()

    def _check_room(self) -> None:
        with self._full_lock:
            if not self._full or self.outbox.depth > self._low_water:
                return
            self._full = False
            refused, self._refused_in_episode = self._refused_in_episode, 0
        self.metrics.outbox_full.set(0)
        logger.warning(
            "MQTT: outbox has room again (%d events wait); %d events were refused while it "
            "was full",
            self.outbox.depth,
            refused,
        )
        self._publish_outbox_status()

    def _outbox_shrunk(self) -> None:
        """Events left the outbox (the sender's thread): wake :meth:`close`, say when a full
        outbox has room again, and refresh the retained status (at once when it is empty)."""
        with self._cond:
            self._cond.notify_all()
        self._check_room()
        self._refresh_outbox_status(force=self.outbox.depth == 0)

    def _retained_refused(self, refusal: tuple[int, str]) -> None:
        """The broker refused a message that is not an event (MQTT 5): a retained state,
        count, status, snapshot, discovery config or stale-topic clear. Said once per reason:
        its value stays what the broker last took."""
        code, name = refusal
        if name in self._retained_refusals:
            return
        self._retained_refusals.add(name)
        prefixes = self.topics.prefix + "/#"
        if self.discovery is not None:
            prefixes += f" and {self.discovery.discovery_prefix}/#"
        logger.error(
            "MQTT: the broker refused a retained message (state, count, status, snapshot, "
            "discovery or a clear): %s (reason code 0x%02X); does its ACL let this client write "
            "%s? Those topics keep what the broker last took",
            name,
            code,
            prefixes,
        )

    def _refresh_outbox_status(self, force: bool = False) -> None:
        """Publish the outbox status if it changed, at most every :data:`OUTBOX_STATUS_MIN_S`
        (``force``: now, e.g. once it has drained), so its retained depth follows the events
        accepted and acknowledged instead of the last connect or full/room transition.

        A change inside the interval is published when it is over: the last change of a burst
        may be followed by nothing (a broker refusing events), and the retained depth must end
        at the outbox's.
        """
        with self._status_lock:
            wait = self._status_at + OUTBOX_STATUS_MIN_S - time.monotonic()
            if not force and wait > 0:
                if self._status_timer is None and not self._closing:
                    timer = threading.Timer(wait, self._status_interval_over)
                    timer.daemon = True
                    self._status_timer = timer
                    timer.start()
                return
            self._status_at = time.monotonic()
        self._publish_outbox_status(changed_only=True)

    def _status_interval_over(self) -> None:
        """The timer of :meth:`_refresh_outbox_status`: publish what changed meanwhile."""
        with self._status_lock:
            self._status_timer = None
        self._refresh_outbox_status(force=True)

    def _publish_outbox_status(self, changed_only: bool = False) -> None:
        with self._retained_lock:
            self._put_outbox_status(changed_only)

    def _put_outbox_status(self, changed_only: bool) -> None:
        """Keep (and publish, while connected) the outbox status; ``changed_only``: unless it
        is the one kept. Called under the retained lock, which orders the publishes: the status
        is built and compared there, so one built before the last acknowledgement never lands
        after one built since (or stands for it, compared equal to an older one)."""
        payload = self._outbox_status()
        if changed_only and payload == self._retained.get(self.topics.outbox):
            return
        self._retained[self.topics.outbox] = payload
        if self._connected:
            self._publish_state(self.topics.outbox, payload)

    def _outbox_status(self) -> bytes:
        status = {
            "depth": self.outbox.depth,
            "bound": self.outbox.bound,
            "full": self._full,
            "refused": self._refused_total,
        }
        return json.dumps(status, sort_keys=True).encode()

    # ------------------------------------------------------------------ retained topics

    def _set_retained(self, topic: str, payload: bytes) -> None:
        with self._retained_lock:
            self._retained[topic] = payload
            if self._connected:
                self._publish_state(topic, payload)

    def _announce(self, message: DiscoveryMessage) -> None:
        """Publish (and keep for reconnects) a discovery config, once per state topic."""
        state_topic = message.state_topic
        with self._retained_lock:
            if state_topic in self._announced:
                return
            self._announced.add(state_topic)
            other = self._configs.get(message.topic)
            if other is not None:
                # Two ids that differ only in characters a discovery id cannot hold.
                logger.warning(
                    "MQTT: Home Assistant discovery: %s and %s map to the same entity %s; "
                    "%s gets none (rename a stream, rule, zone or class to tell them apart)",
                    other.state_topic,
                    state_topic,
                    message.topic,
                    state_topic,
                )
                return
            self._configs[message.topic] = message
            if self._connected:
                self._publish_config(message)

    def _publishes(self, topic: str) -> bool:
        """Whether this run has published ``topic`` as a retained value or discovery config
        (membership tests of dicts are atomic: no lock)."""
        return topic in self._retained or topic in self._configs

    def _publish_config(self, message: DiscoveryMessage) -> None:
        # Always retained: Home Assistant reads the configs when it (re)starts.
        self._client.publish(message.topic, message.payload, qos=DISCOVERY_QOS, retain=True)

    def _publish_state(self, topic: str, payload: bytes) -> None:
        # Called while connected (or from on_connect). If the connection has just dropped,
        # paho queues the message; the next on_connect drops it and publishes the latest value.
        self._client.publish(topic, payload, qos=self.config.state_qos, retain=self.config.retain)

    # ------------------------------------------------------------------ snapshots

    def _send_snapshot(self, topic: str, path: str) -> None:
        """Publish a snapshot file once (now, or on the next connect), unless it is too large.

        Never kept for reconnects (see the module docstring), and one over
        ``max_snapshot_bytes`` is never read into memory.
        """
        limit = self.config.max_snapshot_bytes
        setting = f"outputs.mqtt.max_snapshot_bytes ({limit}); raise it if the broker takes larger"
        packet_room = self._maximum_packet - len(topic.encode()) - PUBLISH_OVERHEAD_BYTES
        if self._maximum_packet and packet_room < limit:
            # MQTT 5: the broker said what it takes (a larger packet costs the connection).
            limit = packet_room
            setting = f"the broker's maximum packet size ({self._maximum_packet}, from its CONNACK)"
        try:
            size = os.stat(path).st_size
            data = Path(path).read_bytes() if size <= limit else b""
        except OSError as exc:
            self.metrics.snapshots_skipped.labels(reason="unreadable").inc()
            logger.warning("MQTT: snapshot %s not published: %s", path, exc.strerror or exc)
            return
        size = max(size, len(data))  # the file may have grown since the stat
        if size > limit:
            self.metrics.snapshots_skipped.labels(reason="too_large").inc()
            logger.warning(
                "MQTT: snapshot %s not published: %d bytes, over %s",
                path,
                size,
                setting,
            )
            return
        with self._retained_lock:
            if self._connected:
                self._publish_state(topic, data)
            else:
                self._snapshots[topic] = data

    # ------------------------------------------------------------------ paho

    def _make_client(self) -> mqtt.Client:
        client = make_client(self.config, self.client_id, self.topics.available)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        if self.stale is not None:
            client.on_subscribe = self._on_subscribe
            client.on_message = self._on_message
        return client

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            hint = ""
            if reason_code.value == UNSUPPORTED_PROTOCOL_VERSION and self.config.protocol == "5":
                hint = "; a broker without MQTT 5? set outputs.mqtt.protocol: 3.1.1"
            logger.log(
                self._failure_level(f"refused: {reason_code}", logging.ERROR),
                "MQTT: broker %s:%d refused the connection of %r: %s%s (retrying with back-off)",
                self.host,
                self.port,
                self.client_id,
                reason_code,
                hint,
            )
            return
        maximum_packet = getattr(properties, "MaximumPacketSize", 0) if properties else 0
        self._maximum_packet = int(maximum_packet or 0)
        # What paho still holds from the previous connection would go out again with stale
        # mids; the sender resends every unacknowledged row from the outbox instead.
        client.drop_out_messages()
        # Latest values first, then "connected" for the setters, under the lock that orders
        # retained publishes: each value goes out once, and none is overtaken by an older one.
        with self._retained_lock:
            if self._closing:
                # close() is under way and its 'offline' went with the old connection (dropped
                # above): say it again here, and nothing else. 'online' now would stay retained
                # after close()'s clean disconnect.
                self._offline = self._publish_offline()
                logger.debug("MQTT: reconnected while closing; 'offline' published again")
                return
            self._publish_state(self.topics.available, ONLINE)
            for message in self._configs.values():
                self._publish_config(message)
            self._retained[self.topics.outbox] = self._outbox_status()
            for topic, payload in self._retained.items():
                self._publish_state(topic, payload)
            # Last: the large ones, each once (see the module docstring).
            for topic, payload in self._snapshots.items():
                self._publish_state(topic, payload)
            self._snapshots.clear()
            with self._cond:
                self._connected = True
                self._ever_connected = True
                self._cond.notify_all()
            if self.stale is not None:
                self.stale.on_connect(client)
        self.metrics.connected.set(1)
        self._connected_at = time.monotonic()
        self._connect_failure = None
        receive_maximum = getattr(properties, "ReceiveMaximum", 0) if properties else 0
        self._sender.connected(int(receive_maximum or 0), self._maximum_packet)
        logger.info(
            "MQTT: connected to %s:%d; %d events to send from the outbox",
            self.host,
            self.port,
            self.outbox.depth,
        )

    def _failure_level(self, reason: str, level: int) -> int:
        """``level`` the first time ``reason`` follows another (or a connection), else DEBUG."""
        if reason == self._connect_failure:
            return logging.DEBUG
        self._connect_failure = reason
        return level

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # paho calls this inside its `except OSError` and passes no exception: read it there,
        # or a bad CA, a wrong host name and a DNS typo all read as a network outage.
        error = sys.exc_info()[1]
        config_error = isinstance(error, (ssl.SSLError, socket.gaierror))
        why = f": {error}" if error is not None else ""
        if self.config.tls.enabled and isinstance(error, ConnectionResetError):
            # A plain MQTT listener drops the TLS handshake's first bytes: what a wrong port
            # (1883 with tls enabled) looks like from here.
            config_error = True
            why += f" during the TLS handshake (is port {self.port} a TLS listener?)"
        logger.log(
            self._failure_level(
                f"unreachable: {type(error).__name__}: {error}",
                logging.ERROR if config_error else logging.WARNING,
            ),
            "MQTT: cannot reach the broker at %s:%d%s; retrying with back-off up to %g s "
            "(events wait in the outbox)",
            self.host,
            self.port,
            why,
            self.config.reconnect.max_delay_s,
        )

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was_connected = self._connected
        with self._cond:
            self._connected = False
            self._cond.notify_all()
        self.metrics.connected.set(0)
        if self.stale is not None:
            self.stale.on_disconnect()
        # paho's reason when its own keepalive check gave the connection up (a silent peer).
        self._sender.disconnected(was_connected, timed_out=reason_code == "Keep alive timeout")
        if was_connected and not self._closing:
            self._lost_connection(reason_code)

    def _lost_connection(self, reason_code: ReasonCode) -> None:
        """Log a lost connection; say once why connections keep dropping as soon as they are
        made (:data:`SHORT_CONNECTIONS_CLASH`), then keep quiet until one lasts."""
        short = time.monotonic() - self._connected_at < SHORT_CONNECTION_S
        if short:
            self._short_connections += 1
        else:
            self._short_connections, self._clash_said = 0, False
        taken_over = reason_code == "Session taken over"  # MQTT 5, when the broker says so
        clash = taken_over or self._short_connections >= SHORT_CONNECTIONS_CLASH
        if clash and not self._clash_said:
            self._clash_said = True
            why = (
                "another client connected with the client id"
                if taken_over
                else f"the last {SHORT_CONNECTIONS_CLASH} connections each ended within "
                f"{SHORT_CONNECTION_S:g} s: is another client connected with the client id"
            )
            logger.error(
                "MQTT: the broker %s:%d keeps closing the connection (%s); %s %r (two "
                "streamseg instances with one client_id?), or does it refuse what is sent (see "
                "the broker's log)? Reconnecting; %d events wait",
                self.host,
                self.port,
                reason_code,
                why,
                self.client_id,
                self.outbox.depth,
            )
            return
        level = logging.DEBUG if self._clash_said else logging.WARNING
        logger.log(
            level,
            "MQTT: lost the connection to %s:%d (%s); reconnecting, %d events wait",
            self.host,
            self.port,
            reason_code,
            self.outbox.depth,
        )

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        # Runs under paho's message lock: post and return, take no lock of ours.
        refusal = (reason_code.value, str(reason_code)) if reason_code.is_failure else None
        if self.stale is not None:  # a stale-topic clear the broker refused is not cleared
            self.stale.on_publish(mid, refusal[1] if refusal is not None else None)
        self._sender.acked(mid, refusal)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if self.stale is not None:
            self.stale.on_subscribe(client, mid, reason_codes)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self.stale is not None:
            self.stale.on_message(message.topic, bytes(message.payload), bool(message.retain))


def _published(info: mqtt.MQTTMessageInfo) -> bool:
    """Whether paho reports the message acknowledged (written, at QoS 0); False for one that
    was not sent (paho raises for those)."""
    try:
        return info.is_published()
    except (RuntimeError, ValueError):
        return False


if TYPE_CHECKING:

    def _conforms(publisher: MqttPublisher) -> tuple[EventListener, StateListener]:
        """mypy checks that the publisher fits the listener contracts the runtime uses."""
        return publisher, publisher.on_source_state

"""Retained topics an earlier configuration left on the broker, and which of them to clear.

A retained message stays on the broker until someone replaces or clears it. When an operator
renames or removes a rule, a zone or a stream, the old ``<prefix>/<stream>/<rule>/state`` keeps
its last value, and its Home Assistant discovery config keeps an entity that still looks
available (its availability topic is the live process's). At its first connection the
publisher reads the retained topics under its prefix (and its own discovery configs), asks
:meth:`OwnedTopics.is_stale` about each, and clears the stale ones (an empty retained message).

What counts as stale: a topic of the layout in :mod:`streamseg.outputs.mqtt.topics` that the
running pipeline would never publish again:

- the state or snapshot of a rule that no longer runs on its stream (snapshots: also every one
  when ``snapshots`` is off), the counts of a zone that no rule on the stream watches any more;
- every topic of a stream that is not in the pipeline;
- the process topics of another layout: ``<prefix>/shards/<i>/...`` of a run that is not
  sharded (or of a shard index past the count), ``<prefix>/available`` and ``<prefix>/outbox``
  of a sharded run;
- a discovery config under this pipeline's ``node_id`` whose ``state_topic`` is stale, and
  every one of them for a stream of this process once discovery is turned off;
- with ``retain: false``, every retained value of a topic of this process (it is published,
  never retained, so a retained one is left from an earlier configuration).

What is left alone: anything outside that layout, the counts of any class in a zone that is
still counted (which classes a zone saw is not known up front), and, for one shard of several,
the streams of the other shards. A shard decides for the streams it would run (the rendezvous
hash of :mod:`streamseg.runtime.shard`, so a stream missing from the pipeline is still somebody's
to clear), and shard 0 for the process topics. A prefix therefore belongs to one pipeline: two
different pipelines under one prefix would clear each other's topics (they would already share
one availability topic); ``clear_stale_retained: false`` turns this off. A pipeline with neither
a ``name`` nor a ``topic_prefix`` clears nothing: every unnamed pipeline has the same prefix.

Brokers do not always say no: mosquitto grants a subscription its ACL forbids to read (and then
delivers nothing), so under such an ACL nothing is found, silently. A clear its ACL forbids to
write is refused in the acknowledgement with MQTT 5 (the clears go at QoS 1 or more): such a
topic is not counted as cleared, and the clearing says how many the broker refused. With MQTT
3.1.1 the acknowledgement carries no verdict, and a refused clear reads as done.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from streamseg.config.pipeline import PipelineConfig
from streamseg.config.rules import rule_runs_on
from streamseg.config.zones import PolygonZoneConfig
from streamseg.outputs.mqtt.discovery import default_node_id
from streamseg.outputs.mqtt.topics import Topics, topic_level
from streamseg.runtime.shard import Shard, shard_of

CLEAR_WINDOW_S = 1.0
"""How long after the broker acknowledges the subscriptions the publisher collects the retained
messages before it clears the stale ones (a broker sends them right after its SUBACK)."""

logger = logging.getLogger(__name__)

LOGGED_TOPICS = 20
"""Most cleared topics named in the log line."""

MAX_COLLECT_S = 30.0
"""Longest collection of the retained messages (while they keep coming)."""

CLEAR_ACK_TIMEOUT_S = 10.0
"""How long the clearing waits for the broker to acknowledge its empty retained messages."""

_ID = re.compile(r"^[A-Za-z0-9_-]+$")
"""A stream id (ID_PATTERN of the config): only such levels can be a stream's topics."""

_DISCOVERY_COMPONENTS = ("binary_sensor", "sensor", "image")

_STREAM_TOPICS = frozenset({(2, "status"), (3, "state"), (3, "snapshot"), (4, "count")})
"""(levels under the prefix, last level) of a stream's topics."""


@dataclass(frozen=True)
class StreamTopics:
    """The topic levels one running stream owns.

    Attributes:
        rules: levels of the rules that run on the stream (their ``state`` and ``snapshot``).
        count_zones: levels of the zones whose counts it publishes.
    """

    rules: frozenset[str]
    count_zones: frozenset[str]


@dataclass(frozen=True)
class OwnedTopics:
    """The retained topics a publisher owns under its prefix, and the test for the others.

    Build it with :func:`owned_topics`.

    Attributes:
        topics: the publisher's topic names.
        streams: the streams this process runs, by topic level.
        snapshots: whether the pipeline publishes snapshots.
        shard: the shard of a sharded run (count > 1), else ``None``.
        discovery: ``(discovery prefix, node_id)`` of this pipeline's Home Assistant configs
            (those of an earlier configuration too, when discovery is off now), or ``None``.
        announces: whether the pipeline publishes discovery configs (when off, every config
            of its node for a stream this process decides for is stale).
        retain: whether the pipeline retains its topics (when off, every retained value of a
            topic this process decides for is left over).
    """

    topics: Topics
    streams: Mapping[str, StreamTopics] = field(hash=False)
    snapshots: bool = False
    shard: Shard | None = None
    discovery: tuple[str, str] | None = None
    announces: bool = False
    retain: bool = True

    def filters(self) -> list[str]:
        """The subscriptions that receive every retained topic :meth:`is_stale` may clear."""
        prefix = self.topics.prefix
        found = [
            f"{prefix}/available",
            f"{prefix}/outbox",
            f"{prefix}/shards/+/available",
            f"{prefix}/shards/+/outbox",
            f"{prefix}/+/status",
            f"{prefix}/+/+/state",
            f"{prefix}/+/+/snapshot",
            f"{prefix}/+/+/+/count",
        ]
        if self.discovery is not None:
            discovery_prefix, node_id = self.discovery
            found += [
                f"{discovery_prefix}/{component}/{node_id}/+/config"
                for component in _DISCOVERY_COMPONENTS
            ]
        return found

    def is_stale(self, topic: str, payload: bytes) -> bool:
        """Whether the retained ``payload`` on ``topic`` is one this pipeline left behind.

        Args:
            topic: a topic a subscription of :meth:`filters` received.
            payload: its retained payload (a discovery config is judged by its
                ``state_topic``).
        """
        if self.discovery is not None:
            discovery_prefix, node_id = self.discovery
            levels = topic.split("/")
            if (
                topic.startswith(f"{discovery_prefix}/")
                and len(levels) >= 4
                and levels[-1] == "config"
                and levels[-3] == node_id
            ):
                return self._stale_config(payload)
        return self._stale_topic(topic)

    def _stale_config(self, payload: bytes) -> bool:
        try:
            config = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return False
        # An entity reads its state_topic, an image entity its image_topic.
        state_topic = (
            config.get("state_topic") or config.get("image_topic")
            if isinstance(config, dict)
            else None
        )
        if not isinstance(state_topic, str):
            return False
        if not self.announces:  # discovery was turned off: every entity of ours goes
            levels = self._stream_levels(state_topic)
            return levels is not None and (
                levels[0] in self.streams or self._absent_stream_is_mine(levels[0])
            )
        return self._stale_topic(state_topic)

    def _stream_levels(self, topic: str) -> list[str] | None:
        """The levels under the prefix of a stream's topic (``<stream>/status``,
        ``<stream>/<rule>/state`` ...), else ``None``."""
        head = f"{self.topics.prefix}/"
        if not topic.startswith(head):
            return None
        levels = topic[len(head) :].split("/")
        if (len(levels), levels[-1]) not in _STREAM_TOPICS:
            return None
        return levels

    def _stale_topic(self, topic: str) -> bool:
        head = f"{self.topics.prefix}/"
        if not topic.startswith(head):
            return False
        levels = topic[len(head) :].split("/")
        shard = self.shard
        if len(levels) == 1 and levels[0] in ("available", "outbox"):
            if shard is not None:  # an unsharded run's: shard 0 decides
                return shard.index == 0
            return not self.retain  # ours, left from when it was retained
        if len(levels) == 3 and levels[0] == "shards" and levels[2] in ("available", "outbox"):
            if shard is None:
                return True
            index = levels[1]
            if not index.isdigit():
                return False
            if int(index) == shard.index:
                return not self.retain
            return shard.index == 0 and int(index) >= shard.count
        kind = levels[-1]
        if (len(levels), kind) not in _STREAM_TOPICS:
            return False
        stream = self.streams.get(levels[0])
        if stream is None:
            return self._absent_stream_is_mine(levels[0])
        if not self.retain:  # published, never retained: a retained value is left over
            return True
        if kind == "state":
            return levels[1] not in stream.rules
        if kind == "snapshot":
            return not self.snapshots or levels[1] not in stream.rules
        if kind == "count":
            return levels[1] not in stream.count_zones
        return False

    def _absent_stream_is_mine(self, level: str) -> bool:
        """Whether this process decides for a stream that is not among its own: every one when
        it runs the whole pipeline; for a shard, the ones the shard would run."""
        if not _ID.match(level):
            return False  # no stream id gives this level
        shard = self.shard
        return shard is None or shard_of(level, shard.count) == shard.index


def owned_topics(
    config: PipelineConfig, topics: Topics, shard: Shard | None = None
) -> OwnedTopics | None:
    """The retained topics ``config`` publishes under ``topics``.

    ``None`` for a pipeline without a ``name`` and without a ``topic_prefix``: its prefix,
    ``streamseg/streamseg``, is every unnamed pipeline's, and clearing would take another
    pipeline's live topics for left-overs.

    Args:
        config: the validated pipeline (a shard's copy lists only its own sources).
        topics: the publisher's topic names.
        shard: the shard this process runs when the pipeline runs as several (count > 1).
    """
    mqtt = config.outputs.mqtt
    if "name" not in config.model_fields_set and (mqtt is None or mqtt.topic_prefix is None):
        return None
    zones = {zone.id: zone for zone in config.zones}
    streams: dict[str, StreamTopics] = {}
    for source in config.sources:
        running = [rule for rule in config.rules if rule_runs_on(rule, zones, source.id)]
        watched = {getattr(rule, "zone", None) for rule in running}
        counted = [
            zone_id
            for zone_id, zone in zones.items()
            if zone_id in watched and isinstance(zone, PolygonZoneConfig)
        ]
        streams[topic_level(source.id)] = StreamTopics(
            frozenset(topic_level(rule.id) for rule in running),
            frozenset(topic_level(zone) for zone in counted),
        )
    discovery = None
    if mqtt is not None:  # off now, the configs an earlier run published are still found
        settings = mqtt.home_assistant
        discovery = (settings.discovery_prefix, settings.node_id or default_node_id(config.name))
    return OwnedTopics(
        topics,
        streams,
        snapshots=mqtt is not None and mqtt.snapshots,
        shard=shard if shard is not None and shard.count > 1 else None,
        discovery=discovery,
        announces=mqtt is not None and mqtt.home_assistant.enabled,
        retain=mqtt is None or mqtt.retain,
    )


class StaleCleaner:
    """Clears, once per process, the retained topics :meth:`OwnedTopics.is_stale` finds.

    The publisher calls it from paho's callbacks: :meth:`on_connect` subscribes to
    :meth:`OwnedTopics.filters`; :meth:`on_subscribe` starts a :data:`CLEAR_WINDOW_S` timer;
    :meth:`on_message` collects the stale retained messages meanwhile; then the timer
    unsubscribes and publishes an empty retained message on each. A connection lost before
    that starts again on the next connect; once every clearing message was handed to a
    connected client, :attr:`done` is set and nothing more happens. A broker that refuses the
    subscriptions (an ACL) gets a warning and is left as it is.

    A retained topic published while the messages are collected (this process announcing a
    count's entity on the first frame) is not cleared: its live copy takes it off the list,
    and so does ``publishes_now``. Collection goes on while retained messages keep coming (a
    broker with very many), up to ``max_collect_s``.

    Args:
        owned: what the pipeline publishes.
        qos: QoS of the clearing messages.
        publishes_now: whether the publisher has published a retained value or config on a
            topic in this run (never cleared).
        window_s: how long to collect after the SUBACK, and after the last retained message.
        max_collect_s: the longest collection.
    """

    def __init__(
        self,
        owned: OwnedTopics,
        qos: int,
        publishes_now: Callable[[str], bool] = lambda topic: False,
        window_s: float = CLEAR_WINDOW_S,
        max_collect_s: float = MAX_COLLECT_S,
    ) -> None:
        self.owned = owned
        self.qos = qos
        self.publishes_now = publishes_now
        self.window_s = window_s
        self.max_collect_s = max_collect_s
        self.done = threading.Event()
        """Set once the stale topics were cleared (or the broker refused the subscriptions)."""
        self.cleared: list[str] = []
        """The topics cleared (the broker took the empty retained message), sorted."""
        self.refused: list[str] = []
        """The stale topics the broker refused to clear (MQTT 5: an ACL), sorted."""
        self._refusals: dict[int, str] = {}
        """mid -> reason of each message the broker refused in its acknowledgement while
        clearing. Written by :meth:`on_publish` under paho's message lock, so without ours (one
        dict store is atomic)."""
        self._filters = owned.filters()
        self._lock = threading.Lock()
        self._connection = 0
        """Counts connections and disconnections: a timer of an older one does nothing."""
        self._mid: int | None = None
        self._found: set[str] = set()
        self._collecting = False
        self._timer: threading.Timer | None = None
        self._started = 0.0
        self._last_retained = 0.0

    def on_connect(self, client: mqtt.Client) -> None:
        """A connection is up: subscribe, unless the work is done."""
        with self._lock:
            self._connection += 1
            if self.done.is_set():
                return
            self._found.clear()
            self._collecting = True
            _, self._mid = client.subscribe([(topic, 0) for topic in self._filters])

    def on_disconnect(self) -> None:
        """The connection is gone: what was being collected is dropped."""
        with self._lock:
            self._connection += 1
            self._collecting = False
            self._mid = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def on_subscribe(self, client: mqtt.Client, mid: int, reason_codes: list[Any]) -> None:
        """The broker answered the subscriptions: collect for :attr:`window_s`, then clear."""
        with self._lock:
            if mid != self._mid or self.done.is_set():
                return
            if all(code.is_failure for code in reason_codes):
                logger.warning(
                    "MQTT: the broker refused the subscriptions under %s/ (%s): retained topics "
                    "that earlier configurations left there are not cleared (an ACL must let "
                    "the client read them; or set outputs.mqtt.clear_stale_retained: false)",
                    self.owned.topics.prefix,
                    reason_codes[0],
                )
                self._collecting = False
                self.done.set()
                return
            self._started = self._last_retained = time.monotonic()
            self._schedule(client, self.window_s)

    def _schedule(self, client: mqtt.Client, delay: float) -> None:
        """Run :meth:`_clear` in ``delay`` seconds (called under the lock)."""
        timer = threading.Timer(delay, self._clear, (client, self._connection))
        timer.daemon = True
        self._timer = timer
        timer.start()

    def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        """A message of the subscriptions: kept when it is a stale retained one."""
        if not payload:
            return  # a topic being cleared
        with self._lock:
            if not self._collecting:
                return
            if not retained:
                # Published just now: with retain on, this value is the retained one now.
                if self.owned.retain:
                    self._found.discard(topic)
                return
            self._last_retained = time.monotonic()
            if self.owned.is_stale(topic, payload):
                self._found.add(topic)

    def on_publish(self, mid: int, refusal: str | None) -> None:
        """The broker acknowledged message ``mid``; ``refusal``: the reason it refused it
        (MQTT 5, a reason code of 0x80 or more), else ``None``.

        Called from paho's ``on_publish``, which holds paho's message lock: it takes no lock
        (the clearing publishes under its own lock, and paho takes its message lock then). paho
        calls it before it marks the message published, so a clearing that saw its messages
        published finds their refusals here.
        """
        if refusal is not None and not self.done.is_set():
            self._refusals[mid] = refusal

    def cancel(self) -> None:
        """Stop a pending clearing (the publisher is closing)."""
        self.on_disconnect()

    def _clear(self, client: mqtt.Client, connection: int) -> None:
        with self._lock:
            if connection != self._connection or self.done.is_set():
                return
            now = time.monotonic()
            quiet = now - self._last_retained
            if quiet < self.window_s and now - self._started < self.max_collect_s:
                self._schedule(client, self.window_s - quiet)  # they are still coming
                return
            self._collecting = False
            self._timer = None
            client.unsubscribe(self._filters)
            topics = sorted(
                topic
                for topic in self._found
                if not (self.owned.retain and self.publishes_now(topic))
            )
            # A mid is unique among the messages in flight: what is recorded from here on for
            # the mids of these clears is about them.
            self._refusals.clear()
            sent = [client.publish(topic, b"", qos=self.qos, retain=True) for topic in topics]
        # Acknowledged, or the connection dropped (the next one starts again). Not under the
        # lock: paho's thread takes it to report a disconnection. One deadline for them all:
        # the messages of a dropped connection are never acknowledged.
        deadline = time.monotonic() + CLEAR_ACK_TIMEOUT_S
        for info in sent:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or connection != self._connection:
                break
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=remaining)
        with self._lock:
            if connection != self._connection or not all(info.is_published() for info in sent):
                return
            # paho reports a refused message as published too: its refusal tells them apart.
            reasons = {
                topic: self._refusals[info.mid]
                for topic, info in zip(topics, sent, strict=True)
                if info.mid in self._refusals
            }
            accepted = [topic for topic in topics if topic not in reasons]
            self.cleared = sorted({*self.cleared, *accepted})
            self.refused = sorted(reasons)
            self.done.set()
        if accepted:
            logger.info(
                "MQTT: cleared %d retained topic(s) the pipeline no longer publishes (a removed "
                "or renamed stream, rule or zone): %s",
                len(accepted),
                _named(accepted),
            )
        if reasons:
            logger.warning(
                "MQTT: the broker refused to clear %d retained topic(s) the pipeline no longer "
                "publishes (%s): %s; they keep their old values (does its ACL let this client "
                "write them?)",
                len(reasons),
                ", ".join(sorted(set(reasons.values()))),
                _named(self.refused),
            )


def _named(topics: list[str]) -> str:
    """The first :data:`LOGGED_TOPICS` of ``topics``, and how many more, for a log line."""
    more = len(topics) - LOGGED_TOPICS
    return ", ".join(topics[:LOGGED_TOPICS]) + (f" and {more} more" if more > 0 else "")

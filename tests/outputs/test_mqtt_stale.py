"""Retained topics an earlier configuration left: which are stale, and clearing them on a real
mosquitto (the publisher's first connection)."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from helpers.mosquitto import Mosquitto, Subscriber, client_keys

from streamseg.config import PipelineConfig, load_pipeline_text
from streamseg.outputs.mqtt import MqttPublisher, Topics
from streamseg.outputs.mqtt.stale import OwnedTopics, owned_topics
from streamseg.runtime.shard import Shard, shard_config, shard_of

PREFIX = "streamseg/yard"
HA = "homeassistant"
NODE = "streamseg_yard"

PIPELINE = """\
name: yard
sources:
  - {{id: gate, type: file, path: x.mp4}}
  - {{id: dock, type: file, path: y.mp4}}
zones:
  - {{id: pen, type: polygon, stream: gate, points: [[0, 0], [10, 0], [10, 10]]}}
  - {{id: halfway, type: line, points: [[0, 0], [0, 10]]}}
rules:
  - {{id: in-pen, type: inside, zone: pen}}
  - {{id: crossing, type: cross, zone: halfway}}
  - {{id: close, type: near, classes: [person], other_classes: [truck], max_distance: 5,
      stream: dock}}
outputs:
  mqtt: {mqtt}
"""


def pipeline(**mqtt: Any) -> PipelineConfig:
    return load_pipeline_text(PIPELINE.format(mqtt=json.dumps(mqtt)), filename="p.yaml", env={})


def owned(shard: Shard | None = None, **mqtt: Any) -> OwnedTopics:
    config = pipeline(**mqtt)
    index = shard.index if shard is not None and shard.count > 1 else None
    if shard is not None:
        config = shard_config(config, shard)
    return owned_topics(config, Topics(PREFIX, index), shard)


def ha_config(state_topic: str, component: str = "binary_sensor") -> tuple[str, bytes]:
    """A discovery config of this pipeline's node for ``state_topic``."""
    object_id = state_topic.removeprefix(f"{PREFIX}/").replace("/", "_")
    topic = f"{HA}/{component}/{NODE}/{object_id}/config"
    return topic, json.dumps({"state_topic": state_topic, "unique_id": object_id}).encode()


# ---------------------------------------------------------------------------- which are stale


@pytest.mark.parametrize(
    ("topic", "stale"),
    [
        # What the pipeline publishes.
        (f"{PREFIX}/gate/in-pen/state", False),
        (f"{PREFIX}/gate/crossing/state", False),
        (f"{PREFIX}/dock/close/state", False),
        (f"{PREFIX}/gate/pen/cow/count", False),
        (f"{PREFIX}/gate/pen/anything_else/count", False),  # the classes are not known up front
        (f"{PREFIX}/gate/status", False),
        (f"{PREFIX}/available", False),
        (f"{PREFIX}/outbox", False),
        # A removed or renamed rule, a rule that no longer runs on that stream, a zone no rule
        # watches on the stream, a stream no longer in the pipeline.
        (f"{PREFIX}/gate/old-rule/state", True),
        (f"{PREFIX}/gate/close/state", True),  # 'close' runs on dock only
        (f"{PREFIX}/dock/in-pen/state", True),  # 'pen' is gate's zone
        (f"{PREFIX}/gate/halfway/person/count", True),  # a line is not counted
        (f"{PREFIX}/gate/old-zone/cow/count", True),
        (f"{PREFIX}/crane/status", True),
        (f"{PREFIX}/crane/in-pen/state", True),
        (f"{PREFIX}/crane/pen/cow/count", True),
        # Snapshots are off in this pipeline.
        (f"{PREFIX}/gate/in-pen/snapshot", True),
        # Process topics of a sharded run.
        (f"{PREFIX}/shards/0/available", True),
        (f"{PREFIX}/shards/3/outbox", True),
        # Outside the layout: left alone.
        (f"{PREFIX}/events", False),
        (f"{PREFIX}/gate/in-pen/other", False),
        (f"{PREFIX}/custom/notes", False),
        (f"{PREFIX}/a b/status", False),  # no stream id gives this level
        ("elsewhere/gate/old-rule/state", False),
        (f"{PREFIX}x/gate/old-rule/state", False),
    ],
)
def test_topics_the_pipeline_no_longer_publishes_are_stale(topic: str, stale: bool) -> None:
    assert owned().is_stale(topic, b"ON") is stale


def test_snapshots_of_running_rules_are_kept_when_snapshots_are_on() -> None:
    topics = dataclasses.replace(owned(), snapshots=True)  # as with outputs.record.snapshots
    assert not topics.is_stale(f"{PREFIX}/gate/in-pen/snapshot", b"\xff\xd8")
    assert topics.is_stale(f"{PREFIX}/gate/old-rule/snapshot", b"\xff\xd8")


def test_discovery_configs_are_judged_by_their_state_topic() -> None:
    topics = owned(home_assistant={"enabled": True})
    assert topics.is_stale(*ha_config(f"{PREFIX}/gate/old-rule/state"))
    assert topics.is_stale(*ha_config(f"{PREFIX}/crane/pen/cow/count", "sensor"))
    assert not topics.is_stale(*ha_config(f"{PREFIX}/gate/in-pen/state"))
    assert not topics.is_stale(*ha_config(f"{PREFIX}/gate/pen/cow/count", "sensor"))
    # Another node's configs, another prefix's state topics, unreadable payloads: left alone.
    other_node = f"{HA}/binary_sensor/other_node/gate_old-rule_state/config"
    assert not topics.is_stale(other_node, ha_config(f"{PREFIX}/gate/old-rule/state")[1])
    assert not topics.is_stale(*ha_config("elsewhere/gate/old-rule/state"))
    assert not topics.is_stale(ha_config(f"{PREFIX}/gate/old-rule/state")[0], b"\xff{not json")
    assert not topics.is_stale(ha_config(f"{PREFIX}/gate/old-rule/state")[0], b"[1, 2]")
    # The configs are subscribed to only when discovery is on.
    assert not any(f.startswith(f"{HA}/") for f in owned().filters())
    assert f"{HA}/sensor/{NODE}/+/config" in topics.filters()


def test_a_shard_decides_for_its_own_streams_and_shard_0_for_the_process_topics() -> None:
    count = 3
    mine = {i: owned(Shard(i, count)) for i in range(count)}
    gate, dock = shard_of("gate", count), shard_of("dock", count)
    for index, topics in mine.items():
        # A rule removed from a stream: only the stream's shard clears it.
        assert topics.is_stale(f"{PREFIX}/gate/old-rule/state", b"ON") is (index == gate)
        assert topics.is_stale(f"{PREFIX}/dock/old-rule/state", b"ON") is (index == dock)
        # The current rules are nobody's to clear.
        assert not topics.is_stale(f"{PREFIX}/gate/in-pen/state", b"ON")
        assert not topics.is_stale(f"{PREFIX}/dock/close/state", b"ON")
        # A stream gone from the pipeline: the shard that would run it.
        gone = shard_of("crane", count)
        assert topics.is_stale(f"{PREFIX}/crane/status", b"streaming") is (index == gone)
        # Process topics: an unsharded run's and shards past the count, by shard 0.
        assert topics.is_stale(f"{PREFIX}/available", b"offline") is (index == 0)
        assert topics.is_stale(f"{PREFIX}/shards/{count}/available", b"offline") is (index == 0)
        assert not topics.is_stale(f"{PREFIX}/shards/{count - 1}/available", b"online")
        assert not topics.is_stale(f"{PREFIX}/shards/x/available", b"online")


# ---------------------------------------------------------------------------- real broker


def _publish_retained(port: int, messages: dict[str, bytes]) -> None:
    """Leave ``messages`` retained on the broker, as an earlier run would have."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="earlier-run")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload in messages.items():
            client.publish(topic, payload, qos=1, retain=True).wait_for_publish(timeout=5)
    finally:
        client.disconnect()
        client.loop_stop()


def _retained_now(port: int, topic_filter: str, settle_s: float = 0.5) -> dict[str, bytes]:
    """What a subscriber arriving now reads: ``{topic: payload}`` of the retained messages."""
    fresh = Subscriber(port, topic_filter)
    try:
        time.sleep(settle_s)  # the broker sends the retained messages right after its SUBACK
        return {m.topic: m.payload for m in fresh.messages if m.retain}
    finally:
        fresh.close()


EARLIER = {
    f"{PREFIX}/gate/old-rule/state": b"ON",
    f"{PREFIX}/gate/old-rule/snapshot": b"\xff\xd8jpeg",
    f"{PREFIX}/crane/status": b"streaming",
    f"{PREFIX}/crane/in-pen/state": b"OFF",
    f"{PREFIX}/gate/old-zone/cow/count": b"4",
    f"{PREFIX}/shards/1/available": b"offline",
}
"""What an earlier configuration of the pipeline left: every one stale now."""
KEPT = {
    f"{PREFIX}/gate/pen/sheep/count": b"2",  # a class of a zone still counted
    f"{PREFIX}/custom/notes": b"somebody else's",  # outside the layout
    "elsewhere/gate/old-rule/state": b"ON",  # another prefix
}


def _start(
    built_publisher: Callable[[PipelineConfig], MqttPublisher],
    port: int,
    tmp_path: Path,
    **extra: Any,
) -> MqttPublisher:
    keys = client_keys(port, tmp_path / "outbox.sqlite3", "streamseg-stale-test")
    publisher = built_publisher(pipeline(**keys, **extra))
    publisher.start()
    return publisher


@pytest.mark.integration
def test_the_first_connection_clears_what_an_earlier_configuration_left(
    mosquitto: Callable[..., Mosquitto],
    built_publisher: Callable[[PipelineConfig], MqttPublisher],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = mosquitto(persistence=True)  # retained messages survive the restart below
    old_config, old_payload = ha_config(f"{PREFIX}/gate/old-rule/state")
    live_config, live_payload = ha_config(f"{PREFIX}/gate/in-pen/state")
    _publish_retained(
        broker.port, {**EARLIER, **KEPT, old_config: old_payload, live_config: live_payload}
    )
    caplog.set_level(logging.INFO, logger="streamseg.outputs.mqtt.stale")

    publisher = _start(built_publisher, broker.port, tmp_path, home_assistant={"enabled": True})
    assert publisher.stale is not None
    assert publisher.stale.done.wait(timeout=10)
    publisher.on_rule_state("gate", "in-pen", True)

    now = _retained_now(broker.port, "#")
    assert not set(EARLIER) & set(now), "stale retained topics survived"
    assert old_config not in now
    for topic, payload in KEPT.items():
        assert now.get(topic) == payload
    # The pipeline's own topics: its current values, its live rule's entity.
    assert now[f"{PREFIX}/available"] == b"online"
    assert now[f"{PREFIX}/gate/in-pen/state"] == b"ON"
    assert live_config in now
    assert publisher.stale.cleared == sorted([*EARLIER, old_config])
    assert f"cleared {len(EARLIER) + 1} retained topic(s)" in caplog.text

    # Once per process: a reconnect does not subscribe again.
    _publish_retained(broker.port, {f"{PREFIX}/gate/later-rule/state": b"ON"})
    broker.restart()
    deadline = time.monotonic() + 10
    while not publisher.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(publisher.stale.window_s + 0.5)
    assert f"{PREFIX}/gate/later-rule/state" in _retained_now(broker.port, f"{PREFIX}/#")


@pytest.mark.integration
def test_clear_stale_retained_false_leaves_everything(
    mosquitto: Callable[..., Mosquitto],
    built_publisher: Callable[[PipelineConfig], MqttPublisher],
    tmp_path: Path,
) -> None:
    broker = mosquitto(persistence=False)
    _publish_retained(broker.port, EARLIER)
    publisher = _start(built_publisher, broker.port, tmp_path, clear_stale_retained=False)
    assert publisher.stale is None
    deadline = time.monotonic() + 10
    while not publisher.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # longer than a clearing would take
    now = _retained_now(broker.port, f"{PREFIX}/#")
    assert {topic: now.get(topic) for topic in EARLIER} == EARLIER

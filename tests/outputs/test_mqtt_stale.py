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
from helpers.mqtt_pipelines import TWO_STREAMS, two_streams

from streamseg.config import PipelineConfig, load_pipeline_text
from streamseg.outputs.mqtt import MqttPublisher, Topics, build_mqtt_publisher
from streamseg.outputs.mqtt.stale import OwnedTopics, owned_topics
from streamseg.runtime.shard import Shard, shard_config, shard_of

PREFIX = "streamseg/yard"
HA = "homeassistant"
NODE = "streamseg_yard"


pipeline = two_streams


def owned(shard: Shard | None = None, **mqtt: Any) -> OwnedTopics:
    config = pipeline(**mqtt)
    index = shard.index if shard is not None and shard.count > 1 else None
    if shard is not None:
        config = shard_config(config, shard)
    found = owned_topics(config, Topics(PREFIX, index), shard)
    assert found is not None
    return found


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


def test_discovery_turned_off_clears_the_entities_of_this_process_streams() -> None:
    topics = owned()  # discovery off: the configs an earlier run published are still sought
    assert f"{HA}/binary_sensor/{NODE}/+/config" in topics.filters()
    assert topics.is_stale(*ha_config(f"{PREFIX}/gate/in-pen/state"))
    assert topics.is_stale(*ha_config(f"{PREFIX}/crane/pen/cow/count", "sensor"))
    assert not topics.is_stale(*ha_config("elsewhere/gate/in-pen/state"))
    sharded = owned(Shard(1, 2))  # only the streams shard 1 decides for
    for stream in ("gate", "dock", "crane"):
        mine = shard_of(stream, 2) == 1
        assert sharded.is_stale(*ha_config(f"{PREFIX}/{stream}/in-pen/state")) is mine


def test_without_retain_every_retained_value_of_this_process_is_left_over() -> None:
    topics = owned(retain=False)
    assert topics.is_stale(f"{PREFIX}/gate/in-pen/state", b"ON")
    assert topics.is_stale(f"{PREFIX}/gate/pen/cow/count", b"3")
    assert topics.is_stale(f"{PREFIX}/available", b"online")
    assert not topics.is_stale(f"{PREFIX}/custom/notes", b"x")
    sharded = owned(Shard(1, 2), retain=False)
    assert sharded.is_stale(f"{PREFIX}/shards/1/available", b"online")
    assert not sharded.is_stale(f"{PREFIX}/shards/0/available", b"online")


def test_an_unnamed_pipeline_clears_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """Every pipeline without a name has the prefix streamseg/streamseg: another one's live
    topics would look like left-overs."""
    text = TWO_STREAMS.replace("name: yard\n", "").format(mqtt="{}")
    config = load_pipeline_text(text, env={})
    assert owned_topics(config, Topics("streamseg/streamseg")) is None
    named = load_pipeline_text(text.replace("mqtt: {}", "mqtt: {topic_prefix: site/a}"), env={})
    assert owned_topics(named, Topics("site/a")) is not None
    with caplog.at_level(logging.INFO, logger="streamseg.outputs.mqtt.build"):
        config = load_pipeline_text(
            text.replace("mqtt: {}", "mqtt: {outbox: {path: /tmp/unnamed-stale.sqlite3}}"),
            env={},
        )
        publisher = build_mqtt_publisher(config)
    assert publisher is not None and publisher.stale is None
    publisher.close()
    assert "the pipeline has no name" in caplog.text


# ---------------------------------------------------------------------------- real broker


def _publish_retained(
    port: int, messages: dict[str, bytes], login: tuple[str, str] | None = None
) -> None:
    """Leave ``messages`` retained on the broker, as an earlier run would have (``login``:
    ``(username, password)`` for a broker with users)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="earlier-run")
    if login is not None:
        client.username_pw_set(*login)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload in messages.items():
            client.publish(topic, payload, qos=1, retain=True).wait_for_publish(timeout=5)
    finally:
        client.disconnect()
        client.loop_stop()


def _retained_now(
    port: int,
    topic_filter: str,
    expect: set[str],
    settle_s: float = 0.3,
    login: tuple[str, str] | None = None,
) -> dict[str, bytes]:
    """What a subscriber arriving now reads: ``{topic: payload}`` of the retained messages,
    once the ``expect`` topics have come (a slow machine may take a while) and ``settle_s``
    more (the broker sends them in one burst). ``login``: ``(username, password)``."""
    username, password = login if login is not None else (None, None)
    fresh = Subscriber(port, topic_filter, username=username, password=password)
    try:
        try:
            fresh.wait_for(lambda s: {m.topic for m in s.messages if m.retain} >= expect)
        except TimeoutError:
            got = {m.topic for m in fresh.messages if m.retain}
            raise AssertionError(f"retained topics missing: {sorted(expect - got)}") from None
        time.sleep(settle_s)
        return {m.topic: m.payload for m in fresh.messages if m.retain}
    finally:
        fresh.close()


def _wait_connected(publisher: MqttPublisher, timeout: float = 10.0) -> None:
    """Wait (up to ``timeout`` s) until the publisher is connected."""
    deadline = time.monotonic() + timeout
    while not publisher.connected and time.monotonic() < deadline:
        time.sleep(0.01)


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
    # The publish is asynchronous: wait until the broker has the state before a fresh
    # subscriber reads the retained values (else it gets the state live, without the flag).
    state = f"{PREFIX}/gate/in-pen/state"
    watch = Subscriber(broker.port, state)
    try:
        publisher.on_rule_state("gate", "in-pen", True)
        watch.wait_for(lambda s: bool(s.on(state)))
    finally:
        watch.close()

    own = {f"{PREFIX}/available", state, live_config}
    now = _retained_now(broker.port, "#", set(KEPT) | own)
    assert not set(EARLIER) & set(now), "stale retained topics survived"
    assert old_config not in now
    for topic, payload in KEPT.items():
        assert now.get(topic) == payload
    # The pipeline's own topics: its current values, its live rule's entity.
    assert now[f"{PREFIX}/available"] == b"online"
    assert now[state] == b"ON"
    assert live_config in now
    assert publisher.stale.cleared == sorted([*EARLIER, old_config])
    assert f"cleared {len(EARLIER) + 1} retained topic(s)" in caplog.text

    # Once per process: a reconnect does not subscribe again.
    _publish_retained(broker.port, {f"{PREFIX}/gate/later-rule/state": b"ON"})
    broker.stop()
    deadline = time.monotonic() + 10
    while publisher.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not publisher.connected, "the publisher did not notice the broker stop"
    broker.start()
    _wait_connected(publisher)
    assert publisher.connected  # a reconnect, not the old connection
    time.sleep(publisher.stale.window_s + 0.5)
    later = f"{PREFIX}/gate/later-rule/state"
    assert later in _retained_now(broker.port, f"{PREFIX}/#", {later})


ACL_WITHOUT_CRANE_AND_SHARDS = f"""\
user earlier
topic readwrite #
user pub
topic read #
topic write {PREFIX}/available
topic write {PREFIX}/outbox
topic write {PREFIX}/events
topic write {PREFIX}/gate/#
topic write {PREFIX}/dock/#
"""
"""The publisher may write its own streams' topics and process topics, not those of the stream
``crane`` or of shards (three of :data:`EARLIER`); ``earlier`` is the run that left them."""


def _wait_for_log(caplog: pytest.LogCaptureFixture, text: str, timeout: float = 5.0) -> None:
    """Wait until a record's message contains ``text`` (the clearing logs after ``done``)."""
    deadline = time.monotonic() + timeout
    while not any(text in r.getMessage() for r in caplog.records):
        if time.monotonic() > deadline:
            raise AssertionError(f"no log record with {text!r}: {caplog.text}")
        time.sleep(0.02)


@pytest.mark.integration
def test_clears_the_broker_refuses_are_not_reported_as_cleared(
    mosquitto: Callable[..., Mosquitto],
    built_publisher: Callable[[PipelineConfig], MqttPublisher],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Regression: with MQTT 5 a broker whose ACL forbids writing a stale topic refuses its
    clear in the PUBACK (Not authorized), yet the cleaner logged "cleared 6 retained topic(s)"
    naming all six and listed them in ``cleared``: three kept their old values. Only the clears
    the broker took are counted now, and the refused ones are said."""
    broker = mosquitto(
        persistence=False,
        users={"earlier": "pw", "pub": "pw"},
        acl=ACL_WITHOUT_CRANE_AND_SHARDS,
    )
    _publish_retained(broker.port, EARLIER, login=("earlier", "pw"))
    caplog.set_level(logging.INFO, logger="streamseg.outputs.mqtt")
    publisher = _start(built_publisher, broker.port, tmp_path, username="pub", password="pw")
    assert publisher.stale is not None
    assert publisher.stale.done.wait(timeout=10)
    refused = sorted(
        [f"{PREFIX}/crane/status", f"{PREFIX}/crane/in-pen/state", f"{PREFIX}/shards/1/available"]
    )
    taken = sorted(set(EARLIER) - set(refused))
    _wait_for_log(caplog, "MQTT: cleared")
    [cleared] = [r for r in caplog.records if "MQTT: cleared" in r.getMessage()]
    assert f"cleared {len(taken)} retained topic(s)" in cleared.getMessage()
    assert not any(topic in cleared.getMessage() for topic in refused), cleared.getMessage()
    _wait_for_log(caplog, "refused to clear")  # logged just after
    [warning] = [r for r in caplog.records if "refused to clear" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert f"refused to clear {len(refused)} retained topic(s)" in warning.getMessage()
    assert "Not authorized" in warning.getMessage()
    assert all(topic in warning.getMessage() for topic in refused)
    assert publisher.stale.cleared == taken
    assert publisher.stale.refused == refused
    # What the broker holds agrees: the refused ones keep the earlier run's values.
    now = _retained_now(broker.port, "#", set(refused), login=("earlier", "pw"))
    assert {topic: now.get(topic) for topic in EARLIER} == {
        topic: (EARLIER[topic] if topic in refused else None) for topic in EARLIER
    }


@pytest.mark.integration
def test_what_the_publisher_announces_while_collecting_is_not_cleared(
    mosquitto: Callable[..., Mosquitto],
    built_publisher: Callable[[PipelineConfig], MqttPublisher],
    tmp_path: Path,
) -> None:
    """Regression (audit): an old config whose object id the new pipeline reuses (zone
    'pen_big', class 'cow' then; zone 'pen', class 'big_cow' now: both gate_pen_big_cow_count)
    was cleared after the publisher had announced the new one on its first count."""
    broker = mosquitto(persistence=False)
    topic = f"{HA}/sensor/{NODE}/gate_pen_big_cow_count/config"
    old = json.dumps({"state_topic": f"{PREFIX}/gate/pen_big/cow/count"}).encode()
    _publish_retained(broker.port, {topic: old})
    publisher = _start(built_publisher, broker.port, tmp_path, home_assistant={"enabled": True})
    assert publisher.stale is not None
    _wait_connected(publisher)
    publisher.on_zone_count("gate", "pen", "big_cow", 2)  # the first frame's count
    assert publisher.stale.done.wait(timeout=10)
    config = json.loads(_retained_now(broker.port, f"{HA}/#", {topic})[topic])
    assert config["state_topic"] == f"{PREFIX}/gate/pen/big_cow/count"
    assert topic not in publisher.stale.cleared


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
    _wait_connected(publisher)
    time.sleep(1.5)  # longer than a clearing would take
    now = _retained_now(broker.port, f"{PREFIX}/#", set(EARLIER))
    assert {topic: now.get(topic) for topic in EARLIER} == EARLIER


def test_snapshot_image_entities_are_judged_by_their_image_topic() -> None:
    """Home Assistant image entities name the snapshot topic as ``image_topic``: a rule gone,
    or snapshots turned off, clears its entity with the snapshot."""
    object_id = "gate_old-rule_snapshot"
    config = f"{HA}/image/{NODE}/{object_id}/config"

    def image(rule: str) -> bytes:
        return json.dumps({"image_topic": f"{PREFIX}/gate/{rule}/snapshot"}).encode()

    on = dataclasses.replace(owned(home_assistant={"enabled": True}), snapshots=True)
    assert f"{HA}/image/{NODE}/+/config" in on.filters()
    assert on.is_stale(config, image("old-rule"))
    assert not on.is_stale(config, image("in-pen"))
    off = owned(home_assistant={"enabled": True})  # snapshots off: every image entity goes
    assert off.is_stale(config, image("in-pen"))

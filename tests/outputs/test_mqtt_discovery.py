"""Home Assistant MQTT discovery: the config payloads, the YAML block, and a real mosquitto."""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2  # Home Assistant's template engine (installed with torch)
import pytest
from helpers.mosquitto import Mosquitto, Subscriber, client_keys
from helpers.mqtt_pipelines import RULE_PAIRS, TWO_STREAMS, two_streams

from streamseg.config import ConfigError, PipelineConfig, load_pipeline_text
from streamseg.outputs.mqtt import (
    MqttPublisher,
    Outbox,
    Topics,
    build_mqtt_publisher,
    discovery_for_pipeline,
)
from streamseg.outputs.mqtt.discovery import (
    HomeAssistantDiscovery,
    default_node_id,
    device_block,
    discovery_id,
    origin_block,
)
from streamseg.rules import RuleEngine
from streamseg.runtime.shard import Shard, shard_config, shard_of
from streamseg.types import SourceState

PREFIX = "streamseg/yard"
HA = "homeassistant"
SAFE_ID = re.compile(r"^[A-Za-z0-9_-]+$")


pipeline = two_streams


def make_discovery(sw_version: str | None = "1.2.3") -> HomeAssistantDiscovery:
    return HomeAssistantDiscovery(
        discovery_prefix=HA,
        node_id="streamseg_yard",
        topic_prefix=PREFIX,
        device=device_block("yard", "streamseg_yard", sw_version),
        origin=origin_block(sw_version),
    )


# ---------------------------------------------------------------------------- payloads


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("gate", "r1"), "gate_r1"),
        (("gate", "person-in-swing", "state"), "gate_person-in-swing_state"),
        (("pen 1", "traffic light"), "pen_1_traffic_light"),
        (("a.b", "c:d", "é"), "a_b_c_d__"),
        (("_$SYS",), "__SYS"),
        (("",), "_"),
    ],
)
def test_discovery_id_keeps_only_safe_characters(parts: tuple[str, ...], expected: str) -> None:
    assert discovery_id(*parts) == expected
    assert SAFE_ID.match(expected)


def test_rule_state_is_a_binary_sensor_on_the_state_topic() -> None:
    state_topic = Topics(PREFIX).rule_state("gate", "person-in-swing")
    message = make_discovery().rule_state("gate", "person-in-swing", state_topic)
    assert message.topic == (f"{HA}/binary_sensor/streamseg_yard/gate_person-in-swing_state/config")
    assert message.state_topic == state_topic
    assert json.loads(message.payload) == {
        "name": "gate person-in-swing",
        "unique_id": "streamseg_yard_gate_person-in-swing_state",
        "state_topic": f"{PREFIX}/gate/person-in-swing/state",
        "payload_on": "ON",
        "payload_off": "OFF",
        "availability": [
            {
                "topic": f"{PREFIX}/available",
                "payload_available": "online",
                "payload_not_available": "offline",
            },
            {
                "topic": f"{PREFIX}/gate/status",
                "value_template": "{{ 'online' if value == 'streaming' else 'offline' }}",
                "payload_available": "online",
                "payload_not_available": "offline",
            },
        ],
        "availability_mode": "all",
        "device": {
            "identifiers": ["streamseg_yard"],
            "name": "streamseg yard",
            "manufacturer": "streamseg",
            "model": "video analytics pipeline",
            "sw_version": "1.2.3",
        },
        "origin": {"name": "streamseg", "sw_version": "1.2.3"},
    }


def test_each_stream_has_a_status_sensor_available_while_its_process_is() -> None:
    """A camera that is down was invisible in Home Assistant (its entities only turned
    unavailable); the status sensor says which state it is in, for an automation to alert on."""
    state_topic = Topics(PREFIX).source_status("gate")
    message = make_discovery().source_status("gate", state_topic)
    assert message.topic == f"{HA}/sensor/streamseg_yard/gate_status/config"
    payload = json.loads(message.payload)
    assert payload["state_topic"] == f"{PREFIX}/gate/status"
    assert payload["device_class"] == "enum" and payload["entity_category"] == "diagnostic"
    assert payload["options"] == [state.value for state in SourceState]
    assert _availability(message.payload) == [f"{PREFIX}/available"]


def test_with_snapshots_each_rule_has_an_image_entity_on_its_snapshot_topic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    image_topic = Topics(PREFIX).snapshot("gate", "in-pen")
    message = make_discovery().snapshot("gate", "in-pen", image_topic)
    assert message.topic == f"{HA}/image/streamseg_yard/gate_in-pen_snapshot/config"
    payload = json.loads(message.payload)
    assert payload["image_topic"] == image_topic and payload["content_type"] == "image/jpeg"
    assert "state_topic" not in payload
    assert _availability(message.payload) == [f"{PREFIX}/available"]  # a past event's image
    # The publisher announces one per (stream, rule) when snapshots are on, none when off.
    for snapshots in (True, False):
        config = load_pipeline_text(
            TWO_STREAMS.format(
                mqtt=json.dumps({"home_assistant": {"enabled": True}, "snapshots": snapshots})
            ).replace("outputs:", f"outputs:\n  record: {{snapshots: {{dir: '{tmp_path}'}}}}"),
            filename="p.yaml",
            env={},
        )
        publisher = build_mqtt_publisher(config)
        assert publisher is not None
        images = [t for t in publisher._configs if t.startswith(f"{HA}/image/")]
        publisher.close()
        assert len(images) == (len(RULE_PAIRS) if snapshots else 0), images


def _availability(payload: bytes) -> list[str]:
    """The availability topics of a discovery config."""
    return [entry["topic"] for entry in json.loads(payload)["availability"]]


def test_a_streams_entities_are_available_only_while_it_streams() -> None:
    """Home Assistant renders the status entry's template (Jinja) on each status payload: only
    ``streaming`` makes the entity available, so a retained ON that a crashed run left is shown
    as unavailable while the camera is down, not as a current alert."""
    state_topic = Topics(PREFIX).rule_state("gate", "r")
    entry = json.loads(make_discovery().rule_state("gate", "r", state_topic).payload)[
        "availability"
    ][1]
    template = jinja2.Environment(autoescape=False).from_string(entry["value_template"])
    rendered = {state.value: template.render(value=state.value) for state in SourceState}
    assert rendered == {
        state.value: (
            entry["payload_available"]
            if state is SourceState.STREAMING
            else entry["payload_not_available"]
        )
        for state in SourceState
    }
    assert rendered["streaming"] == "online" and rendered["reconnecting"] == "offline"


def test_zone_count_is_a_measurement_sensor_with_safe_ids() -> None:
    """Class names are free text: the topic level and the discovery ids are both made safe."""
    state_topic = Topics(PREFIX).zone_count("gate", "pen-1", "traffic light/é")
    assert state_topic == f"{PREFIX}/gate/pen-1/traffic_light_é/count"
    message = make_discovery().zone_count("gate", "pen-1", "traffic light/é", state_topic)
    levels = message.topic.split("/")
    assert levels[:3] == [HA, "sensor", "streamseg_yard"] and levels[-1] == "config"
    assert len(levels) == 5 and levels[3] == "gate_pen-1_traffic_light___count"
    assert all(SAFE_ID.match(level) for level in levels)
    payload = json.loads(message.payload)
    assert payload["state_topic"] == state_topic
    assert payload["state_class"] == "measurement"
    assert payload["name"] == "gate pen-1 traffic light/é count"
    assert payload["unique_id"] == "streamseg_yard_gate_pen-1_traffic_light___count"
    assert [a["topic"] for a in payload["availability"]] == [
        f"{PREFIX}/available",
        f"{PREFIX}/gate/status",
    ]
    assert "payload_on" not in payload


def test_unknown_version_is_left_out() -> None:
    message = make_discovery(sw_version=None).rule_state("gate", "r1", f"{PREFIX}/gate/r1/state")
    payload = json.loads(message.payload)
    assert "sw_version" not in payload["device"] and "sw_version" not in payload["origin"]


def test_discovery_for_pipeline_lists_the_rules_that_run() -> None:
    """The (stream, rule) pairs are those the rule engine of each stream runs."""
    config = pipeline(home_assistant={"enabled": True})
    discovery = discovery_for_pipeline(config, PREFIX, sw_version="9.9")
    assert discovery is not None
    assert list(discovery.rules) == RULE_PAIRS
    engines = {s.id: RuleEngine.from_config(config, s.id).rule_ids for s in config.sources}
    assert sorted(discovery.rules) == sorted((s, r) for s, ids in engines.items() for r in ids)
    assert (discovery.discovery_prefix, discovery.node_id) == (HA, default_node_id("yard"))
    assert discovery.node_id == "streamseg_yard"
    assert discovery.device["identifiers"] == ["streamseg_yard"]
    assert discovery.device["sw_version"] == "9.9"

    custom = pipeline(
        home_assistant={"enabled": True, "discovery_prefix": "ha/x", "node_id": "north-1"}
    )
    discovery = discovery_for_pipeline(custom, "site/north")
    assert discovery is not None
    message = discovery.rule_state("gate", "in-pen", "site/north/gate/in-pen/state")
    assert message.topic == "ha/x/binary_sensor/north-1/gate_in-pen_state/config"
    assert _availability(message.payload) == ["site/north/available", "site/north/gate/status"]

    assert discovery_for_pipeline(pipeline(), PREFIX) is None  # disabled by default


def test_builder_wires_discovery(tmp_path: Path) -> None:
    outbox = {"path": str(tmp_path / "o.sqlite3")}
    publisher = build_mqtt_publisher(pipeline(outbox=outbox, home_assistant={"enabled": True}))
    assert publisher is not None
    try:
        assert publisher.discovery is not None
        assert publisher.discovery.topic_prefix == publisher.topics.prefix == PREFIX
        assert publisher.discovery.device["sw_version"]  # streamseg.__version__
    finally:
        publisher.close()
    publisher = build_mqtt_publisher(pipeline(outbox=outbox))
    assert publisher is not None and publisher.discovery is None
    publisher.close()


@pytest.mark.parametrize(
    ("prefix", "shard", "error"), [("site/x", None, "site/x"), (PREFIX, 1, "shards/1")]
)
def test_publisher_refuses_discovery_for_another_prefix_or_shard(
    tmp_path: Path, prefix: str, shard: int | None, error: str
) -> None:
    """Discovery built for ``streamseg/yard`` of an unsharded process names topics that a
    publisher on another prefix, or one shard of several, never keeps."""
    config = pipeline(home_assistant={"enabled": True})
    assert config.outputs.mqtt is not None
    with Outbox(tmp_path / "o.sqlite3") as outbox, pytest.raises(ValueError, match=error):
        MqttPublisher(
            config.outputs.mqtt,
            client_id="c",
            topic_prefix=prefix,
            outbox=outbox,
            discovery=make_discovery(),
            shard=shard,
        )


def test_shards_keep_their_own_availability(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One shard of several: its last will, outbox status, default client id and outbox file
    are its own, and its entities name its availability topic. One shard (or none): as before."""
    monkeypatch.chdir(tmp_path)
    config = pipeline(home_assistant={"enabled": True})
    one = shard_config(config, Shard(1, 2))
    publisher = build_mqtt_publisher(one, shard=Shard(1, 2))
    assert publisher is not None and publisher.discovery is not None
    try:
        assert publisher.topics.available == f"{PREFIX}/shards/1/available"
        assert publisher.topics.outbox == f"{PREFIX}/shards/1/outbox"
        assert publisher.topics.rule_state("gate", "r") == f"{PREFIX}/gate/r/state"
        assert publisher.discovery.availability_topic == publisher.topics.available
        message = publisher.discovery.rule_state("s", "r", publisher.topics.rule_state("s", "r"))
        assert _availability(message.payload)[0] == publisher.topics.available
        assert publisher.client_id.endswith("-shard1")
        assert Path(str(publisher.outbox.path)).name == "yard.shard1.outbox.sqlite3"
    finally:
        publisher.close()
    for shard in (None, Shard(0, 1)):
        publisher = build_mqtt_publisher(config, shard=shard)
        assert publisher is not None and publisher.discovery is not None
        try:
            assert publisher.topics.available == f"{PREFIX}/available"
            assert publisher.discovery.availability_topic == f"{PREFIX}/available"
            assert "shard" not in publisher.client_id
            assert Path(str(publisher.outbox.path)).name == "yard.outbox.sqlite3"
        finally:
            publisher.close()


def test_a_configured_client_id_is_made_per_shard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: every shard reads the same file, so an explicit ``client_id`` was one id for
    all of them, and the broker disconnected each shard whenever another connected (their
    availability flapped about once a second)."""
    monkeypatch.chdir(tmp_path)
    config = pipeline(client_id="yard-fixed")
    ids = []
    for index in (0, 1):
        publisher = build_mqtt_publisher(
            shard_config(config, Shard(index, 2)), shard=Shard(index, 2)
        )
        assert publisher is not None
        ids.append(publisher.client_id)
        publisher.close()
    assert ids == ["yard-fixed-shard0", "yard-fixed-shard1"]
    publisher = build_mqtt_publisher(config, shard=None)  # one process: the id as written
    assert publisher is not None and publisher.client_id == "yard-fixed"
    publisher.close()


def test_ids_that_collide_after_sanitizing_are_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Classes ``a.b`` and ``a_b`` would share one entity: the second gets none, loudly."""
    publisher = build_mqtt_publisher(
        pipeline(outbox={"path": str(tmp_path / "o.sqlite3")}, home_assistant={"enabled": True})
    )
    assert publisher is not None
    try:
        with caplog.at_level(logging.WARNING, logger="streamseg.outputs.mqtt"):
            publisher.on_zone_count("gate", "pen", "a.b", 1)
            publisher.on_zone_count("gate", "pen", "a_b", 1)
            publisher.on_zone_count("gate", "pen", "a_b", 2)  # warned once per topic
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 1
        assert f"{PREFIX}/gate/pen/a.b/count and {PREFIX}/gate/pen/a_b/count" in warnings[0]
    finally:
        publisher.close()


# ---------------------------------------------------------------------------- config


def test_disabled_by_default() -> None:
    config = pipeline()
    assert config.outputs.mqtt is not None
    settings = config.outputs.mqtt.home_assistant
    assert (settings.enabled, settings.discovery_prefix, settings.node_id) == (
        False,
        "homeassistant",
        None,
    )
    # An empty key takes the defaults.
    mqtt = load_pipeline_text(TWO_STREAMS.format(mqtt="{home_assistant: }")).outputs.mqtt
    assert mqtt is not None and mqtt.home_assistant.enabled is False


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (
            {"enabled": True, "prefix": "ha"},
            "outputs.mqtt.home_assistant.prefix: unknown key 'prefix'; expected one of: enabled, "
            "discovery_prefix, node_id",
        ),
        ({"enabled": True, "discovery_prefix": "ha/#"}, "it contains a wildcard"),
        ({"enabled": True, "discovery_prefix": ""}, "outputs.mqtt.home_assistant.discovery_prefix"),
        ({"enabled": True, "node_id": "north 1"}, "outputs.mqtt.home_assistant.node_id"),
        ({"enabled": "maybe"}, "outputs.mqtt.home_assistant.enabled"),
        (
            {"discovery_prefix": "ha"},
            "discovery_prefix set while enabled is false (the default); expected enabled: true",
        ),
    ],
)
def test_config_errors(block: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        pipeline(home_assistant=block)
    assert expected in str(info.value)
    assert "p.yaml:" in str(info.value)


def test_enabled_false_written_out_switches_discovery_off_keeping_its_keys() -> None:
    """Flipping ``enabled`` to false was a config error while the other keys stayed."""
    config = pipeline(
        home_assistant={"enabled": False, "discovery_prefix": "ha", "node_id": "north-1"}
    )
    assert discovery_for_pipeline(config, PREFIX) is None


def test_discovery_needs_retained_topics() -> None:
    with pytest.raises(ConfigError, match=r"home_assistant\.enabled needs retain: true"):
        pipeline(retain=False, home_assistant={"enabled": True})
    pipeline(retain=False, home_assistant={"enabled": False})


# ---------------------------------------------------------------------------- real broker


def _mqtt_keys(port: int, tmp_path: Path) -> dict[str, Any]:
    keys = client_keys(port, tmp_path / "outbox.sqlite3", "streamseg-discovery-test")
    return {**keys, "home_assistant": {"enabled": True}}


@pytest.fixture
def discovering_publisher(
    tmp_path: Path, built_publisher: Callable[[PipelineConfig], MqttPublisher]
) -> Callable[[int], MqttPublisher]:
    """Factory: a publisher of :data:`TWO_STREAMS` with discovery on; closed at teardown."""
    return lambda port: built_publisher(pipeline(**_mqtt_keys(port, tmp_path)))


def retained(port: int, topic_filter: str, topics: set[str]) -> dict[str, Any]:
    """What a subscriber that arrives now reads on ``topics``: ``{topic: Received}``, retained
    messages only."""
    fresh = Subscriber(port, topic_filter)
    try:
        fresh.wait_for(lambda s: {m.topic for m in s.messages if m.retain} >= topics)
    finally:
        fresh.close()
    return {m.topic: m for m in fresh.messages if m.retain}


def expected_configs() -> dict[str, str]:
    """Config topic -> state topic, for every rule of :data:`TWO_STREAMS` and the counts the test
    publishes."""
    discovery = make_discovery()
    topics = Topics(PREFIX)
    messages = [discovery.rule_state(s, r, topics.rule_state(s, r)) for s, r in RULE_PAIRS]
    messages += [
        discovery.zone_count("gate", "pen", name, topics.zone_count("gate", "pen", name))
        for name in ("cow", "traffic light")
    ]
    messages += [discovery.source_status(s, topics.source_status(s)) for s in ("gate", "dock")]
    return {m.topic: m.state_topic for m in messages}


@pytest.mark.integration
def test_home_assistant_finds_every_rule_and_count(
    mosquitto: Callable[..., Mosquitto],
    discovering_publisher: Callable[[int], MqttPublisher],
) -> None:
    broker = mosquitto(persistence=False)
    watch = Subscriber(broker.port, f"{PREFIX}/#")
    publisher = discovering_publisher(broker.port)
    publisher.start()
    watch.wait_for(lambda s: s.on(f"{PREFIX}/available") == [b"online"])
    # What the sources and the rule engines would say on the first frames.
    publisher.on_source_state("gate", SourceState.CONNECTING, SourceState.STREAMING)
    publisher.on_source_state("dock", SourceState.CONNECTING, SourceState.RECONNECTING)
    for stream_id, rule_id in RULE_PAIRS:
        publisher.on_rule_state(stream_id, rule_id, rule_id == "in-pen")
    publisher.on_zone_count("gate", "pen", "cow", 3)
    publisher.on_zone_count("gate", "pen", "traffic light", 1)
    publisher.on_zone_count("gate", "pen", "cow", 2)
    watch.wait_for(lambda s: s.on(f"{PREFIX}/gate/pen/cow/count")[-1:] == [b"2"])

    expected = expected_configs()
    configs = retained(broker.port, f"{HA}/#", set(expected))
    assert set(configs) == set(expected)  # nothing else under homeassistant/
    states = retained(broker.port, f"{PREFIX}/#", set(expected.values()))
    for topic, message in configs.items():
        assert message.qos == 1
        payload = json.loads(message.payload)
        component, node_id, object_id = topic.split("/")[1:4]
        assert SAFE_ID.match(node_id) and SAFE_ID.match(object_id)
        assert payload["unique_id"] == f"{node_id}_{object_id}"
        assert payload["device"]["identifiers"] == ["streamseg_yard"]
        assert payload["device"]["manufacturer"] == "streamseg"
        stream = payload["state_topic"].split("/")[2]
        status = payload["state_topic"].endswith("/status")
        assert _availability(message.payload) == [
            f"{PREFIX}/available",
            *([] if status else [f"{PREFIX}/{stream}/status"]),  # a status tells when it is down
        ]
        assert payload["availability_mode"] == "all"
        # The entity reads a topic the publisher really keeps retained, in the entity's terms.
        state_topic = payload["state_topic"]
        assert state_topic == expected[topic]
        value = states[state_topic].payload.decode()
        if component == "binary_sensor":
            assert value in (payload["payload_on"], payload["payload_off"])
        elif status:
            assert payload["device_class"] == "enum" and value in payload["options"]
        else:
            assert component == "sensor" and payload["state_class"] == "measurement"
            assert value.isdigit()
    assert states[f"{PREFIX}/gate/in-pen/state"].payload == b"ON"
    assert states[f"{PREFIX}/dock/close/state"].payload == b"OFF"
    assert states[f"{PREFIX}/gate/pen/traffic_light/count"].payload == b"1"

    # A broker that lost everything (no persistence) gets every config again on reconnect,
    # the counts announced at run time included.
    count = f"{PREFIX}/gate/pen/cow/count"
    sent = len(watch.on(count))
    broker.stop()
    watch.wait_for(lambda s: not publisher.connected, timeout=10)
    broker.start()
    # The reconnect sends the configs before the retained values (the broker keeps one
    # client's order): once the count is through again, so are they.
    watch.wait_for(lambda s: len(s.on(count)) > sent, timeout=10)
    assert set(retained(broker.port, f"{HA}/#", set(expected))) == set(expected)
    watch.close()


CHILD = """
import sys, time
from streamseg.config import load_pipeline
from streamseg.outputs.mqtt import build_mqtt_publisher

publisher = build_mqtt_publisher(load_pipeline(sys.argv[1]))
publisher.start()
while not publisher.connected:
    time.sleep(0.01)
publisher.on_zone_count("gate", "pen", "cow", 1)
time.sleep(60)
"""


@pytest.mark.integration
def test_entities_turn_unavailable_when_the_process_dies(
    tmp_path: Path, mosquitto: Callable[..., Mosquitto]
) -> None:
    """SIGKILL (no close, no DISCONNECT): the broker sends the last will on the availability
    topic that every discovery config names."""
    broker = mosquitto()
    config = tmp_path / "p.yaml"
    config.write_text(TWO_STREAMS.format(mqtt=json.dumps(_mqtt_keys(broker.port, tmp_path))))
    count_config = f"{HA}/sensor/streamseg_yard/gate_pen_cow_count/config"
    sub = Subscriber(broker.port, f"{HA}/#")
    stderr = (tmp_path / "child.stderr").open("w+")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(config)], stdout=subprocess.DEVNULL, stderr=stderr
    )
    try:
        try:
            sub.wait_for(lambda s: bool(s.on(count_config)), timeout=30)
        except TimeoutError:
            stderr.seek(0)
            pytest.fail(
                f"no discovery config from the child (exit {child.poll()}): {stderr.read()}"
            )
        availability = {_availability(m.payload)[0] for m in sub.messages}
        assert availability == {f"{PREFIX}/available"}
        watch = Subscriber(broker.port, f"{PREFIX}/available")
        watch.wait_for(lambda s: s.on(f"{PREFIX}/available")[-1:] == [b"online"])
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
        watch.wait_for(lambda s: s.on(f"{PREFIX}/available")[-1:] == [b"offline"], timeout=5)
        # Retained: a Home Assistant that starts later reads the configs and "offline" too.
        late = retained(broker.port, "#", {count_config, f"{PREFIX}/available"})
        assert late[f"{PREFIX}/available"].payload == b"offline"
        watch.close()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        stderr.close()
        sub.close()


SHARD_CHILD = """
import sys, time
from streamseg.config import load_pipeline
from streamseg.outputs.mqtt import build_mqtt_publisher
from streamseg.runtime.shard import parse_shard, shard_config

shard = parse_shard(sys.argv[2])
publisher = build_mqtt_publisher(shard_config(load_pipeline(sys.argv[1]), shard), shard=shard)
publisher.start()
while not publisher.connected:
    time.sleep(0.01)
time.sleep(60)
"""


@pytest.mark.integration
def test_one_shard_dying_leaves_the_other_shards_entities_available(
    tmp_path: Path, mosquitto: Callable[..., Mosquitto]
) -> None:
    """Two shards of one pipeline under one prefix (of ``--shard i/3``, the two that own a
    stream), each with its own default client id and outbox. SIGKILL of one: its entities turn
    unavailable, the other's stay available."""
    broker = mosquitto()
    keys = _mqtt_keys(broker.port, tmp_path)
    del keys["client_id"], keys["outbox"]  # the defaults, which must differ per shard
    config = tmp_path / "p.yaml"
    config.write_text(TWO_STREAMS.format(mqtt=json.dumps(keys)))
    owner = {stream: shard_of(stream, 3) for stream in ("gate", "dock")}
    assert owner["gate"] != owner["dock"]  # one stream per shard
    sub = Subscriber(broker.port, f"{HA}/#")
    watch = Subscriber(broker.port, f"{PREFIX}/shards/+/available")
    children = {
        index: subprocess.Popen(
            [sys.executable, "-c", SHARD_CHILD, str(config), f"{index}/3"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"shard{index}.stderr").open("w"),
        )
        for index in owner.values()
    }
    try:
        configs = set(expected_rule_configs())
        sub.wait_for(lambda s: {m.topic for m in s.messages} >= configs, timeout=30)
        for message in sub.messages:
            payload = json.loads(message.payload)
            stream = payload["state_topic"].split("/")[2]
            status = payload["state_topic"].endswith("/status")
            assert _availability(message.payload) == [
                f"{PREFIX}/shards/{owner[stream]}/available",
                *([] if status else [f"{PREFIX}/{stream}/status"]),
            ]
        for index in children:
            topic = f"{PREFIX}/shards/{index}/available"
            watch.wait_for(lambda s, t=topic: s.on(t)[-1:] == [b"online"])
        victim, survivor = owner["gate"], owner["dock"]
        children[victim].send_signal(signal.SIGKILL)
        assert children[victim].wait(timeout=10) == -signal.SIGKILL
        dead, alive = (f"{PREFIX}/shards/{i}/available" for i in (victim, survivor))
        watch.wait_for(lambda s: s.on(dead)[-1:] == [b"offline"], timeout=5)
        late = retained(broker.port, f"{PREFIX}/#", {dead, alive})
        assert late[dead].payload == b"offline" and late[alive].payload == b"online"
        assert children[survivor].poll() is None
        assert f"{PREFIX}/available" not in late  # no shared topic that one will could clear
    finally:
        for child in children.values():
            if child.poll() is None:
                child.kill()
                child.wait(timeout=10)
        sub.close()
        watch.close()


def expected_rule_configs() -> dict[str, str]:
    """Config topic -> state topic of every (stream, rule) of :data:`TWO_STREAMS`."""
    discovery = make_discovery()
    topics = Topics(PREFIX)
    messages = [discovery.rule_state(s, r, topics.rule_state(s, r)) for s, r in RULE_PAIRS]
    return {m.topic: m.state_topic for m in messages}

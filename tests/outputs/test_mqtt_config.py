"""The ``outputs.mqtt`` section, topic names and the builder (no broker needed)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from streamseg.config import ConfigError, PipelineConfig, load_pipeline_text
from streamseg.config.mqtt import MqttOutputConfig, check_topic_prefix
from streamseg.outputs.mqtt import (
    MqttPublisher,
    Outbox,
    Topics,
    build_mqtt_publisher,
    default_client_id,
    topic_level,
)
from streamseg.rules import Event, new_event_id

TLS_DIR = Path(__file__).parent / "mqtt_tls"


def _pipeline(mqtt_yaml: str, env: dict[str, str] | None = None, name: str = "yard") -> str:
    return f"name: {name}\nsources: [{{id: gate, type: file, path: x.mp4}}]\noutputs:\n" + "".join(
        f"  {line}\n" for line in mqtt_yaml.strip("\n").splitlines()
    )


def _load(mqtt_yaml: str, env: dict[str, str] | None = None) -> MqttOutputConfig:
    config = load_pipeline_text(_pipeline(mqtt_yaml), filename="p.yaml", env=env or {})
    assert config.outputs.mqtt is not None
    return config.outputs.mqtt


def test_defaults() -> None:
    mqtt = _load("mqtt: {}")
    assert (mqtt.host, mqtt.resolved_port(), mqtt.transport) == ("localhost", 1883, "tcp")
    assert (mqtt.qos, mqtt.state_qos, mqtt.retain, mqtt.snapshots) == (1, 1, True, False)
    assert mqtt.client_id is None and mqtt.topic_prefix is None and mqtt.outbox.path is None
    assert (mqtt.outbox.max_events, mqtt.outbox.synchronous) == (100_000, "full")
    assert (mqtt.max_payload_bytes, mqtt.max_snapshot_bytes) == (262_144, 1_000_000)
    assert not mqtt.tls.enabled
    assert mqtt.protocol == "5"
    assert load_pipeline_text(_pipeline("jsonl: {}")).outputs.mqtt is None


@pytest.mark.parametrize(("written", "protocol"), [("5", "5"), ("'5'", "5"), ("3.1.1", "3.1.1")])
def test_protocol_as_written_in_yaml(written: str, protocol: str) -> None:
    """``protocol: 5`` is a YAML number, ``protocol: 3.1.1`` a string: both are versions."""
    assert _load(f"mqtt: {{protocol: {written}}}").protocol == protocol


@pytest.mark.parametrize(
    ("mqtt_yaml", "port"),
    [
        ("mqtt: {tls: {enabled: true}}", 8883),
        ("mqtt: {transport: websockets}", 80),
        ("mqtt: {transport: websockets, tls: {enabled: true}}", 443),
        ("mqtt: {port: 1884, tls: {enabled: true}}", 1884),
    ],
)
def test_default_port_follows_transport_and_tls(mqtt_yaml: str, port: int) -> None:
    assert _load(mqtt_yaml).resolved_port() == port


@pytest.mark.parametrize(
    ("mqtt_yaml", "expected"),
    [
        ("mqtt: {qos: 0}", "p.yaml:4:15: outputs.mqtt.qos: got 0, expected a number >= 1"),
        ("mqtt: {qos: 3}", "outputs.mqtt.qos: got 3, expected a number <= 2"),
        ("mqtt: {port: 70000}", "outputs.mqtt.port: got 70000, expected a number <= 65535"),
        ("mqtt: {transport: udp}", "outputs.mqtt.transport: got 'udp', expected one of 'tcp'"),
        ("mqtt: {topic_prefix: a/#}", "it contains a wildcard"),
        ("mqtt: {topic_prefix: /a}", "it has an empty level"),
        ("mqtt: {topic_prefix: $SYS/x}", "it starts with $"),
        ("mqtt: {outbox: {max_events: 0}}", "outputs.mqtt.outbox.max_events: got 0"),
        ("mqtt: {outbox: {synchronous: off}}", "outputs.mqtt.outbox.synchronous"),
        ("mqtt: {keepalive_s: 0}", "outputs.mqtt.keepalive_s: got 0, expected a number >= 1"),
        (
            "mqtt: {reconnect: {min_delay_s: 5, max_delay_s: 1}}",
            "outputs.mqtt.reconnect.max_delay_s: got 1, expected max_delay_s >= min_delay_s (5)",
        ),
        (
            "mqtt: {tls: {ca_certs: ca.pem}}",
            "outputs.mqtt.tls: got {'ca_certs': 'ca.pem'}, ca_certs set while enabled is false "
            "(the default); expected enabled: true",
        ),
        (
            "mqtt: {tls: {enabled: true, keyfile: k.pem}}",
            "keyfile is set without certfile",
        ),
        ("mqtt: {hots: broker}", "unknown key 'hots' (did you mean 'host'?)"),
        ("mqtt: {retain: 2}", "outputs.mqtt.retain"),
        ("mqtt: {protocol: 4}", "outputs.mqtt.protocol: got 4, expected one of '5', '3.1.1'"),
        ("mqtt: {protocol: 3.1}", "outputs.mqtt.protocol: got 3.1"),
        ("mqtt: {max_payload_bytes: 0}", "outputs.mqtt.max_payload_bytes: got 0"),
        # Regression (audit): paho drops a PUBREC's reason code, so at QoS 2 a refused event
        # left the outbox as delivered.
        ("mqtt: {qos: 2}", "outputs.mqtt.qos: got 2, qos 2 would hide a broker's refusal"),
        (
            "mqtt: {max_snapshot_bytes: 300000000}",
            "outputs.mqtt.max_snapshot_bytes: got 300000000, expected a number <= 268369916",
        ),
    ],
)
def test_errors_point_into_the_file(mqtt_yaml: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(mqtt_yaml)
    assert expected in str(info.value)


def test_password_from_env_never_shows() -> None:
    secret = "hunter2-very-secret"
    mqtt = _load("mqtt: {username: alice, password: '${MQTT_PASSWORD}'}", {"MQTT_PASSWORD": secret})
    assert mqtt.password is not None and mqtt.password.get_secret_value() == secret
    assert secret not in repr(mqtt) and secret not in str(mqtt.model_dump())
    # A password without a user name is refused, and the message does not repeat it.
    with pytest.raises(ConfigError) as info:
        _load("mqtt: {password: '${MQTT_PASSWORD}', qos: 9}", {"MQTT_PASSWORD": secret})
    text = str(info.value)
    assert "outputs.mqtt.username: a password is set without a username" in text
    assert secret not in text
    # A literal numeric password is read as text.
    mqtt = _load("mqtt: {username: bob, password: 1234}")
    assert mqtt.password is not None and mqtt.password.get_secret_value() == "1234"


@pytest.mark.parametrize(
    ("prefix", "problem"),
    [
        ("streamseg/yard", ""),
        ("a", ""),
        ("a+b", "wildcard"),
        ("a//b", "empty level"),
        ("a/", "empty level"),
        ("$x", "starts with $"),
        ("a\x00b", "NUL"),
    ],
)
def test_check_topic_prefix(prefix: str, problem: str) -> None:
    result = check_topic_prefix(prefix)
    assert (problem in result) if problem else result == ""


@pytest.mark.parametrize(
    ("name", "level"),
    [
        ("gate", "gate"),
        ("traffic light", "traffic_light"),
        ("a/b", "a_b"),
        ("a+b#c", "a_b_c"),
        ("", "_"),
        ("$SYS", "_$SYS"),
        ("tab\there", "tab_here"),
        ("zone-1_é", "zone-1_é"),
    ],
)
def test_topic_level(name: str, level: str) -> None:
    assert topic_level(name) == level


def test_topics() -> None:
    topics = Topics("streamseg/yard")
    assert topics.available == "streamseg/yard/available"
    assert topics.events == "streamseg/yard/events"
    assert topics.outbox == "streamseg/yard/outbox"
    assert topics.rule_state("gate", "r/1") == "streamseg/yard/gate/r_1/state"
    assert topics.snapshot("gate", "r1") == "streamseg/yard/gate/r1/snapshot"
    assert topics.source_status("gate") == "streamseg/yard/gate/status"
    assert topics.zone_count("gate", "pen 2", "cow") == "streamseg/yard/gate/pen_2/cow/count"


def test_default_client_id() -> None:
    assert default_client_id("yard", "edge-01.local") == "streamseg-yard-edge-01-local"
    assert default_client_id("yard", "") == "streamseg-yard-host"


def test_builder_resolves_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("socket.gethostname", lambda: "box7")
    assert build_mqtt_publisher(load_pipeline_text(_pipeline("jsonl: {}"))) is None
    publisher = build_mqtt_publisher(load_pipeline_text(_pipeline("mqtt: {}")))
    assert publisher is not None
    try:
        assert publisher.client_id == "streamseg-yard-box7"
        assert publisher.topics.prefix == "streamseg/yard"
        assert publisher.outbox.path == Path("out/yard.outbox.sqlite3")
        assert (tmp_path / "out" / "yard.outbox.sqlite3").exists()
    finally:
        publisher.close()
    explicit = build_mqtt_publisher(
        load_pipeline_text(
            _pipeline("mqtt: {client_id: cam, topic_prefix: site/a, outbox: {path: state/o.db}}")
        )
    )
    assert explicit is not None
    assert (explicit.client_id, explicit.topics.prefix) == ("cam", "site/a")
    assert explicit.outbox.path == Path("state/o.db")
    explicit.close()


def test_builder_warns_about_waiting_events_for_another_topic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Events a renamed pipeline's earlier run stored go out on the old topic: said, not
    silent."""
    monkeypatch.chdir(tmp_path)
    outbox = Outbox(tmp_path / "o.db")
    outbox.add("streamseg/oldname/events", b"{}", 1)
    outbox.add("streamseg/oldname/events", b"{}", 1)
    outbox.add("streamseg/yard/events", b"{}", 1)
    outbox.close()
    caplog.set_level(logging.WARNING, logger="streamseg.outputs.mqtt")
    publisher = build_mqtt_publisher(
        load_pipeline_text(_pipeline(f"mqtt: {{outbox: {{path: '{tmp_path / 'o.db'}'}}}}"))
    )
    assert publisher is not None
    publisher.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "other topics than streamseg/yard/events (2 on streamseg/oldname/events)" in warnings[0]


def test_builder_reports_unreadable_tls_files(tmp_path: Path) -> None:
    yaml_text = _pipeline(
        f"mqtt: {{tls: {{enabled: true, ca_certs: {tmp_path}/missing.pem}}, "
        f"outbox: {{path: {tmp_path}/o.sqlite3}}}}"
    )
    with pytest.raises(ValueError, match=r"outputs\.mqtt\.tls: cannot load ca_certs=.*missing"):
        build_mqtt_publisher(load_pipeline_text(yaml_text))
    Outbox(tmp_path / "o.sqlite3").close()  # the builder closed the outbox it opened
    ok = _pipeline(
        f"mqtt: {{tls: {{enabled: true, ca_certs: {TLS_DIR}/ca.crt}}, "
        f"outbox: {{path: {tmp_path}/o.sqlite3}}}}"
    )
    publisher = build_mqtt_publisher(load_pipeline_text(ok))
    assert publisher is not None
    publisher.close()


def test_an_encrypted_client_key_needs_its_password_and_never_prompts(tmp_path: Path) -> None:
    """Without keyfile_password, OpenSSL used to ask for the key's password on the terminal: a
    service has none (an obscure failure), a container with a terminal hangs at start."""
    client = (
        f"certfile: {TLS_DIR}/client.crt, keyfile: {TLS_DIR}/client-encrypted.key, "
        f"ca_certs: {TLS_DIR}/ca.crt"
    )

    def pipeline(password: str = "") -> PipelineConfig:
        return load_pipeline_text(
            _pipeline(
                f"mqtt: {{tls: {{enabled: true, {client}{password}}}, "
                f"outbox: {{path: {tmp_path}/o.sqlite3}}}}"
            ),
            env={"KEY_PASSWORD": "streamseg-test", "WRONG": "nope"},
        )

    with pytest.raises(ValueError, match=r"encrypted: set outputs\.mqtt\.tls\.keyfile_password"):
        build_mqtt_publisher(pipeline())
    with pytest.raises(ValueError, match=r"cannot load .*client-encrypted\.key.*keyfile_password"):
        build_mqtt_publisher(pipeline(', keyfile_password: "${WRONG}"'))
    publisher = build_mqtt_publisher(pipeline(', keyfile_password: "${KEY_PASSWORD}"'))
    assert publisher is not None
    assert "streamseg-test" not in repr(publisher.config)  # a secret, never printed
    publisher.close()


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        ("{enabled: true, keyfile_password: x}", "keyfile_password is set without certfile"),
        ("{certfile: c.pem, keyfile_password: x}", "keyfile_password set while"),
    ],
)
def test_keyfile_password_needs_a_client_certificate_and_tls(tls: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_pipeline_text(_pipeline(f"mqtt: {{tls: {tls}}}"))


def test_tls_switched_off_in_writing_keeps_its_files() -> None:
    """Files without ``enabled`` are an error (they look like TLS meant on, and the connection
    would be plain text); ``enabled: false`` written out is the switch, and it was an error."""
    config = load_pipeline_text(
        _pipeline("mqtt: {tls: {enabled: false, ca_certs: ca.pem, certfile: c.pem}}")
    )
    assert config.outputs.mqtt is not None and not config.outputs.mqtt.tls.enabled


def _event(**overrides: object) -> Event:
    fields: dict[str, object] = {
        "event_id": new_event_id(),
        "type": "start",
        "rule_id": "r1",
        "rule_kind": "inside",
        "stream_id": "gate",
        "started_at": 1.0,
        "started_pts": 0.0,
        "frame_pts": 0.0,
        "frame_index": 0,
    }
    fields.update(overrides)
    return Event(**fields)  # type: ignore[arg-type]


def test_metrics_live_on_the_given_registry(tmp_path: Path) -> None:
    config = MqttOutputConfig()
    registry = CollectorRegistry()
    first = MqttPublisher(
        config,
        client_id="a",
        topic_prefix="p",
        outbox=Outbox(tmp_path / "a.sqlite3"),
        registry=registry,
    )
    # A second publisher with its own (private) registry does not clash.
    second = MqttPublisher(
        config, client_id="b", topic_prefix="p", outbox=Outbox(tmp_path / "b.sqlite3")
    )
    first.on_event(_event())
    first.on_event(_event(type="end", seq=1, ended_at=2.0))
    assert registry.get_sample_value("streamseg_mqtt_outbox_depth") == 2
    assert registry.get_sample_value("streamseg_mqtt_connected") == 0
    assert second.metrics.registry is not registry
    first.close(timeout=0)
    second.close(timeout=0)


def test_on_event_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    publisher = MqttPublisher(
        MqttOutputConfig(), client_id="a", topic_prefix="p", outbox=Outbox(tmp_path / "o.db")
    )
    publisher.close()  # closes the outbox: a later event cannot be stored
    event = _event()
    with caplog.at_level(logging.ERROR):
        publisher.on_event(event)
    registry = publisher.metrics.registry
    assert (
        registry.get_sample_value("streamseg_mqtt_events_refused_total", {"reason": "error"}) == 1
    )
    assert event.event_id in caplog.text and "could not store" in caplog.text


def test_readme_example_validates() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### MQTT alerts", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    text = example + "sources: [{id: gate, type: file, path: x.mp4}]\n"
    config = load_pipeline_text(text, env={"MQTT_PASSWORD": "pw", "STATE_DIR": "/var/lib/s"})
    mqtt = config.outputs.mqtt
    assert mqtt is not None and mqtt.tls.enabled and mqtt.snapshots
    assert mqtt.outbox.path == "/var/lib/s/yard-north.outbox.sqlite3"


def test_snapshots_need_the_recorder_to_write_them() -> None:
    """The publisher sends the JPEGs outputs.record.snapshots writes: without it, nothing."""
    with pytest.raises(ConfigError) as info:
        _load("mqtt:\n  host: broker\n  snapshots: true\n")
    issue = info.value.issues[0]
    assert (issue.line, issue.key_path) == (6, "outputs.mqtt.snapshots")
    assert "outputs.record.snapshots" in issue.message
    mqtt = _load(
        "mqtt:\n  host: broker\n  snapshots: true\nrecord:\n  snapshots: {dir: /tmp/snaps}\n"
    )
    assert mqtt.snapshots
    disabled = "record:\n  snapshots: {dir: /tmp/snaps, enabled: false}\n"
    with pytest.raises(ConfigError):
        _load("mqtt:\n  host: broker\n  snapshots: true\n" + disabled)


def test_qos_2_with_mqtt_3_1_1() -> None:
    # No acknowledgement of MQTT 3.1.1 says whether the broker took an event: nothing to hide.
    assert _load("mqtt: {qos: 2, protocol: 3.1.1}").qos == 2

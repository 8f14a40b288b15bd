"""Connection settings against a real mosquitto: credentials, TLS, websockets."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.mosquitto import BrokerTls, Mosquitto, Subscriber, free_port

from streamseg.config import load_pipeline_text
from streamseg.outputs.mqtt import MqttPublisher, build_mqtt_publisher
from streamseg.rules import Event, new_event_id

pytestmark = pytest.mark.integration

PREFIX = "streamseg/site"
TLS_DIR = Path(__file__).parent / "mqtt_tls"
PASSWORD = "s3cret-Pa55word"


def build(tmp_path: Path, mqtt: dict[str, Any], env: dict[str, str] | None = None) -> MqttPublisher:
    mqtt = {
        "host": "127.0.0.1",
        "reconnect": {"min_delay_s": 0.05, "max_delay_s": 0.2},
        "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
        **mqtt,
    }
    text = (
        "name: site\nsources: [{id: gate, type: file, path: x.mp4}]\n"
        f"outputs: {{mqtt: {json.dumps(mqtt)}}}\n"
    )
    publisher = build_mqtt_publisher(load_pipeline_text(text, env=env or {}))
    assert publisher is not None
    return publisher


def send_one_event(publisher: MqttPublisher, sub: Subscriber) -> None:
    """Start the publisher, raise one event, and check it arrives and leaves the outbox."""
    event = Event(new_event_id(), "start", "r1", "near", "gate", 1.0, 0.0, 0.0, 0)
    publisher.start()
    publisher.on_event(event)
    sub.wait_for(
        lambda s: [json.loads(p)["event_id"] for p in s.on(f"{PREFIX}/events")] == [event.event_id]
    )
    sub.wait_for(lambda s: publisher.outbox.depth == 0)
    publisher.close(timeout=2)


def first_failure_errors(
    publisher: MqttPublisher, caplog: pytest.LogCaptureFixture, line: str = "cannot reach"
) -> list[str]:
    """Start ``publisher``, wait (10 s at most) for its first log line containing ``line``,
    close it; the ERROR messages logged meanwhile."""
    with caplog.at_level(logging.WARNING, logger="streamseg.outputs.mqtt"):
        publisher.start()
        deadline = time.monotonic() + 10
        while line not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.02)
        publisher.close(timeout=0)
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_username_and_password_from_the_environment(
    tmp_path: Path,
    mosquitto: Callable[..., Mosquitto],
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = mosquitto(users={"alice": PASSWORD, "ops": "ops-pw"})
    sub = Subscriber(broker.port, f"{PREFIX}/#", username="ops", password="ops-pw")
    mqtt = {"port": broker.port, "username": "alice", "password": "${MQTT_PASSWORD}"}
    with caplog.at_level(logging.DEBUG):
        send_one_event(build(tmp_path, mqtt, {"MQTT_PASSWORD": PASSWORD}), sub)

        # A wrong password: refused, said once at ERROR, retried; the password never logged.
        caplog.clear()
        wrong = build(tmp_path, mqtt, {"MQTT_PASSWORD": "not-the-password"})
        wrong.start()
        sub.wait_for(lambda s: "refused the connection" in caplog.text)
        sub.wait_for(lambda s: caplog.text.count("refused the connection") >= 2)
        assert not wrong.connected
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "Not authorized" in errors[0].getMessage()
        wrong.close(timeout=0)
    assert PASSWORD not in caplog.text and "not-the-password" not in caplog.text
    sub.close()


def test_tls_with_a_private_ca(tmp_path: Path, mosquitto: Callable[..., Mosquitto]) -> None:
    tls = BrokerTls(TLS_DIR / "ca.crt", TLS_DIR / "server.crt", TLS_DIR / "server.key")
    broker = mosquitto(tls=tls)
    sub = Subscriber(broker.port, f"{PREFIX}/#", tls_ca=TLS_DIR / "ca.crt")
    mqtt = {"port": broker.port, "tls": {"enabled": True, "ca_certs": str(TLS_DIR / "ca.crt")}}
    send_one_event(build(tmp_path, mqtt), sub)
    sub.close()


def test_websockets(tmp_path: Path, mosquitto: Callable[..., Mosquitto]) -> None:
    broker = mosquitto(websockets_port=free_port())
    sub = Subscriber(broker.port, f"{PREFIX}/#")
    mqtt = {"port": broker.websockets_port, "transport": "websockets", "ws_path": "/mqtt"}
    send_one_event(build(tmp_path, mqtt), sub)
    sub.close()


def test_a_certificate_the_client_cannot_verify_is_named(
    tmp_path: Path, mosquitto: Callable[..., Mosquitto], caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: a TLS verification failure (or a DNS typo) was logged as "cannot reach the
    broker" with no reason, even at DEBUG, like a network outage."""
    tls = BrokerTls(TLS_DIR / "ca.crt", TLS_DIR / "server.crt", TLS_DIR / "server.key")
    broker = mosquitto(tls=tls)
    publisher = build(tmp_path, {"port": broker.port, "tls": {"enabled": True}})  # system CAs
    errors = first_failure_errors(publisher, caplog)
    assert len(errors) == 1 and "CERTIFICATE_VERIFY_FAILED" in errors[0], caplog.text


def test_tls_to_a_plain_listener_is_named_as_such(
    tmp_path: Path, mosquitto: Callable[..., Mosquitto], caplog: pytest.LogCaptureFixture
) -> None:
    """Audit: tls enabled against a plain MQTT port (1883 for 8883) was a WARNING "Connection
    reset by peer", like a network outage; it is a configuration error."""
    broker = mosquitto()
    mqtt = {"port": broker.port, "tls": {"enabled": True, "ca_certs": str(TLS_DIR / "ca.crt")}}
    publisher = build(tmp_path, mqtt)
    errors = first_failure_errors(publisher, caplog)
    assert len(errors) == 1, caplog.text
    assert f"is port {broker.port} a TLS listener?" in errors[0]


def test_a_refused_login_is_said_after_the_broker_was_unreachable(
    tmp_path: Path, mosquitto: Callable[..., Mosquitto], caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: "Not authorized" was logged only for the first failed attempt, so when the
    broker came up after streamseg (compose, Kubernetes) only "cannot reach" was ever said."""
    port = free_port()
    publisher = build(tmp_path, {"port": port, "username": "alice", "password": "wrong"})
    with caplog.at_level(logging.WARNING, logger="streamseg.outputs.mqtt"):
        publisher.start()
        deadline = time.monotonic() + 10
        while "cannot reach" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.02)
        mosquitto(users={"alice": PASSWORD}, port=port)
        while "Not authorized" not in caplog.text and time.monotonic() < deadline + 10:
            time.sleep(0.02)
        publisher.close(timeout=0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("cannot reach" in w and "Connection refused" in w for w in warnings)
    assert len(errors) == 1 and "Not authorized" in errors[0]


def test_a_broker_without_mqtt_5_is_named_with_the_setting_to_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker that only speaks MQTT 3.1.1 (mosquitto before 1.6, Azure IoT Hub) answers the
    default MQTT 5 CONNECT with "unacceptable protocol version". No such broker can run here
    (mosquitto 2 speaks both), so a socket answers as one does: a 3.1.1 CONNACK with return
    code 1, then it closes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]

    def answer() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                with conn:
                    conn.recv(1024)
                    conn.sendall(b"\x20\x02\x00\x01")

    threading.Thread(target=answer, daemon=True).start()
    errors = first_failure_errors(build(tmp_path, {"port": port}), caplog, "refused the connection")
    server.close()
    assert errors and "Unsupported protocol version" in errors[0], caplog.text
    assert "set outputs.mqtt.protocol: 3.1.1" in errors[0]

"""``streamseg alert-test`` against a real mosquitto: a test occurrence reaches the events topic,
a refusing ACL and an unreachable broker are errors, and a running pipeline is left alone."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.mosquitto import Mosquitto, Subscriber, client_keys, free_port
from jsonschema import Draft202012Validator, FormatChecker

from streamseg.cli import main
from streamseg.config import load_pipeline
from streamseg.outputs.mqtt import MqttPublisher
from streamseg.rules import event_schema

pytestmark = pytest.mark.integration

PREFIX = "streamseg/yard"


def _pipeline(tmp_path: Path, port: int, **mqtt: Any) -> Path:
    keys = {**client_keys(port, tmp_path / "outbox.sqlite3", "yard-1"), **mqtt}
    path = tmp_path / "yard.yaml"
    path.write_text(
        "name: yard\n"
        "sources: [{id: north, type: file, path: a.mp4}, {id: south, type: file, path: b.mp4}]\n"
        "zones: [{id: swing, type: polygon, stream: south, points: [[0, 0], [9, 0], [9, 9]]}]\n"
        "rules:\n"
        "  - {id: in-swing, type: inside, zone: swing, severity: critical}\n"
        "  - {id: close, type: near, classes: [person], other_classes: [truck], max_distance: 9}\n"
        f"outputs: {{mqtt: {json.dumps(keys)}}}\n"
    )
    return path


def test_a_test_occurrence_reaches_the_events_topic(
    tmp_path: Path,
    mosquitto: Callable[..., Mosquitto],
    built_publisher: Callable[..., MqttPublisher],
    capsys: pytest.CaptureFixture[str],
) -> None:
    broker = mosquitto()
    pipeline = _pipeline(tmp_path, broker.port)
    running = built_publisher(load_pipeline(pipeline))  # the pipeline, running meanwhile
    running.start()
    sub = Subscriber(broker.port, f"{PREFIX}/#")
    sub.wait_for(lambda s: s.on(f"{PREFIX}/available") == [b"online"])
    time.sleep(0.3)  # what the pipeline publishes at its start has come
    before = len(sub.messages)

    assert main(["alert-test", str(pipeline)]) == 0

    sub.wait_for(lambda s: len(s.on(f"{PREFIX}/events")) == 2)
    start, end = (json.loads(p) for p in sub.on(f"{PREFIX}/events"))
    validator = Draft202012Validator(event_schema(), format_checker=FormatChecker())
    for payload in (start, end):
        validator.validate(payload)
    assert (start["type"], end["type"]) == ("start", "end")
    assert start["event_id"] == end["event_id"] and (start["seq"], end["seq"]) == (0, 1)
    assert (start["rule_id"], start["stream_id"], start["zone_id"]) == (
        "in-swing",
        "south",
        "swing",
    )
    assert start["severity"] == "critical"
    assert start["details"] == {"test": True}
    assert end["details"] == {"test": True, "reason": "test"}
    out = capsys.readouterr().out
    assert f"test occurrence {start['event_id']} of rule 'in-swing' on stream 'south'" in out
    assert "the broker took the start and the end" in out
    # The running pipeline was left alone: still connected (another client id), its
    # availability untouched, no state or count published by the test.
    time.sleep(0.5)
    assert running.connected and sub.on(f"{PREFIX}/available") == [b"online"]
    assert {m.topic for m in sub.messages[before:]} == {f"{PREFIX}/events"}
    running.close(timeout=1)  # its last log lines before pytest closes the captured stream
    sub.close()


def test_a_rule_and_stream_can_be_named(
    tmp_path: Path, mosquitto: Callable[..., Mosquitto], capsys: pytest.CaptureFixture[str]
) -> None:
    broker = mosquitto()
    pipeline = _pipeline(tmp_path, broker.port)
    sub = Subscriber(broker.port, f"{PREFIX}/events")
    assert main(["alert-test", str(pipeline), "--rule", "close", "--stream", "north"]) == 0
    sub.wait_for(lambda s: len(s.on(f"{PREFIX}/events")) == 2)
    start = json.loads(sub.on(f"{PREFIX}/events")[0])
    assert (start["rule_id"], start["rule_kind"], start["stream_id"]) == ("close", "near", "north")
    assert start["zone_id"] is None
    assert main(["alert-test", str(pipeline), "--rule", "in-swing", "--stream", "north"]) == 1
    assert "rule 'in-swing' does not run on stream 'north'; it runs on: south" in (
        capsys.readouterr().err
    )
    assert main(["alert-test", str(pipeline), "--rule", "nope"]) == 1
    assert "no rule 'nope'; the pipeline's rules: in-swing, close" in capsys.readouterr().err
    sub.close()


def test_a_broker_that_refuses_the_events_topic_is_an_error(
    tmp_path: Path, mosquitto: Callable[..., Mosquitto], capsys: pytest.CaptureFixture[str]
) -> None:
    acl = f"user pub\ntopic write {PREFIX}/available\n"
    broker = mosquitto(users={"pub": "pw"}, acl=acl)
    pipeline = _pipeline(tmp_path, broker.port, username="pub", password="pw")
    assert main(["alert-test", str(pipeline)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "the broker refused the start: Not authorized" in err
    assert f"write {PREFIX}/events" in err


def test_an_unreachable_broker_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression (audit): paho's thread retried in silence and the command said only "no
    connection within 10 s", after 10 s; the connection is now made directly, so why it failed
    (refused, a certificate from another CA, a name that does not resolve) is said at once."""
    pipeline = _pipeline(tmp_path, free_port())
    began = time.monotonic()
    assert main(["alert-test", str(pipeline)]) == 1
    assert time.monotonic() - began < 3
    err = " ".join(capsys.readouterr().err.split())
    assert "cannot connect to the broker at 127.0.0.1:" in err and "Connection refused" in err
    pipeline.write_text(pipeline.read_text().replace('"127.0.0.1"', '"no-such-host.invalid"'))
    assert main(["alert-test", str(pipeline)]) == 1
    assert "cannot connect to the broker at no-such-host.invalid:" in capsys.readouterr().err

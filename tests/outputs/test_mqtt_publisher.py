"""The MQTT publisher against a real mosquitto: payloads, retained topics, outages, the bound,
message sizes, snapshots from the recorder, closing."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import supervision as sv
from helpers.mosquitto import Mosquitto, Subscriber, client_keys
from jsonschema import Draft202012Validator, FormatChecker

from streamseg.config import PipelineConfig, load_pipeline_text
from streamseg.outputs.mqtt import MqttPublisher, Outbox
from streamseg.outputs.mqtt.sender import QUARANTINE_AFTER
from streamseg.rules import Event, event_schema, new_event_id
from streamseg.runtime.pipeline import Pipeline
from streamseg.types import Frame, SourceState

pytestmark = pytest.mark.integration

PREFIX = "streamseg/yard"


def make_event(index: int = 0, **overrides: Any) -> Event:
    """An event of rule r1 on stream gate; ``index`` becomes the frame index."""
    fields: dict[str, Any] = {
        "event_id": new_event_id(),
        "type": "start",
        "rule_id": "r1",
        "rule_kind": "inside",
        "stream_id": "gate",
        "started_at": 1_763_000_000.0 + index,
        "started_pts": index / 25,
        "frame_pts": index / 25,
        "frame_index": index,
        "zone_id": "swing",
        "track_ids": (3, 7),
        "class_names": ("person", "person"),
        "details": {"overlap": 0.42},
    }
    fields.update(overrides)
    return Event(**fields)


@pytest.fixture
def publisher_for(
    tmp_path: Path, built_publisher: Callable[[PipelineConfig], MqttPublisher]
) -> Callable[..., MqttPublisher]:
    """Factory: ``publisher_for(port, **mqtt_keys)`` builds (not starts) a publisher from YAML,
    with fast reconnects; closed at teardown."""

    def make(port: int, **keys: Any) -> MqttPublisher:
        mqtt = client_keys(port, tmp_path / "outbox.sqlite3", "streamseg-test")
        for key, value in keys.items():
            if isinstance(value, dict):
                mqtt[key] = {**mqtt.get(key, {}), **value}
            else:
                mqtt[key] = value
        # mqtt.snapshots publishes what outputs.record.snapshots writes (a config check).
        record = (
            {"snapshots": {"dir": str(tmp_path / "snapshots")}} if mqtt.get("snapshots") else {}
        )
        outputs = {"mqtt": mqtt, **({"record": record} if record else {})}
        text = (
            "name: yard\nsources: [{id: gate, type: file, path: x.mp4}]\n"
            f"outputs: {json.dumps(outputs)}\n"
        )
        return built_publisher(load_pipeline_text(text))

    return make


def unread_bytes_at(port: int) -> int:
    """Bytes received by the local TCP connections on ``port`` (a broker's side) that no one
    has read yet: what a stopped broker was sent (``/proc/net/tcp``, Linux)."""
    total = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as lines:
            next(lines)  # the header
            for line in lines:
                fields = line.split()
                local, state, queues = fields[1], fields[3], fields[4]
                if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:  # ESTABLISHED
                    total += int(queues.split(":")[1], 16)
    return total


def event_payloads(sub: Subscriber) -> list[dict[str, Any]]:
    return [json.loads(p) for p in sub.on(f"{PREFIX}/events")]


def keys_of(payloads: list[dict[str, Any]]) -> set[tuple[str, str, int]]:
    """The deduplication key of each payload."""
    return {(p["event_id"], p["type"], p["seq"]) for p in payloads}


# QoS 2 only with MQTT 3.1.1: with MQTT 5 it is a config error (it would hide refusals).
@pytest.mark.parametrize(("qos", "protocol"), [(1, "5"), (1, "3.1.1"), (2, "3.1.1")])
def test_events_arrive_in_order_and_match_the_schema(
    qos: int,
    protocol: str,
    mosquitto: Callable[..., Mosquitto],
    publisher_for: Callable[..., MqttPublisher],
) -> None:
    broker = mosquitto()
    sub = Subscriber(broker.port, f"{PREFIX}/#")
    publisher = publisher_for(broker.port, qos=qos, protocol=protocol)
    publisher.start()
    events: list[Event] = []
    for i in range(30):
        first = make_event(i)
        events += [
            first,
            make_event(i, event_id=first.event_id, type="update", seq=1, snapshot="/tmp/s.jpg"),
            make_event(i, event_id=first.event_id, type="end", seq=2, ended_at=2e9, zone_id=None),
        ]
    for event in events:
        publisher.on_event(event)
    sub.wait_for(lambda s: len(s.on(f"{PREFIX}/events")) >= len(events))
    payloads = event_payloads(sub)
    validator = Draft202012Validator(event_schema(), format_checker=FormatChecker())
    for payload in payloads:
        validator.validate(payload)
    # One publisher connection delivers in order; each payload reads back as its event.
    assert [Event.from_payload(p) for p in payloads] == events
    publisher.close(timeout=5)
    assert publisher.outbox.depth == 0
    assert publisher.metrics.registry.get_sample_value("streamseg_mqtt_events_acked_total") == 90
    sub.close()


def test_retained_state_counts_status_and_availability(
    mosquitto: Callable[..., Mosquitto], publisher_for: Callable[..., MqttPublisher]
) -> None:
    broker = mosquitto()
    watch = Subscriber(broker.port, f"{PREFIX}/#")
    publisher = publisher_for(broker.port)
    publisher.start()
    watch.wait_for(lambda s: s.on(f"{PREFIX}/available") == [b"online"])
    publisher.on_rule_state("gate", "r1", True)
    publisher.on_rule_state("gate", "r2", True)
    publisher.on_rule_state("gate", "r1", False)
    publisher.on_zone_count("gate", "pen 1", "cow", 3)
    publisher.on_zone_count("gate", "pen 1", "cow", 5)
    publisher.on_zone_count("gate", "pen 1", "traffic/light", 1)
    publisher.on_source_state("gate", SourceState.CONNECTING, SourceState.STREAMING)
    # The broker handles one client's messages in order: once the last one is through, all are.
    watch.wait_for(lambda s: s.on(f"{PREFIX}/gate/status") == [b"streaming"])
    expected = {
        f"{PREFIX}/available": b"online",
        f"{PREFIX}/gate/r1/state": b"OFF",
        f"{PREFIX}/gate/r2/state": b"ON",
        f"{PREFIX}/gate/pen_1/cow/count": b"5",
        f"{PREFIX}/gate/pen_1/traffic_light/count": b"1",
        f"{PREFIX}/gate/status": b"streaming",
    }

    def retained_now(topics: set[str]) -> dict[str, bytes]:
        """What a subscriber that arrives now reads on ``topics`` (retained messages only)."""
        fresh = Subscriber(broker.port, f"{PREFIX}/#")
        fresh.wait_for(lambda s: {m.topic for m in s.messages if m.retain} >= topics)
        fresh.close()
        return {m.topic: m.payload for m in fresh.messages if m.retain}

    seen = retained_now({*expected, f"{PREFIX}/outbox"})
    assert {topic: seen[topic] for topic in expected} == expected
    status = json.loads(seen[f"{PREFIX}/outbox"])
    assert status == {"depth": 0, "bound": 100_000, "full": False, "refused": 0}

    # A clean close says offline (the broker sends the will only when a client vanishes).
    publisher.close(timeout=2)
    watch.wait_for(lambda s: s.on(f"{PREFIX}/available")[-1:] == [b"offline"])
    assert retained_now({f"{PREFIX}/available"})[f"{PREFIX}/available"] == b"offline"
    watch.close()


def test_broker_outage_loses_no_event(
    mosquitto: Callable[..., Mosquitto],
    publisher_for: Callable[..., MqttPublisher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The broker stops mid-run (events keep coming) and starts again on the same port:
    every event arrives, the ones raised during the outage included."""
    broker = mosquitto(persistence=True)
    # A persistent QoS 1 session: the broker keeps queueing for it across its own restart.
    sub = Subscriber(broker.port, f"{PREFIX}/#", client_id="consumer", persistent=True)
    publisher = publisher_for(broker.port, max_inflight=10)
    caplog.set_level(logging.INFO, logger="streamseg.outputs.mqtt")
    publisher.start()
    raised: list[Event] = []
    lock = threading.Lock()
    halfway = threading.Event()

    def raise_events(worker: int, count: int) -> None:
        for i in range(count):
            event = make_event(i, stream_id=f"cam{worker}")
            publisher.on_event(event)
            with lock:
                raised.append(event)
                if len(raised) == 60:
                    halfway.set()
            time.sleep(0.002)  # a camera's pace, so the outage lands mid-burst

    def burst(count: int) -> list[threading.Thread]:
        threads = [threading.Thread(target=raise_events, args=(w, count)) for w in range(3)]
        for thread in threads:
            thread.start()
        return threads

    threads = burst(50)
    assert halfway.wait(timeout=10)
    broker.stop()  # SIGTERM while events are being raised and sent
    for thread in threads:
        thread.join()
    sub.wait_for(lambda s: not publisher.connected, timeout=5)
    for thread in burst(20):  # raised while the broker is down: they wait in the outbox
        thread.join()
    publisher.on_rule_state("cam0", "r1", True)  # a retained value set during the outage
    assert publisher.outbox.depth >= 60
    broker.start()
    sub.wait_for(lambda s: keys_of(event_payloads(s)) >= _keys(raised), timeout=15)
    # The last value (the consumer's re-subscribe may also bring the retained copy).
    sub.wait_for(lambda s: s.on(f"{PREFIX}/cam0/r1/state")[-1:] == [b"ON"], timeout=5)
    sub.wait_for(lambda s: publisher.outbox.depth == 0, timeout=5)
    assert len(raised) == 210
    assert "lost the connection" in caplog.text
    assert caplog.text.count("connected to 127.0.0.1") == 2
    sub.close()


def _keys(events: list[Event]) -> set[tuple[str, str, int]]:
    return {(e.event_id, e.type, e.seq) for e in events}


def test_full_outbox_is_loud_and_keeps_what_it_accepted(
    mosquitto: Callable[..., Mosquitto],
    publisher_for: Callable[..., MqttPublisher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = mosquitto(persistence=True)
    # Register a persistent session, then take the broker down: when it comes back, it queues
    # everything for this consumer from its first second, whenever the consumer reconnects.
    sub = Subscriber(broker.port, f"{PREFIX}/#", client_id="ops", persistent=True)
    broker.stop()
    publisher = publisher_for(broker.port, outbox={"max_events": 5})
    publisher.start()
    events = [make_event(i) for i in range(8)]
    with caplog.at_level(logging.WARNING, logger="streamseg.outputs.mqtt"):
        for event in events:
            publisher.on_event(event)
        full_errors = [r for r in caplog.records if "is full" in r.getMessage()]
        assert len(full_errors) == 1 and full_errors[0].levelno == logging.ERROR
        assert events[5].event_id in full_errors[0].getMessage()  # names the first refused
        registry = publisher.metrics.registry
        assert registry.get_sample_value("streamseg_mqtt_outbox_depth") == 5
        assert registry.get_sample_value("streamseg_mqtt_outbox_full") == 1
        refused = registry.get_sample_value(
            "streamseg_mqtt_events_refused_total", {"reason": "full"}
        )
        assert refused == 3

        broker.start()
        sub.wait_for(lambda s: len(s.on(f"{PREFIX}/events")) >= 5, timeout=10)
        sub.wait_for(lambda s: b'"full": false' in b"".join(s.on(f"{PREFIX}/outbox")), 5)
    assert keys_of(event_payloads(sub)) == _keys(events[:5])  # the accepted ones, all of them
    statuses = [json.loads(p) for p in sub.on(f"{PREFIX}/outbox")]
    assert statuses[0] == {"depth": 5, "bound": 5, "full": True, "refused": 3}
    assert statuses[-1]["full"] is False and statuses[-1]["refused"] == 3
    assert registry.get_sample_value("streamseg_mqtt_outbox_full") == 0
    assert "room again" in caplog.text and "3 events were refused" in caplog.text
    sub.close()


def test_snapshots_are_published_when_enabled(
    tmp_path: Path,
    mosquitto: Callable[..., Mosquitto],
    publisher_for: Callable[..., MqttPublisher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = mosquitto()
    sub = Subscriber(broker.port, f"{PREFIX}/#")
    publisher = publisher_for(broker.port, snapshots=True)
    publisher.start()
    jpeg = tmp_path / "snap.jpg"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0fake jpeg\xff\xd9")
    first = make_event(0, snapshot=str(jpeg))
    with caplog.at_level(logging.WARNING, logger="streamseg.outputs.mqtt"):
        # The event's snapshot path alone publishes nothing: the recorder reports the file.
        publisher.on_event(first)
        publisher.on_snapshot(first, jpeg)
        gone = make_event(2, rule_id="r2")
        publisher.on_event(gone)
        publisher.on_snapshot(gone, tmp_path / "gone.jpg")  # deleted by retention meanwhile
        sub.wait_for(lambda s: len(s.on(f"{PREFIX}/events")) == 2)
        sub.wait_for(lambda s: s.on(f"{PREFIX}/gate/r1/snapshot") == [jpeg.read_bytes()])
        sub.wait_for(lambda s: "gone.jpg not published" in caplog.text)
    assert sub.on(f"{PREFIX}/gate/r2/snapshot") == []
    skipped = publisher.metrics.registry.get_sample_value(
        "streamseg_mqtt_snapshots_skipped_total", {"reason": "unreadable"}
    )
    assert skipped == 1
    sub.close()


def test_close_flushes_what_the_broker_can_take(
    mosquitto: Callable[..., Mosquitto], publisher_for: Callable[..., MqttPublisher]
) -> None:
    broker = mosquitto()
    sub = Subscriber(broker.port, f"{PREFIX}/events")
    publisher = publisher_for(broker.port)
    publisher.start()
    sub.wait_for(lambda s: publisher.connected)
    events = [make_event(i) for i in range(300)]
    for event in events:
        publisher.on_event(event)
    publisher.close(timeout=10)  # returns once every event is acknowledged
    assert publisher.outbox.depth == 0
    sub.wait_for(lambda s: keys_of(event_payloads(s)) == _keys(events))
    sub.close()


def test_close_with_the_broker_down_keeps_the_events(
    tmp_path: Path,
    mosquitto: Callable[..., Mosquitto],
    publisher_for: Callable[..., MqttPublisher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = mosquitto()
    broker.stop()
    publisher = publisher_for(broker.port)
    publisher.start()
    for i in range(4):
        publisher.on_event(make_event(i))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="streamseg.outputs.mqtt"):
        publisher.close(timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 2
    assert "4 events not acknowledged stay in" in caplog.text
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        assert outbox.depth == 4


def test_close_after_a_run_without_any_broker_is_prompt(
    tmp_path: Path,
    mosquitto: Callable[..., Mosquitto],
    publisher_for: Callable[..., MqttPublisher],
) -> None:
    """A broker that was down all run (never reached) gets a moment to come up, not the whole
    flush timeout: a pipeline run without its broker took 6 s to stop."""
    broker = mosquitto()
    broker.stop()
    publisher = publisher_for(broker.port)
    publisher.start()
    publisher.on_event(make_event(0))
    started = time.monotonic()
    publisher.close(timeout=5.0)
    assert time.monotonic() - started < 2.5
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        assert outbox.depth == 1  # kept for the next start


# ---------------------------------------------------------------------- message sizes


def _oversize_kicks(broker: Mosquitto) -> int:
    """How often the broker has disconnected a client for an oversized packet so far."""
    return broker.log_tail(10**7).count("disconnected due to oversize packet")


def test_event_over_max_payload_bytes_is_refused_loudly(
    mosquitto: Callable[..., Mosquitto],
    publisher_for: Callable[..., MqttPublisher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Regression: nothing bounded an event's size, and one over the broker's packet limit
    was stored and then sent first after every reconnect, forever."""
    broker = mosquitto()
    sub = Subscriber(broker.port, f"{PREFIX}/#")
    publisher = publisher_for(broker.port, max_payload_bytes=4096)
    publisher.start()
    big = make_event(0, details={"blob": "x" * 5000})
    rest = [make_event(i) for i in range(1, 4)]
    with caplog.at_level(logging.ERROR, logger="streamseg.outputs.mqtt"):
        for event in [big, *rest]:
            publisher.on_event(event)
    sub.wait_for(lambda s: keys_of(event_payloads(s)) == _keys(rest))
    [refusal] = [r for r in caplog.records if big.event_id in r.getMessage()]
    assert refusal.levelno == logging.ERROR
    assert "bytes, over outputs.mqtt.max_payload_bytes (4096)" in refusal.getMessage()
    registry = publisher.metrics.registry
    refused = registry.get_sample_value(
        "streamseg_mqtt_events_refused_total", {"reason": "too_large"}
    )
    assert refused == 1
    sub.wait_for(lambda s: b'"refused": 1' in b"".join(s.on(f"{PREFIX}/outbox")))
    sub.close()


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_event_the_broker_will_not_take_is_quarantined(
    protocol: str,
    tmp_path: Path,
    small_packet_mosquitto: Mosquitto,
    publisher_for: Callable[..., MqttPublisher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Regression: an event under ``max_payload_bytes`` but over the broker's packet limit got
    the publisher disconnected each time it was sent; as the oldest row it was sent first after
    every reconnect and no later event was ever delivered, across restarts too. Now it moves to
    the quarantine file and the others go out: on MQTT 3.1.1, which does not tell the client the
    limit, after QUARANTINE_AFTER such connections; on MQTT 5, whose CONNACK gives the broker's
    Maximum Packet Size, before it is sent."""
    broker = small_packet_mosquitto
    sub = Subscriber(broker.port, f"{PREFIX}/events")
    poison = make_event(0, details={"blob": "x" * 150_000})  # 150 kB: the broker takes 100 kB
    rest = [make_event(i) for i in range(1, 6)]
    publisher = publisher_for(broker.port, protocol=protocol)
    publisher.start()
    with caplog.at_level(logging.ERROR, logger="streamseg.outputs.mqtt"):
        for event in [poison, *rest]:
            publisher.on_event(event)
        sub.wait_for(lambda s: keys_of(event_payloads(s)) == _keys(rest), timeout=15)
    sub.wait_for(lambda s: publisher.outbox.depth == 0)
    v5 = protocol == "5"
    assert _oversize_kicks(broker) == (0 if v5 else QUARANTINE_AFTER)  # then never sent again
    [line] = publisher.outbox.quarantine_path.read_text().splitlines()
    kept = json.loads(line)
    assert kept["topic"] == f"{PREFIX}/events"
    assert json.loads(kept["payload"])["event_id"] == poison.event_id
    expected = (
        "over the broker's maximum packet size (100000 bytes, from its CONNACK)"
        if v5
        else "dropped the connection"
    )
    assert expected in kept["reason"]
    [report] = [r for r in caplog.records if "moved from the outbox" in r.getMessage()]
    assert poison.event_id in report.getMessage()
    assert str(publisher.outbox.quarantine_path) in report.getMessage()
    registry = publisher.metrics.registry
    moved = registry.get_sample_value(
        "streamseg_mqtt_events_quarantined_total", {"reason": "too_large" if v5 else "disconnects"}
    )
    assert moved == 1
    sub.close()


def test_refused_reconnects_do_not_quarantine_the_event_in_flight(
    mosquitto: Callable[..., Mosquitto],
    publisher_for: Callable[..., MqttPublisher],
) -> None:
    """Regression: an event sent just before the broker died was blamed for every reconnect
    attempt that failed after (paho reports a refused CONNACK as a disconnect too), so three
    refused logins, as while a broker's auth backend starts, moved a healthy alert to the
    quarantine file: it was never delivered."""
    broker = mosquitto(persistence=False)
    publisher = publisher_for(broker.port)
    publisher.start()
    sub = Subscriber(broker.port, f"{PREFIX}/events")
    sub.wait_for(lambda s: publisher.connected, timeout=10)
    assert broker.proc is not None
    os.kill(broker.proc.pid, signal.SIGSTOP)  # hung: the event goes out, no PUBACK comes back
    event = make_event(0)
    waiting = unread_bytes_at(broker.port)
    publisher.on_event(event)
    # In flight: the PUBLISH lies unread in the stopped broker's socket.
    sub.wait_for(
        lambda s: unread_bytes_at(broker.port) - waiting >= len(event.to_json()), timeout=10
    )
    broker.kill()
    sub.close()
    stand_in = mosquitto(persistence=False, port=broker.port, users={"u": "p"})
    sub.wait_for(
        lambda s: stand_in.log_tail(100_000).count("not authorised") > QUARANTINE_AFTER,
        timeout=15,
    )
    stand_in.stop()
    broker.start()
    sub = Subscriber(broker.port, f"{PREFIX}/events")
    sub.wait_for(lambda s: event.event_id in {p["event_id"] for p in event_payloads(s)}, timeout=15)
    sub.wait_for(lambda s: publisher.outbox.depth == 0)  # its PUBACK applied
    assert not publisher.outbox.quarantine_path.exists()
    sub.close()


def test_connections_that_go_silent_do_not_quarantine_the_event_in_flight(
    mosquitto: Callable[..., Mosquitto],
    blip_proxy: Callable[[int], Any],
    publisher_for: Callable[..., MqttPublisher],
) -> None:
    """Regression (found in a soak): three connections in a row that came up and then went
    silent (a dead link, a broker hung between CONNACKs) each ended with a normal-sized event
    unacknowledged, on the client's keepalive or closed by the broker's (it heard nothing for
    1.5 x keepalive), and that event was moved to the quarantine file as if the broker had
    refused it: never delivered. Neither blames the event now."""
    broker = mosquitto(persistence=False)
    proxy = blip_proxy(broker.port)
    publisher = publisher_for(
        proxy.port, keepalive_s=1, reconnect={"min_delay_s": 0.05, "max_delay_s": 0.2}
    )
    publisher.start()
    sub = Subscriber(broker.port, f"{PREFIX}/events")
    sub.wait_for(lambda s: publisher.connected, timeout=10)
    proxy.mute_after_connack = True
    event = make_event(0)
    publisher.on_event(event)
    # Each muted connection ends on the keepalive (1 s) and paho reconnects at once.
    sub.wait_for(
        lambda s: broker.log_tail(100_000).count("New client connected") > QUARANTINE_AFTER + 1,
        timeout=20,
    )
    assert not publisher.outbox.quarantine_path.exists()
    proxy.mute_after_connack = False
    proxy.cut()  # the link back: a fresh connection (this one already lost the event)
    sub.wait_for(lambda s: event.event_id in {p["event_id"] for p in event_payloads(s)}, timeout=15)
    sub.wait_for(lambda s: publisher.outbox.depth == 0)  # delivered from the outbox
    assert not publisher.outbox.quarantine_path.exists()
    sub.close()


def test_the_retained_outbox_status_follows_the_backlog_as_it_drains(
    tmp_path: Path,
    publisher_for: Callable[..., MqttPublisher],
) -> None:
    """Regression: ``<prefix>/outbox`` was rebuilt only on connect and on full/room changes,
    so after a backlog of 50 drained it still said ``"depth": 50`` for the whole connection."""
    broker = Mosquitto(tmp_path / "late-broker", persistence=False)  # not started yet
    publisher = publisher_for(broker.port)
    publisher.start()
    for i in range(50):
        publisher.on_event(make_event(i))
    broker.start()
    try:
        sub = Subscriber(broker.port, f"{PREFIX}/outbox")
        sub.wait_for(lambda s: publisher.outbox.depth == 0, timeout=15)
        sub.wait_for(lambda s: json.loads(s.on(f"{PREFIX}/outbox")[-1])["depth"] == 0, timeout=5)
        sub.close()
        later = Subscriber(broker.port, f"{PREFIX}/outbox")  # what a new dashboard reads
        later.wait_for(lambda s: bool(s.on(f"{PREFIX}/outbox")))
        assert json.loads(later.on(f"{PREFIX}/outbox")[-1]) == {
            "bound": publisher.outbox.bound,
            "depth": 0,
            "full": False,
            "refused": 0,
        }
        later.close()
    finally:
        publisher.close(timeout=1)
        broker.kill()


def _outbox_status(sub: Subscriber) -> dict[str, Any] | None:
    """The last outbox status ``sub`` received, or ``None``."""
    statuses = sub.on(f"{PREFIX}/outbox")
    return json.loads(statuses[-1]) if statuses else None


def test_the_retained_outbox_status_ends_at_the_depth_of_a_backlog_the_broker_refuses(
    mosquitto: Callable[..., Mosquitto],
    publisher_for: Callable[..., MqttPublisher],
) -> None:
    """Regression: the status is published at most once a second, and a change inside that
    second was dropped, not put off. With the broker refusing events (its ACL) nothing follows
    the last change: two events raised together left ``"depth": 1`` retained while two waited,
    until the next event."""
    broker = mosquitto(users={"pub": "pw", "sub": "pw"}, acl=ACL_WITHOUT_EVENTS)
    sub = Subscriber(broker.port, f"{PREFIX}/outbox", username="sub", password="pw")
    publisher = publisher_for(broker.port, username="pub", password="pw")
    publisher.start()
    sub.wait_for(lambda s: (_outbox_status(s) or {}).get("depth") == 0)
    for i in range(2):  # within the second: the first is published at once, the second not
        publisher.on_event(make_event(i))
    wait_for_a_refusal(sub, publisher)
    assert publisher.outbox.depth == 2
    sub.wait_for(lambda s: (_outbox_status(s) or {}).get("depth") == 2, timeout=5)
    sub.close()


def test_a_status_built_before_the_last_acknowledgement_does_not_stay_retained(
    mosquitto: Callable[..., Mosquitto],
    publisher_for: Callable[..., MqttPublisher],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regression: the refresh after the last acknowledgement compared the drained status with
    the one kept outside the lock that orders the publishes. An event's thread that had built
    ``"depth": 1`` under that lock and not yet kept it made the drained status look unchanged
    (it equalled the older one kept): the sender published nothing, the event's thread then
    published ``"depth": 1``, and it stayed over an empty outbox. The event's thread is held
    at that point here, as the GIL or a busy core can hold it."""
    broker = mosquitto(persistence=False)
    sub = Subscriber(broker.port, f"{PREFIX}/outbox")
    publisher = publisher_for(broker.port)
    publisher.start()
    sub.wait_for(lambda s: (_outbox_status(s) or {}).get("depth") == 0)
    caller = threading.current_thread()
    build = publisher._outbox_status
    held = threading.Event()

    def held_after_building() -> bytes:
        payload = build()
        if (
            threading.current_thread() is caller
            and publisher._retained_lock.locked()
            and not held.is_set()
        ):
            held.set()  # the sender acknowledges the event and refreshes meanwhile
            deadline = time.monotonic() + 5
            while publisher.outbox.depth and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.3)
        return payload

    monkeypatch.setattr(publisher, "_outbox_status", held_after_building)
    publisher.on_event(make_event(0))
    assert held.is_set() and publisher.outbox.depth == 0
    sub.wait_for(lambda s: (_outbox_status(s) or {}).get("depth") == 0, timeout=3)
    sub.close()


def test_close_right_after_the_outbox_drained_leaves_the_drained_status(
    tmp_path: Path,
    mosquitto: Callable[..., Mosquitto],
    publisher_for: Callable[..., MqttPublisher],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regression: the sender wakes close() when the last acknowledgement empties the outbox,
    then publishes the status. A sender held up in between (a busy machine) published it after
    close() had disconnected: it was lost, and ``"depth": 1`` stayed retained over an empty
    outbox. close() publishes the last status itself, before ``offline``."""
    broker = mosquitto(persistence=False)
    sub = Subscriber(broker.port, f"{PREFIX}/outbox")
    publisher = publisher_for(broker.port)
    publisher.start()
    sub.wait_for(lambda s: (_outbox_status(s) or {}).get("depth") == 0)
    check_room = publisher._check_room

    def held_up() -> None:  # the sender, between waking close() and the status
        if publisher.outbox.depth == 0:
            time.sleep(1.0)
        check_room()

    monkeypatch.setattr(publisher, "_check_room", held_up)
    publisher.on_event(make_event(0))
    sub.wait_for(lambda s: (_outbox_status(s) or {}).get("depth") == 1)
    publisher.close(timeout=5)
    assert publisher.outbox.depth == 0
    sub.close()
    later = Subscriber(broker.port, f"{PREFIX}/outbox")  # what a dashboard reads afterwards
    later.wait_for(lambda s: _outbox_status(s) is not None)
    assert _outbox_status(later) == {"bound": 100_000, "depth": 0, "full": False, "refused": 0}
    later.close()


def test_stored_event_over_the_limit_is_quarantined_not_sent(
    tmp_path: Path,
    mosquitto: Callable[..., Mosquitto],
    publisher_for: Callable[..., MqttPublisher],
) -> None:
    """An event stored by a run with a higher ``max_payload_bytes`` (or an older streamseg)
    is set aside at send time instead of blocking the outbox."""
    broker = mosquitto()
    sub = Subscriber(broker.port, f"{PREFIX}/events")
    big = make_event(0, details={"blob": "x" * 5000})
    small = make_event(1)
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:  # the path publisher_for uses
        for event in (big, small):
            outbox.add(f"{PREFIX}/events", event.to_json().encode(), 1)
    publisher = publisher_for(broker.port, max_payload_bytes=4096)
    publisher.start()
    sub.wait_for(lambda s: keys_of(event_payloads(s)) == _keys([small]))
    sub.wait_for(lambda s: publisher.outbox.depth == 0)
    [line] = publisher.outbox.quarantine_path.read_text().splitlines()
    assert json.loads(json.loads(line)["payload"])["event_id"] == big.event_id
    assert "over outputs.mqtt.max_payload_bytes (4096)" in json.loads(line)["reason"]
    sub.close()


def test_snapshot_over_max_snapshot_bytes_is_skipped(
    tmp_path: Path,
    small_packet_mosquitto: Mosquitto,
    publisher_for: Callable[..., MqttPublisher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Regression: a snapshot over the broker's packet limit was kept and published again
    first on every reconnect: an endless connect/disconnect loop, no event ever delivered."""
    broker = small_packet_mosquitto
    sub = Subscriber(broker.port, f"{PREFIX}/#")
    publisher = publisher_for(broker.port, snapshots=True, max_snapshot_bytes=90_000)
    publisher.start()
    sub.wait_for(lambda s: publisher.connected)
    jpeg = tmp_path / "big.jpg"
    jpeg.write_bytes(b"\xff" * 120_000)
    first = make_event(0)
    with caplog.at_level(logging.WARNING, logger="streamseg.outputs.mqtt"):
        publisher.on_event(first)
        publisher.on_snapshot(first, jpeg)
        rest = [make_event(i) for i in range(1, 4)]
        for event in rest:
            publisher.on_event(event)
        sub.wait_for(lambda s: keys_of(event_payloads(s)) == _keys([first, *rest]))
        sub.wait_for(lambda s: "over outputs.mqtt.max_snapshot_bytes (90000)" in caplog.text)
    assert "big.jpg not published: 120000 bytes" in caplog.text
    assert sub.on(f"{PREFIX}/gate/r1/snapshot") == []
    assert _oversize_kicks(broker) == 0
    skipped = publisher.metrics.registry.get_sample_value(
        "streamseg_mqtt_snapshots_skipped_total", {"reason": "too_large"}
    )
    assert skipped == 1
    sub.close()


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_snapshot_the_broker_will_not_take_costs_one_reconnect_at_most(
    protocol: str,
    tmp_path: Path,
    small_packet_mosquitto: Mosquitto,
    publisher_for: Callable[..., MqttPublisher],
) -> None:
    """A snapshot under ``max_snapshot_bytes`` but over the broker's limit (a limit set too
    high) gets the publisher disconnected once on MQTT 3.1.1: it is not kept for reconnects, so
    it is not sent again and the events still go out. On MQTT 5 the broker's CONNACK gives its
    maximum packet size, and the snapshot is skipped (counted, logged) without a disconnect."""
    broker = small_packet_mosquitto
    sub = Subscriber(broker.port, f"{PREFIX}/#")
    publisher = publisher_for(broker.port, snapshots=True, protocol=protocol)  # limit 1 MB
    publisher.start()
    sub.wait_for(lambda s: publisher.connected)
    jpeg = tmp_path / "big.jpg"
    jpeg.write_bytes(b"\xff" * 150_000)
    first = make_event(0)
    publisher.on_event(first)
    publisher.on_snapshot(first, jpeg)
    kicks = 0 if protocol == "5" else 1
    sub.wait_for(lambda s: _oversize_kicks(broker) == kicks)
    rest = [make_event(i) for i in range(1, 4)]
    for event in rest:
        publisher.on_event(event)
    sub.wait_for(lambda s: keys_of(event_payloads(s)) >= _keys([first, *rest]))
    sub.wait_for(lambda s: publisher.connected and publisher.outbox.depth == 0)
    time.sleep(0.5)  # several reconnect delays (0.05 to 0.2 s): a loop would show by now
    assert _oversize_kicks(broker) == kicks and publisher.connected
    skipped = publisher.metrics.registry.get_sample_value(
        "streamseg_mqtt_snapshots_skipped_total", {"reason": "too_large"}
    )
    assert skipped == (1 if protocol == "5" else 0)
    sub.close()


# ---------------------------------------------------------------------- robustness


def test_a_failing_snapshot_leaves_the_sender_running(
    mosquitto: Callable[..., Mosquitto],
    publisher_for: Callable[..., MqttPublisher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Regression: an exception in snapshot handling (outside the ``try`` that guarded
    sending) ended the sender thread silently, and no event was sent after it. A path the OS
    refuses (a NUL byte: ValueError, not OSError) stands for any such failure."""
    broker = mosquitto()
    sub = Subscriber(broker.port, f"{PREFIX}/events")
    publisher = publisher_for(broker.port, snapshots=True)
    publisher.start()
    first = make_event(0)
    with caplog.at_level(logging.ERROR, logger="streamseg.outputs.mqtt"):
        publisher.on_event(first)
        publisher.on_snapshot(first, Path("bad\x00name.jpg"))
        rest = [make_event(i) for i in range(1, 4)]
        for event in rest:
            publisher.on_event(event)
        sub.wait_for(lambda s: keys_of(event_payloads(s)) == _keys([first, *rest]))
    [failure] = [r for r in caplog.records if "the sender failed" in r.getMessage()]
    assert failure.exc_info is not None  # logged with its traceback
    sub.close()


def test_a_reconnect_while_closing_still_leaves_offline(
    mosquitto: Callable[..., Mosquitto],
    publisher_for: Callable[..., MqttPublisher],
    blip_proxy: Callable[[int], Any],
) -> None:
    """Regression: when the connection blipped while close() waited for its 'offline',
    the reconnect dropped that 'offline' and published 'online', and close()'s clean
    disconnect (no will) left 'online' retained for a process that had exited."""
    broker = mosquitto()
    proxy = blip_proxy(broker.port)
    publisher = publisher_for(proxy.port, keepalive_s=30)
    publisher.start()
    watch = Subscriber(broker.port, f"{PREFIX}/available")
    watch.wait_for(lambda s: s.on(f"{PREFIX}/available")[-1:] == [b"online"])
    proxy.blackhole = True  # the broker stops hearing the publisher
    closer = threading.Thread(target=publisher.close, kwargs={"timeout": 3.0})
    closer.start()
    # close() has published 'offline' into the blackhole and waits (a private attribute: no
    # public sign of that moment).
    deadline = time.monotonic() + 5
    while publisher._offline is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert publisher._offline is not None, "close() published no 'offline'"
    proxy.blackhole = False
    proxy.cut()  # the connection breaks; paho reconnects while close() waits
    closer.join(timeout=10)
    assert not closer.is_alive()
    watch.wait_for(lambda s: s.on(f"{PREFIX}/available")[-1:] == [b"offline"])
    late = Subscriber(broker.port, f"{PREFIX}/available")  # what a newcomer reads: retained
    late.wait_for(lambda s: bool(s.on(f"{PREFIX}/available")))
    time.sleep(0.2)
    assert late.on(f"{PREFIX}/available") == [b"offline"]
    assert b"online" not in watch.on(f"{PREFIX}/available")[1:]
    late.close()
    watch.close()


# ---------------------------------------------------------------------- with the recorder


def test_pipeline_publishes_the_recorders_snapshot_once_the_file_exists(
    tmp_path: Path,
    mosquitto: Callable[..., Mosquitto],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Regression: the recorder writes a start event's snapshot after that frame's write(),
    and the publisher read the file at on_event time, when it could not exist yet: with the
    real pipeline no snapshot was ever published. The pipeline's own wiring is used here
    (Pipeline.start_outputs, event_listeners: the recorder first, then the publisher)."""
    broker = mosquitto()
    sub = Subscriber(broker.port, f"{PREFIX}/#")
    mqtt = {**client_keys(broker.port, tmp_path / "outbox.sqlite3", "streamseg-test")}
    mqtt["snapshots"] = True
    record = {"snapshots": {"dir": str(tmp_path / "snaps")}}
    text = (
        "name: yard\nsources: [{id: gate, type: file, path: x.mp4}]\n"
        f"outputs: {{mqtt: {json.dumps(mqtt)}, record: {json.dumps(record)}}}\n"
    )
    pipeline = Pipeline(load_pipeline_text(text))
    with caplog.at_level(logging.WARNING, logger="streamseg.outputs.mqtt"):
        pipeline.start_outputs()
        try:
            assert pipeline.recorder is not None
            [listeners] = pipeline.event_listeners()
            start = make_event(5)
            snapshot = pipeline.recorder.snapshot_path(start)
            assert snapshot is not None
            image = np.zeros((96, 160, 3), np.uint8)
            for index in range(10):  # the pipeline's order: the frame's events, then write
                if index == start.frame_index:
                    listeners.on_event(start)
                frame = Frame("gate", index, index / 20, 1_763_000_000.0 + index / 20, image)
                pipeline.recorder.write(frame, sv.Detections.empty())
            topic = f"{PREFIX}/gate/r1/snapshot"
            sub.wait_for(lambda s: len(s.on(topic)) == 1)
            assert sub.on(topic) == [snapshot.read_bytes()]
            assert sub.on(topic)[0].startswith(b"\xff\xd8")  # a JPEG
            sub.wait_for(lambda s: len(s.on(f"{PREFIX}/events")) == 1)
        finally:
            pipeline.stop()
    assert "not published" not in caplog.text
    sub.close()


def test_an_event_the_full_disk_keeps_out_of_the_outbox_still_goes_out_while_connected(
    mosquitto: Callable[..., Mosquitto],
    publisher_for: Callable[..., MqttPublisher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The outbox's database refuses to grow (SQLite's own full-disk error, SQLITE_FULL, through
    max_page_count: the disk itself cannot be filled here). While connected the event is
    published anyway, without the durable guarantee, and said so; while not, it is lost, and
    said so. Events stored before go out as usual."""
    broker = mosquitto()
    sub = Subscriber(broker.port, f"{PREFIX}/events")
    publisher = publisher_for(broker.port)
    publisher.start()
    stored = make_event(0)
    publisher.on_event(stored)
    sub.wait_for(lambda s: len(s.on(f"{PREFIX}/events")) == 1)
    deadline = time.monotonic() + 10
    while publisher.outbox.depth and time.monotonic() < deadline:  # the ack is processed
        time.sleep(0.01)
    db = publisher.outbox._db  # the real database: let it fill up
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    big = "x" * 20_000  # a row larger than a page: the database must grow for it
    unstored = make_event(1, details={"overlap": 0.5, "note": big})
    with caplog.at_level(logging.ERROR, logger="streamseg.outputs.mqtt.publisher"):
        publisher.on_event(unstored)
    assert "database or disk is full" in caplog.text
    assert "published without it" in caplog.text
    sub.wait_for(lambda s: len(s.on(f"{PREFIX}/events")) == 2)
    assert [p["event_id"] for p in event_payloads(sub)] == [stored.event_id, unstored.event_id]
    registry = publisher.metrics.registry
    assert registry.get_sample_value("streamseg_mqtt_events_sent_unstored_total") == 1
    assert (
        registry.get_sample_value("streamseg_mqtt_events_refused_total", {"reason": "error"}) == 1
    )
    assert publisher.outbox.depth == 0  # never in it; its acknowledgement is ignored

    broker.stop()
    deadline = time.monotonic() + 10
    while publisher.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="streamseg.outputs.mqtt.publisher"):
        publisher.on_event(make_event(2, details={"note": big}))
    assert "it is lost (not connected)" in caplog.text
    assert registry.get_sample_value("streamseg_mqtt_events_sent_unstored_total") == 1


def test_every_refusal_and_skip_reason_is_a_series_at_zero_from_the_start() -> None:
    """A series that appears with its first increment shows no ``increase()``: an alert on the
    outbox refusing events missed the first burst."""
    from prometheus_client import CollectorRegistry

    from streamseg.outputs.mqtt.metrics import (
        QUARANTINED_REASONS,
        REFUSED_REASONS,
        REJECTED_REASONS,
        SNAPSHOT_SKIPPED_REASONS,
        MqttMetrics,
    )

    registry = CollectorRegistry()
    MqttMetrics(lambda: 0.0, registry)
    for name, reasons in (
        ("streamseg_mqtt_events_refused_total", REFUSED_REASONS),
        ("streamseg_mqtt_events_quarantined_total", QUARANTINED_REASONS),
        ("streamseg_mqtt_events_rejected_total", REJECTED_REASONS),
        ("streamseg_mqtt_snapshots_skipped_total", SNAPSHOT_SKIPPED_REASONS),
    ):
        for reason in reasons:
            assert registry.get_sample_value(name, {"reason": reason}) == 0.0, (name, reason)


ACL_WITHOUT_EVENTS = f"""\
user pub
topic write {PREFIX}/available
topic write {PREFIX}/outbox
topic write {PREFIX}/+/status
topic write {PREFIX}/+/+/state
user sub
topic read #
"""


def wait_for_a_refusal(sub: Subscriber, publisher: MqttPublisher) -> None:
    """Wait until the broker has refused an event as not authorized."""
    registry = publisher.metrics.registry
    refused = {"reason": "Not authorized"}
    sub.wait_for(
        lambda s: (
            (registry.get_sample_value("streamseg_mqtt_events_rejected_total", refused) or 0) >= 1
        )
    )


def test_events_the_brokers_acl_refuses_stay_in_the_outbox_until_it_lets_them_through(
    mosquitto: Callable[..., Mosquitto],
    publisher_for: Callable[..., MqttPublisher],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Audit: with MQTT 3.1.1 a broker whose ACL does not let the client write the events topic
    acknowledges every event and drops it: all 20 left the outbox as delivered, none arrived,
    nothing was logged or counted. With MQTT 5 (the default) the acknowledgement says "Not
    authorized": the events stay in the outbox, the refusal is logged once and counted, and once
    the ACL is fixed every event arrives."""
    from streamseg.outputs.mqtt import sender

    monkeypatch.setattr(sender, "REFUSED_RETRY_S", 0.3)
    users = {"pub": "pw", "sub": "pw"}
    broker = mosquitto(users=users, acl=ACL_WITHOUT_EVENTS)
    sub = Subscriber(broker.port, f"{PREFIX}/#", username="sub", password="pw")
    publisher = publisher_for(broker.port, username="pub", password="pw")
    caplog.set_level(logging.INFO, logger="streamseg.outputs.mqtt")
    publisher.start()
    events = [make_event(i) for i in range(20)]
    for event in events:
        publisher.on_event(event)
    registry = publisher.metrics.registry
    # Events raised after the first refusal wait their turn (one at a time, after a pause).
    wait_for_a_refusal(sub, publisher)
    time.sleep(1.0)  # a few retries
    assert publisher.outbox.depth == 20 and event_payloads(sub) == []
    assert registry.get_sample_value("streamseg_mqtt_events_acked_total") == 0
    errors = [r for r in caplog.records if "refused an event" in r.getMessage()]
    assert len(errors) == 1 and errors[0].levelno == logging.ERROR
    assert "Not authorized" in errors[0].getMessage() and "ACL" in errors[0].getMessage()
    # The state topics are allowed: they went through all along.
    assert sub.on(f"{PREFIX}/available") == [b"online"]

    broker.set_acl(ACL_WITHOUT_EVENTS.replace("user sub", f"topic write {PREFIX}/events\nuser sub"))
    sub.wait_for(lambda s: keys_of(event_payloads(s)) == _keys(events), timeout=15)
    sub.wait_for(lambda s: publisher.outbox.depth == 0)
    assert [p["frame_index"] for p in event_payloads(sub)] == list(range(20))  # in order
    assert any("takes events again" in r.getMessage() for r in caplog.records)
    assert publisher.outbox.quarantine_path.exists() is False
    sub.close()


def test_close_does_not_wait_for_acknowledgements_the_broker_refuses(
    tmp_path: Path,
    mosquitto: Callable[..., Mosquitto],
    publisher_for: Callable[..., MqttPublisher],
) -> None:
    """Audit: while the broker refused events, close() waited its whole timeout (5 s on every
    shutdown) for acknowledgements that could not come. The events stay for the next start."""
    broker = mosquitto(users={"pub": "pw", "sub": "pw"}, acl=ACL_WITHOUT_EVENTS)
    sub = Subscriber(broker.port, f"{PREFIX}/#", username="sub", password="pw")
    publisher = publisher_for(broker.port, username="pub", password="pw")
    publisher.start()
    for i in range(5):
        publisher.on_event(make_event(i))
    wait_for_a_refusal(sub, publisher)
    started = time.monotonic()
    publisher.close(timeout=5)
    assert time.monotonic() - started < 2.0
    sub.wait_for(lambda s: s.on(f"{PREFIX}/available")[-1:] == [b"offline"])
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        assert outbox.depth == 5
    sub.close()


def test_connections_that_keep_being_taken_over_are_explained_once(
    tmp_path: Path,
    mosquitto: Callable[..., Mosquitto],
    publisher_for: Callable[..., MqttPublisher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Audit: two publishers with one client id knock each other off the broker about every
    reconnect delay; each lost connection was a WARNING ("Unspecified error"), hundreds a minute,
    and nothing named the client id (mosquitto 2.0 closes the older connection without saying
    why, even on MQTT 5). Now: one ERROR per publisher naming the id, then quiet."""
    broker = mosquitto()
    first = publisher_for(broker.port, client_id="twin")
    second = publisher_for(
        broker.port, client_id="twin", outbox={"path": str(tmp_path / "second.sqlite3")}
    )
    with caplog.at_level(logging.DEBUG, logger="streamseg.outputs.mqtt"):
        first.start()
        second.start()
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            time.sleep(0.05)
        second.close(timeout=0)
        first.close(timeout=0)
    lost = [r for r in caplog.records if "lost the connection" in r.getMessage()]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    warnings = [r for r in lost if r.levelno == logging.WARNING]
    assert len(lost) >= 10, "the two did not knock each other off as expected"
    assert 1 <= len(errors) <= 2 and all("'twin'" in r.getMessage() for r in errors), errors
    assert len(warnings) <= 4


def test_a_retained_message_the_broker_refuses_is_said_once(
    mosquitto: Callable[..., Mosquitto],
    publisher_for: Callable[..., MqttPublisher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """MQTT 5 audit: a retained state (or count, discovery config, stale-topic clear) the
    broker's ACL refused went unseen. Now it is an ERROR, once per reason; events still go."""
    acl = (
        f"user pub\ntopic write {PREFIX}/available\ntopic write {PREFIX}/events\n"
        "user sub\ntopic read #\n"
    )
    broker = mosquitto(users={"pub": "pw", "sub": "pw"}, acl=acl)
    sub = Subscriber(broker.port, f"{PREFIX}/#", username="sub", password="pw")
    publisher = publisher_for(broker.port, username="pub", password="pw")
    caplog.set_level(logging.INFO, logger="streamseg.outputs.mqtt")
    publisher.start()
    sub.wait_for(lambda s: s.on(f"{PREFIX}/available") == [b"online"])
    for on in (True, False, True):
        publisher.on_rule_state("gate", "r1", on)
    event = make_event(0)
    publisher.on_event(event)
    sub.wait_for(lambda s: keys_of(event_payloads(s)) == _keys([event]))
    sub.wait_for(lambda s: "refused a retained message" in caplog.text)
    refusals = [r for r in caplog.records if "refused a retained message" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].levelno == logging.ERROR
    assert "Not authorized" in refusals[0].getMessage()
    assert f"{PREFIX}/#" in refusals[0].getMessage()
    assert sub.on(f"{PREFIX}/gate/r1/state") == []
    sub.close()

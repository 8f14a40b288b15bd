"""The outbox sender's window and refusals, with a stand-in paho client (no broker: what is
measured is how many messages the sender hands to paho, which a broker cannot show)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from prometheus_client import CollectorRegistry

from streamseg.config.mqtt import MqttOutputConfig
from streamseg.outputs.mqtt import Outbox
from streamseg.outputs.mqtt.metrics import MqttMetrics
from streamseg.outputs.mqtt.sender import OutboxSender


class StandInClient:
    """Records ``publish`` calls like paho's client (a new mid each), never acknowledges."""

    def __init__(self) -> None:
        self.published: list[tuple[int, str, bytes]] = []
        self._lock = threading.Lock()

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> Any:
        with self._lock:
            mid = len(self.published) + 1
            self.published.append((mid, topic, payload))
        info = mqtt.MQTTMessageInfo(mid)
        info.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        return info

    def count(self) -> int:
        with self._lock:
            return len(self.published)


def _wait(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _sender(tmp_path: Path, max_inflight: int) -> tuple[OutboxSender, StandInClient, Outbox]:
    outbox = Outbox(tmp_path / "o.sqlite3")
    for i in range(50):
        outbox.add("p/events", f"e{i}".encode(), 1)
    client = StandInClient()
    config = MqttOutputConfig(max_inflight=max_inflight)
    metrics = MqttMetrics(lambda: float(outbox.depth), CollectorRegistry())
    sender = OutboxSender(
        client,  # type: ignore[arg-type]
        outbox,
        config,
        metrics,
        shrunk=lambda: None,
        closing=lambda: False,
    )
    sender.start()
    return sender, client, outbox


def test_the_window_keeps_to_the_brokers_receive_maximum(tmp_path: Path) -> None:
    """An MQTT 5 broker announces how many unacknowledged messages it takes (mosquitto: 20 by
    default); one sent more may disconnect the client. paho does not enforce it: the sender
    does, under its own max_inflight."""
    sender, client, outbox = _sender(tmp_path, max_inflight=30)
    sender.connected(receive_maximum=8)
    _wait(lambda: client.count() == 8)
    time.sleep(0.2)
    assert client.count() == 8  # no more until acknowledged
    sender.acked(1)
    sender.acked(2)
    _wait(lambda: client.count() == 10)
    time.sleep(0.2)
    assert client.count() == 10
    # A broker that announces none: max_inflight.
    sender.connected(receive_maximum=0)
    _wait(lambda: client.count() == 10 + 30)
    sender.stop()
    outbox.close()


def test_a_refused_event_stays_and_is_sent_again_alone(tmp_path: Path) -> None:
    """A refusal (MQTT 5 reason code) keeps the row; the sender pauses, then sends the oldest
    refused row again, one at a time, until one gets through."""
    from streamseg.outputs.mqtt import sender as sender_module

    original = sender_module.REFUSED_RETRY_S
    sender_module.REFUSED_RETRY_S = 0.2
    try:
        sender, client, outbox = _sender(tmp_path, max_inflight=5)
        sender.connected()
        _wait(lambda: client.count() == 5)
        for mid in range(1, 6):
            sender.acked(mid, (0x87, "Not authorized"))
        _wait(lambda: client.count() == 6)  # after the pause: the oldest again, alone
        assert client.published[5][2] == b"e0"
        time.sleep(0.1)
        assert client.count() == 6 and outbox.depth == 50
        sender.acked(6)  # taken now: the rest follow, the window open again
        _wait(lambda: client.count() == 6 + 5)
        assert [payload for _, _, payload in client.published[6:]] == [
            b"e1",
            b"e2",
            b"e3",
            b"e4",
            b"e5",
        ]
        _wait(lambda: outbox.depth == 49)
        sender.stop()
        outbox.close()
    finally:
        sender_module.REFUSED_RETRY_S = original

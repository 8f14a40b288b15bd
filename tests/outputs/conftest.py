"""Fixtures of the output tests."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.mosquitto import Mosquitto

from streamseg.config import PipelineConfig
from streamseg.outputs.mqtt import MqttPublisher, build_mqtt_publisher

BROKER_MAX_PACKET_BYTES = 100_000
"""``max_packet_size`` of :func:`small_packet_mosquitto`: under the publisher's default limits."""


@pytest.fixture
def built_publisher() -> Iterator[Callable[[PipelineConfig], MqttPublisher]]:
    """Factory: the MQTT publisher of a pipeline (built, not started); closed at teardown."""
    made: list[MqttPublisher] = []

    def build(config: PipelineConfig) -> MqttPublisher:
        publisher = build_mqtt_publisher(config)
        assert publisher is not None
        made.append(publisher)
        return publisher

    yield build
    for publisher in made:
        publisher.close(timeout=0)


@dataclass
class SmallPacketMosquitto(Mosquitto):
    """A mosquitto that disconnects a client as soon as it sends a packet larger than
    ``max_packet_size`` bytes, as brokers with a packet limit do (AWS IoT, EMQX, a tuned
    mosquitto); MQTT 3.1.1 gives the client no way to learn the limit."""

    max_packet_size: int = BROKER_MAX_PACKET_BYTES

    def config_text(self) -> str:
        """The usual test config plus the packet limit."""
        return super().config_text() + f"max_packet_size {self.max_packet_size}\n"


@pytest.fixture
def small_packet_mosquitto(tmp_path: Path) -> Iterator[SmallPacketMosquitto]:
    """A started :class:`SmallPacketMosquitto` (``max_packet_size``
    :data:`BROKER_MAX_PACKET_BYTES`) on a free loopback port; killed at teardown."""
    broker = SmallPacketMosquitto(tmp_path / "mosquitto-small", persistence=False)
    broker.start()
    yield broker
    broker.kill()


class BlipProxy:
    """A TCP proxy from a loopback port to a broker, to make network blips the broker does not
    cause: :attr:`blackhole` drops what clients send (the broker hears nothing, the client
    notices nothing), :attr:`mute_after_connack` does the same on each connection once the broker
    has answered (connections come up, then go silent: a dead link), :meth:`cut` breaks every open
    connection (new ones are still accepted).

    Args:
        target_port: the broker's port on 127.0.0.1.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.blackhole = False
        self.mute_after_connack = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        threading.Thread(target=self._accept, name="blip-proxy", daemon=True).start()

    def cut(self) -> None:
        """Break every connection open now (both sides see it closed)."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        """Stop accepting and break every connection."""
        self._server.close()
        self.cut()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:  # closed
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            answered = threading.Event()  # the broker has sent something (the CONNACK)
            for source, sink, from_client in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pump, args=(source, sink, from_client, answered), daemon=True
                ).start()

    def _pump(
        self,
        source: socket.socket,
        sink: socket.socket,
        from_client: bool,
        answered: threading.Event,
    ) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if not from_client:
                    sink.sendall(data)
                    answered.set()
                elif not (self.blackhole or (self.mute_after_connack and answered.is_set())):
                    sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def blip_proxy() -> Iterator[Callable[[int], BlipProxy]]:
    """Factory: ``blip_proxy(broker_port)`` starts a :class:`BlipProxy`; closed at teardown."""
    made: list[BlipProxy] = []

    def start(target_port: int) -> BlipProxy:
        proxy = BlipProxy(target_port)
        made.append(proxy)
        return proxy

    yield start
    for proxy in made:
        proxy.close()

"""A real mosquitto broker for integration tests, on a free loopback port.

``Mosquitto(workdir).start()`` writes a config (``listener PORT 127.0.0.1``, anonymous access,
``max_queued_messages`` raised: the default 1000 silently drops QoS 1 messages to a slow
subscriber), starts ``/usr/sbin/mosquitto`` and waits until the port accepts connections.
``stop()`` (SIGTERM: the broker saves its persistence file) and ``kill()`` (SIGKILL) end it;
``start()`` again reuses the same port, so clients reconnect to the same address.

Options: ``persistence`` (sessions, queued messages and retained messages survive a graceful
restart), ``users`` (a password file; anonymous access off), ``acl`` (the text of an
``acl_file``; :meth:`Mosquitto.set_acl` changes it on the running broker), ``websockets_port``,
and ``tls`` (a listener with the given server certificate instead of the plain one).

:class:`Subscriber` records what a paho client receives, with a deadline-bound ``wait_for``;
:func:`client_keys` is the ``outputs.mqtt`` block of a streamseg that talks to such a broker.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
INSTALL_HINT = "install the Debian package mosquitto (sudo .ci/run does it)"


def client_keys(port: int, outbox: Path, client_id: str) -> dict[str, Any]:
    """``outputs.mqtt`` keys for a test broker on loopback ``port``: a short keepalive and fast
    reconnects (tests wait for them), the outbox file ``outbox``."""
    return {
        "host": "127.0.0.1",
        "port": port,
        "keepalive_s": 2,
        "client_id": client_id,
        "reconnect": {"min_delay_s": 0.05, "max_delay_s": 0.2},
        "outbox": {"path": str(outbox), "synchronous": "normal"},
    }


_GIVEN: set[int] = set()
"""Ports :func:`free_port` handed out in this process."""


def _ephemeral_range() -> tuple[int, int]:
    """The ports the kernel picks for outgoing connections (Linux; its default elsewhere)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, outside the ephemeral range.

    A port the kernel also hands out as the source of outgoing connections is unsafe for a
    broker started after its clients: a client retrying a connection to it can be given that
    same port as its source and connect to itself (TCP simultaneous open), and then the broker
    cannot bind it ("Address already in use"; seen once in CI).
    """
    low, high = _ephemeral_range()
    candidates = [
        port for port in range(20000, 32768) if not low <= port <= high and port not in _GIVEN
    ]
    for port in random.sample(candidates, 200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            _GIVEN.add(port)  # two brokers of one test, chosen before either listens, differ
            return port
    raise RuntimeError("no free TCP port on 127.0.0.1 outside the ephemeral range")


@dataclass(frozen=True)
class BrokerTls:
    """Server side of a TLS listener (PEM files)."""

    cafile: Path
    certfile: Path
    keyfile: Path


@dataclass
class Mosquitto:
    """One mosquitto broker, restartable on the same port.

    Attributes:
        workdir: folder for the config, log, password and persistence files.
        port: the MQTT (TCP) port, chosen at construction.
        persistence: keep sessions and retained messages across a graceful restart.
        users: ``{user: password}``; when set, anonymous clients are refused.
        websockets_port: also listen for MQTT over websockets on this port.
        tls: serve TLS on ``port`` instead of plain MQTT.
        acl: the broker's ``acl_file`` text (``user NAME`` / ``topic read|write|readwrite
            TOPIC`` lines); ``None``: every client may read and write everything.
    """

    workdir: Path
    port: int = field(default_factory=free_port)
    persistence: bool = True
    users: dict[str, str] | None = None
    websockets_port: int | None = None
    tls: BrokerTls | None = None
    acl: str | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """The broker's log file."""
        return self.workdir / "mosquitto.log"

    def config_text(self) -> str:
        """The mosquitto.conf this broker runs with."""
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if self.users else 'true'}",
            "max_queued_messages 100000",
            "max_inflight_messages 0",
            # As root, mosquitto would switch to the user 'mosquitto', which cannot write here.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.cafile}",
                f"certfile {self.tls.certfile}",
                f"keyfile {self.tls.keyfile}",
            ]
        if self.users:
            lines.append(f"password_file {self.workdir / 'passwords'}")
        if self.acl is not None:
            lines.append(f"acl_file {self.workdir / 'acl'}")
        if self.websockets_port is not None:
            lines += [f"listener {self.websockets_port} 127.0.0.1", "protocol websockets"]
        if self.persistence:
            lines += [
                "persistence true",
                f"persistence_location {self.workdir}/",
                "persistence_file mosquitto.db",
            ]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 10.0) -> Mosquitto:
        """Start the broker and wait until its port accepts TCP connections.

        Raises:
            RuntimeError: mosquitto is missing, exited, or did not listen within ``timeout``.
        """
        if not os.path.exists(MOSQUITTO):
            raise RuntimeError(f"{MOSQUITTO} not found: {INSTALL_HINT}")
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"mosquitto already runs on port {self.port}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.users:
            self._write_passwords()
        if self.acl is not None:
            (self.workdir / "acl").write_text(self.acl)
        config = self.workdir / "mosquitto.conf"
        config.write_text(self.config_text())
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        ports = [self.port] + ([self.websockets_port] if self.websockets_port else [])
        while not all(_accepts(port) for port in ports):
            if self.proc.poll() is not None:
                stderr = (
                    self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                )
                raise RuntimeError(
                    f"mosquitto exited with {self.proc.returncode}: {stderr.strip()[-500:]}; "
                    f"log: {self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"mosquitto did not listen on {ports} within {timeout} s")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (the broker saves its persistence file), SIGKILL if it lingers."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        self._close_pipes()

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without saving anything."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._close_pipes()

    def restart(self) -> None:
        """Stop gracefully and start again on the same port."""
        self.stop()
        self.start()

    def set_acl(self, acl: str) -> None:
        """Give the running broker a new ACL (it rereads its acl_file on SIGHUP)."""
        assert self.proc is not None and self.proc.poll() is None, "the broker is not running"
        self.acl = acl
        (self.workdir / "acl").write_text(acl)
        self.proc.send_signal(signal.SIGHUP)

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the broker's log (for failure messages)."""
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def _write_passwords(self) -> None:
        assert self.users is not None
        path = self.workdir / "passwords"
        path.unlink(missing_ok=True)
        for i, (user, password) in enumerate(self.users.items()):
            args = [MOSQUITTO_PASSWD, "-b"] + (["-c"] if i == 0 else []) + [str(path)]
            subprocess.run([*args, user, password], check=True, capture_output=True, timeout=30)

    def _close_pipes(self) -> None:
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True)
class Received:
    """One message a :class:`Subscriber` got."""

    topic: str
    payload: bytes
    retain: bool
    qos: int


class Subscriber:
    """A paho client that records every message on ``topic`` (thread-safe).

    Args:
        port: broker port on 127.0.0.1.
        topic: subscription filter.
        client_id: fixed id; with ``persistent`` the broker keeps the session (and queues QoS 1
            messages) while this client is away or the broker restarts.
        persistent: ``clean_session=False``.
        username, password: credentials, if the broker wants them.
        tls_ca: CA file to connect with TLS.
        wait: block until the subscription is acknowledged.
    """

    def __init__(
        self,
        port: int,
        topic: str = "#",
        *,
        client_id: str = "",
        persistent: bool = False,
        username: str | None = None,
        password: str | None = None,
        tls_ca: Path | None = None,
        wait: bool = True,
    ) -> None:
        self.topic = topic
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=not persistent,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls_ca is not None:
            self.client.tls_set(ca_certs=str(tls_ca))
        self.client.reconnect_delay_set(min_delay=0.05, max_delay=0.2)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", port, keepalive=5)
        self.client.loop_start()
        if wait and not self._subscribed.wait(timeout=10):
            self.close()
            raise TimeoutError(f"no SUBACK for {topic!r} on port {port} within 10 s")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, reasons: Any, props: Any) -> None:
        self._subscribed.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._cond:
            self.messages.append(
                Received(message.topic, bytes(message.payload), bool(message.retain), message.qos)
            )
            self._cond.notify_all()

    def on(self, topic: str) -> list[bytes]:
        """Payloads received on ``topic``, in order."""
        with self._cond:
            return [m.payload for m in self.messages if m.topic == topic]

    def wait_for(self, predicate: Callable[[Subscriber], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate(self)`` holds.

        Raises:
            TimeoutError: it did not within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"condition not met within {timeout} s")
                # Wake now and then: a predicate may depend on more than the messages.
                self._cond.wait(timeout=min(remaining, 0.1))

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()

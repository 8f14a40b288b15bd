"""The operations endpoint (``/metrics``, ``/healthz``, ``/readyz``) and the idle empty shard."""

from __future__ import annotations

import errno
import json
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from helpers.mosquitto import Mosquitto, Subscriber, free_port
from prometheus_client import CollectorRegistry, Counter

from streamseg.cli import main
from streamseg.runtime.health import OpsServer, Readiness
from streamseg.runtime.shard import shard_of


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("demo_things", "Things", registry=registry).inc(3)
    return registry


@pytest.fixture
def restore_signals() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_serves_metrics_health_and_readiness_on_one_port(registry: CollectorRegistry) -> None:
    state = {"ready": Readiness(False, "model not loaded")}
    server = OpsServer(registry, lambda: state["ready"], "127.0.0.1", 0)
    try:
        assert server.port > 0  # port 0: the OS picked one, and the server reports it
        status, body = _get(server.url + "/metrics")
        assert status == 200 and "demo_things_total 3.0" in body
        assert _get(server.url + "/healthz") == (200, '{"alive": true}')
        status, body = _get(server.url + "/readyz")
        assert (status, json.loads(body)) == (503, {"ready": False, "reason": "model not loaded"})
        state["ready"] = Readiness(True, "ok")
        assert _get(server.url + "/readyz?verbose=1")[0] == 200
        status, body = _get(server.url + "/nope")
        assert status == 404 and "/readyz" in json.loads(body)["error"]
    finally:
        server.stop()
        server.stop()  # idempotent
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url + "/healthz", timeout=2)


def test_a_failing_readiness_check_answers_503(registry: CollectorRegistry) -> None:
    def broken() -> Readiness:
        raise RuntimeError("boom")

    server = OpsServer(registry, broken, "127.0.0.1", 0)
    try:
        status, body = _get(server.url + "/readyz")
    finally:
        server.stop()
    assert status == 503 and "boom" in json.loads(body)["reason"]


def test_a_port_in_use_is_a_clear_oserror(registry: CollectorRegistry) -> None:
    server = OpsServer(registry, lambda: Readiness(True, "ok"), "127.0.0.1", 0)
    try:
        # The message names the setting and the address (it used to be the bare errno text).
        expected = f"metrics.port\\) 127.0.0.1:{server.port}: Address already in use"
        with pytest.raises(OSError, match=expected) as info:
            OpsServer(registry, lambda: Readiness(True, "ok"), "127.0.0.1", server.port)
        assert info.value.errno == errno.EADDRINUSE
    finally:
        server.stop()


def test_a_shard_without_sources_idles_ready_until_sigterm(
    tmp_path: Path, restore_signals: None
) -> None:
    # cam0 belongs to one of two shards; run the other one.
    empty = 1 - shard_of("cam0", 2)
    port = free_port()
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        "sources: [{id: cam0, type: file, path: /nonexistent.mp4}]\n"
        f"metrics: {{enabled: true, port: {port}}}\n"
    )
    seen: list[tuple[int, str]] = []
    signalled: list[float] = []

    def probe_then_stop() -> None:
        for _ in range(100):
            try:
                seen.append(_get(f"http://127.0.0.1:{port}/readyz"))
                break
            except urllib.error.URLError:
                threading.Event().wait(0.05)
        # Delivered to this thread, not the main one: the worst case of a process-wide SIGTERM
        # (an untimed wait in the main thread once missed it and hung until the test timed out).
        signalled.append(time.monotonic())
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    prober = threading.Thread(target=probe_then_stop)
    prober.start()
    try:
        assert main(["run", str(pipeline), "--no-progress", "--shard", f"{empty}/2"]) == 0
        stopped_after = time.monotonic() - signalled[0]
    finally:
        prober.join()
    assert stopped_after < 5.0, f"the idle shard took {stopped_after:.1f} s to see SIGTERM"
    status, body = seen[0]
    assert (status, json.loads(body)["ready"]) == (200, True)
    assert f"shard {empty}/2 owns no source" in json.loads(body)["reason"]


def test_a_shard_without_sources_still_connects_to_mqtt(
    tmp_path: Path, restore_signals: None, mosquitto: Callable[..., Mosquitto]
) -> None:
    """Regression: a shard that owns no source never connected: it published no ``online``
    and left the retained topics an earlier layout had under its streams for ever."""
    empty = 1 - shard_of("cam0", 2)
    gone = next(f"old{k}" for k in range(100) if shard_of(f"old{k}", 2) == empty)
    broker = mosquitto()
    prefix = "streamseg/idle"
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="earlier-layout")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    client.publish(f"{prefix}/{gone}/status", b"streaming", qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        "name: idle\n"
        "sources: [{id: cam0, type: file, path: /nonexistent.mp4}]\n"
        f"outputs: {{mqtt: {{host: 127.0.0.1, port: {broker.port}}}}}\n"
    )
    watch = Subscriber(broker.port, f"{prefix}/#")

    def stop_when_connected() -> None:
        try:
            watch.wait_for(
                lambda s: (
                    s.on(f"{prefix}/shards/{empty}/available")[-1:] == [b"online"]
                    and s.on(f"{prefix}/{gone}/status")[-1:] == [b""]
                ),  # cleared
                timeout=30,
            )
        finally:
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    stopper = threading.Thread(target=stop_when_connected)
    stopper.start()
    try:
        assert main(["run", str(pipeline), "--no-progress", "--shard", f"{empty}/2"]) == 0
    finally:
        stopper.join()
    try:
        assert watch.on(f"{prefix}/{gone}/status")[-1:] == [b""]
        assert watch.on(f"{prefix}/shards/{empty}/available")[-1:] == [b"offline"]  # clean stop
    finally:
        watch.close()

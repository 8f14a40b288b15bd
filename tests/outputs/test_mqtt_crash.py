"""streamseg killed with SIGKILL: the outbox survives and drains on restart; the occurrences it
left open get their end from the restarted run; the will fires.

Each test runs the publisher in a child Python process (the script below), so the kill is real:
no ``close()``, no ``finally``, no clean MQTT disconnect.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jsonschema
import pytest
from helpers.mosquitto import Mosquitto, Subscriber

from streamseg.outputs.mqtt import Outbox
from streamseg.rules import event_schema

pytestmark = pytest.mark.integration

PREFIX = "streamseg/crashy"

CHILD = """
import sys, time
from streamseg.config import load_pipeline
from streamseg.outputs.mqtt import build_mqtt_publisher

config_path, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "lifecycle":  # date the open occurrences "still open" often, for a short test
    import streamseg.outputs.mqtt.publisher
    streamseg.outputs.mqtt.publisher.OPEN_OCCURRENCES_SEEN_S = 0.2
publisher = build_mqtt_publisher(load_pipeline(config_path))
publisher.start()
if mode == "raise":  # events while the broker is down, then wait to be killed
    from streamseg.rules import Event, new_event_id  # slow to import: only where needed

    for i in range(count):
        event = Event(new_event_id(), "start", "r1", "inside", "gate", 1.0, 0.0, i / 25, i)
        publisher.on_event(event)
        print("EVENT", event.event_id, flush=True)
    print("READY", flush=True)
elif mode == "lifecycle":  # occurrences in every stage of their life, then wait to be killed
    import dataclasses
    from streamseg.rules import Event, new_event_id

    def message(event_id, type_, seq, pts, **fields):
        return Event(event_id, type_, "r1", "inside", "gate", 100.0, 2.0, pts, int(pts * 25),
                     seq=seq, track_ids=(7,), class_names=("person",), **fields)

    started, updated, ended = new_event_id(), new_event_id(), new_event_id()
    publisher.on_event(message(started, "start", 0, 2.0, details={"overlap": 0.5}))
    publisher.on_event(message(updated, "start", 0, 2.0, details={"overlap": 0.5}))
    publisher.on_event(
        message(updated, "update", 1, 5.5, details={"overlap": 0.75, "hidden": True,
                                                    "last_seen_pts": 5.0})
    )
    publisher.on_event(message(ended, "start", 0, 2.0))
    publisher.on_event(
        message(ended, "end", 1, 3.0, ended_at=101.0, details={"reason": "left"})
    )
    print("OPEN", started, updated, flush=True)
    print("ENDED", ended, flush=True)
    print("READY", flush=True)
elif mode == "connect":  # connect, then wait to be killed
    while not publisher.connected:
        time.sleep(0.01)
    print("READY", flush=True)
elif mode == "drain":  # a restart: send what the outbox holds, then close cleanly
    print("READY", flush=True)
    while publisher.outbox.depth:
        time.sleep(0.01)
    publisher.close(timeout=5)
    print("DONE", flush=True)
    sys.exit(0)
time.sleep(60)
"""


class Child:
    """One child process running ``CHILD``; its stdout lines arrive on a queue."""

    def __init__(self, script: Path, config: Path, mode: str, count: int = 0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(config), mode, str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def read_until(self, marker: str, timeout: float = 20.0) -> list[str]:
        """The lines before ``marker``; fails the test on timeout or exit."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, min(0.2, deadline - time.monotonic())))
            except queue.Empty:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    stderr = self.proc.stderr.read() if self.proc.stderr else ""
                    pytest.fail(f"child printed no {marker!r} (exit {self.proc.poll()}): {stderr}")
                continue
            if line == marker:
                return seen
            seen.append(line)

    def sigkill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=10) == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def child(tmp_path: Path) -> Iterator[Callable[..., Child]]:
    """Factory: ``child(config_path, mode, count=0)`` starts the publisher child process."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    started: list[Child] = []

    def start(config: Path, mode: str, count: int = 0) -> Child:
        started.append(Child(script, config, mode, count))
        return started[-1]

    yield start
    for process in started:
        process.stop()


def write_config(path: Path, port: int, outbox: Path) -> Path:
    mqtt = {
        "host": "127.0.0.1",
        "port": port,
        "keepalive_s": 1,
        "reconnect": {"min_delay_s": 0.05, "max_delay_s": 0.2},
        "outbox": {"path": str(outbox)},
    }
    path.write_text(
        "name: crashy\nsources: [{id: gate, type: file, path: x.mp4}]\n"
        f"outputs: {{mqtt: {json.dumps(mqtt)}}}\n"
    )
    return path


def test_events_in_the_outbox_survive_sigkill_and_go_out_on_restart(
    tmp_path: Path, mosquitto: Callable[..., Mosquitto], child: Callable[..., Child]
) -> None:
    broker = mosquitto()
    broker.stop()  # down while the first process raises its events
    outbox_path = tmp_path / "state" / "outbox.sqlite3"
    config = write_config(tmp_path / "p.yaml", broker.port, outbox_path)

    first = child(config, "raise", 25)
    ids = [line.split()[1] for line in first.read_until("READY") if line.startswith("EVENT")]
    first.sigkill()
    assert len(ids) == 25
    with Outbox(outbox_path) as outbox:  # the kill released the lock; every event is there
        assert outbox.depth == 25

    broker.start()
    sub = Subscriber(broker.port, f"{PREFIX}/events")
    second = child(config, "drain")
    second.read_until("READY")
    sub.wait_for(
        lambda s: {json.loads(p)["event_id"] for p in s.on(f"{PREFIX}/events")} >= set(ids)
    )
    second.read_until("DONE")
    assert second.proc.wait(timeout=10) == 0
    with Outbox(outbox_path) as outbox:
        assert outbox.depth == 0
    sub.close()


def test_occurrences_left_open_by_a_killed_run_are_ended_by_the_next(
    tmp_path: Path, mosquitto: Callable[..., Mosquitto], child: Callable[..., Child]
) -> None:
    """Regression: after a SIGKILL, consumers kept a ``start`` with no ``end`` for ever (the
    restarted run set the rule states OFF, but sent no end). The restarted run ends each
    occurrence left open, after its last message, with ``reason: interrupted``."""
    broker = mosquitto()
    broker.stop()  # down: the messages are still in the outbox when the process dies
    outbox_path = tmp_path / "outbox.sqlite3"
    config = write_config(tmp_path / "p.yaml", broker.port, outbox_path)
    first = child(config, "lifecycle")
    lines = first.read_until("READY")
    stored = time.time()  # every message was stored before READY
    time.sleep(1.5)  # the run goes on for a while with two occurrences open
    first.sigkill()
    killed = time.time()
    started, updated = next(x for x in lines if x.startswith("OPEN")).split()[1:]
    ended = next(x for x in lines if x.startswith("ENDED")).split()[1]
    with Outbox(outbox_path) as outbox:
        assert {o.event_id for o in outbox.open_occurrences()} == {started, updated}

    broker.start()
    sub = Subscriber(broker.port, f"{PREFIX}/events")
    second = child(config, "drain")
    second.read_until("DONE")
    sub.wait_for(lambda s: len(s.on(f"{PREFIX}/events")) == 7)
    messages = [json.loads(p) for p in sub.on(f"{PREFIX}/events")]
    for payload in messages:
        jsonschema.validate(payload, event_schema())
    ends = {m["event_id"]: m for m in messages if m["type"] == "end"}
    assert set(ends) == {started, updated, ended}
    assert ends[ended]["details"] == {"reason": "left"}  # ended cleanly: not ended again
    # Each comes after the occurrence's other messages, with the next seq, at the frame of
    # its latest message, dated when the dead run last saw it open (every 0.2 s here), not
    # when it stored that message (regression: 1.5 s before the death here; up to
    # update_interval_s for an ``inside`` occurrence).
    assert [m["type"] for m in messages if m["event_id"] == updated] == ["start", "update", "end"]
    assert (ends[started]["seq"], ends[updated]["seq"]) == (1, 2)
    for end in (ends[started], ends[updated]):
        assert stored + 0.8 <= end["ended_at"] <= killed
    assert ends[updated]["frame_pts"] == pytest.approx(5.5)
    assert ends[started]["details"] == {"overlap": 0.5, "reason": "interrupted"}
    assert ends[updated]["details"] == {"overlap": 0.75, "reason": "interrupted"}
    assert ends[updated]["track_ids"] == [7]
    with Outbox(outbox_path) as outbox:  # ended once: a third run sends nothing more
        assert (outbox.depth, outbox.open_occurrences()) == (0, [])
    sub.close()


def test_last_will_says_offline_when_the_process_dies(
    tmp_path: Path, mosquitto: Callable[..., Mosquitto], child: Callable[..., Child]
) -> None:
    broker = mosquitto()
    config = write_config(tmp_path / "p.yaml", broker.port, tmp_path / "outbox.sqlite3")
    sub = Subscriber(broker.port, f"{PREFIX}/available")
    process = child(config, "connect")
    process.read_until("READY")
    sub.wait_for(lambda s: s.on(f"{PREFIX}/available")[-1:] == [b"online"])
    process.sigkill()
    sub.wait_for(lambda s: s.on(f"{PREFIX}/available")[-1:] == [b"offline"], timeout=5)
    # Retained: a consumer that arrives later reads offline too.
    late = Subscriber(broker.port, f"{PREFIX}/available")
    late.wait_for(lambda s: s.on(f"{PREFIX}/available") == [b"offline"])
    late.close()
    sub.close()

"""The fault suite of issue #7: one ``streamseg run`` that lives through every fault at once.

One real ``streamseg run PIPELINE.yaml`` process (built-in model, mask tracker, the site-safety
rules of ``pipelines/machinery_zone.yaml``, the MQTT publisher with its SQLite outbox, the JSONL
event log, continuous recording, the metrics endpoint) reads three sources:

* ``cam_a`` and ``cam_b``: real GStreamer RTSP servers looping a synthetic yard scene in real
  time (``helpers/looped_rtsp.py``);
* ``bad``: the same scene as an H.264 file, read in real time, with the payload of a few
  packets overwritten by random bytes (``helpers/corrupt_video.py``).

Faults, in order, each one waited for on a condition (a log record, a metric, a broker
message) with a deadline, never on a bare sleep:

1. ``rec/cam_a`` is a regular file, so every recording write of ``cam_a`` fails with an
   ``OSError`` (``FileExistsError``: its folder cannot be made), like a full or read-only disk;
   the tests run as root, where file modes stop no write, so this is the failure that can be
   forced portably (as in ``tests/record/test_record_disk_errors.py``). ``cam_b`` and ``bad``
   record into the same ``rec`` folder normally.
2. The corrupt packets of ``bad`` arrive 2.7 s in: counted, skipped, the stream goes on.
3. ``cam_a``'s server is SIGKILLed, then the broker is stopped; events raised meanwhile wait in
   the outbox; ``cam_a`` fails to reconnect at least once.
4. ``cam_a``'s server is restarted: the camera reconnects and is analysed again. The broker
   comes back: the outbox drains and the subscriber has every event logged so far.
5. ``cam_a``'s server hangs (SIGSTOP: connections stay open and are accepted, nothing is sent):
   the source goes ``stalled`` and reconnects; once the server goes on (SIGCONT) the camera is
   analysed again.
6. ``cam_a``'s server hangs again and the broker is stopped again; once an event waits in the
   outbox and ``cam_a``'s reader is blocked opening the hung server, the process gets SIGTERM.

Asserted: ``cam_b`` is analysed all through both outages of ``cam_a`` without a pause; the
process exits promptly with status 0, with no traceback and no exception record in stderr; the
end-of-run table counts ``bad``'s corrupt packets and ``cam_a``'s reconnects; the recording
error is logged once, clearly, without a traceback, while ``cam_a``'s events keep coming; the
segments of ``cam_b`` and ``bad`` are finalized and decode with PyAV, holding every frame the
recorder took. Delivery, exactly: after the SIGTERM each logged event message was received by
the subscriber or is still in the outbox (those raised during the last outage are in it); a
restart of ``streamseg run`` on the same outbox, with the broker back, delivers them, after
which the subscriber has received exactly the logged messages (as a set of ``(event_id, type,
seq)``: delivery is at least once, duplicates allowed) and the outbox is empty.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import av
import pytest
import yaml
from helpers.corrupt_video import garble_packets, write_h264_mp4
from helpers.looped_rtsp import LoopedRtspServer, write_i420_frames
from helpers.mosquitto import Mosquitto, Subscriber, free_port
from prometheus_client.parser import text_string_to_metric_families

from streamseg.synth import SceneRenderer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT, FPS = 640, 360, 15
LOOP_FRAMES = 150  # 10 s of scene, looped by the RTSP servers
FILE_LOOPS = 2  # the corrupt file plays the scene twice: 20 s
GARBLED = {40, 41, 42}  # frames of the file whose packets are damaged (2.7 s in)
ANALYSIS_FPS = 5  # per source: keeps three streams within a 2-core machine
PREFIX = "streamseg/faults"
EVENTS_TOPIC = f"{PREFIX}/events"
SUBSCRIBER_ID = "faults-e2e-subscriber"
PUBLISHER_ID = "faults-e2e-publisher"

MAX_PAUSE_S = 1.5  # cam_b is analysed every ~0.2 s; a blocked pipeline stops for seconds
EXIT_WITHIN_S = 15.0  # the publisher waits 5 s for a broker that is down, then gives up

EventKey = tuple[str, str, int]
T = TypeVar("T")


# ------------------------------------------------------------------------------ the process


class StreamsegRun:
    """``streamseg run FILE --no-progress --log-format json`` in a subprocess.

    stderr is read line by line into :attr:`records` (the JSON log records) and
    :attr:`other_lines` (anything else, e.g. FFmpeg's own messages); stdout (the summary table)
    into :attr:`stdout_lines`.
    """

    def __init__(self, pipeline: Path) -> None:
        script = Path(sys.executable).with_name("streamseg")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "streamseg.cli"]
        self.command = [*command, "run", str(pipeline), "--no-progress", "--log-format", "json"]
        self.records: list[dict[str, Any]] = []
        self.other_lines: list[str] = []
        self.stdout_lines: list[str] = []
        self._lock = threading.Lock()
        # Wide enough that no line of the text output would fold.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "400"}
        self.proc = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._readers = [
            threading.Thread(target=self._read_stderr, name="streamseg-stderr", daemon=True),
            threading.Thread(target=self._read_stdout, name="streamseg-stdout", daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        with self.proc.stderr:
            for line in self.proc.stderr:
                line = line.rstrip("\n")
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                with self._lock:
                    if isinstance(record, dict) and "message" in record:
                        self.records.append(record)
                    elif line.strip():
                        self.other_lines.append(line)

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                with self._lock:
                    self.stdout_lines.append(line.rstrip("\n"))

    def logs(self) -> list[dict[str, Any]]:
        """The JSON log records so far."""
        with self._lock:
            return list(self.records)

    def find(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """The log records so far that satisfy ``predicate``."""
        return [r for r in self.logs() if predicate(r)]

    def stderr_text(self) -> str:
        """Everything stderr said, records back as their JSON, in arrival order per kind."""
        with self._lock:
            return "\n".join([json.dumps(r) for r in self.records] + self.other_lines)

    def tail(self, lines: int = 25) -> str:
        """The last log messages, for failure messages."""
        with self._lock:
            recent = [f"{r.get('level')} {r.get('logger')}: {r['message']}" for r in self.records]
            return "\n".join(recent[-lines:] + self.other_lines[-5:])

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit and for its pipes to be read to the end."""
        rc = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        return rc

    def kill(self) -> None:
        """SIGKILL if still running (teardown after a failure)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait_exit(timeout=10)


def wait_until(
    what: str,
    check: Callable[[], T | None],
    timeout: float,
    run: StreamsegRun | None = None,
    interval: float = 0.1,
) -> T:
    """Poll ``check`` until it returns a truthy value, and return that value.

    Fails the test when ``timeout`` passes first or when ``run`` exits meanwhile.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if run is not None and run.proc.poll() is not None:
            pytest.fail(
                f"streamseg exited with {run.proc.returncode} while waiting for {what}:\n"
                f"{run.tail()}"
            )
        if time.monotonic() > deadline:
            context = f":\n{run.tail()}" if run is not None else ""
            pytest.fail(f"no {what} within {timeout} s{context}")
        time.sleep(interval)


# ------------------------------------------------------------------------------ observations


class Metrics:
    """Scrapes the run's ``/metrics`` endpoint."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/metrics"

    def scrape(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        """Every sample, keyed by (name, labels); None while the endpoint does not answer."""
        try:
            with urllib.request.urlopen(self.url, timeout=2) as response:
                text = response.read().decode()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        """One sample's value; NaN when the endpoint does not answer or lacks it."""
        samples = self.scrape() or {}
        return samples.get((name, frozenset(labels.items())), float("nan"))

    def frames(self, stream: str) -> int:
        """Frames analysed on ``stream`` (0 before the endpoint is up)."""
        return self.frames_or_none(stream) or 0

    def frames_or_none(self, stream: str) -> int | None:
        """Frames analysed on ``stream``; None while the endpoint does not answer."""
        samples = self.scrape()
        if samples is None:
            return None
        key = ("streamseg_frames_processed_total", frozenset({("stream", stream)}))
        return int(samples.get(key, 0))

    def readiness(self) -> tuple[int, str] | None:
        """``/readyz``'s status and reason; None while the endpoint does not answer."""
        url = f"http://127.0.0.1:{self.port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None
        return status, json.loads(body)["reason"]

    def state(self, stream: str) -> str | None:
        """The source state of ``stream`` (``streaming``, ``reconnecting``, ...)."""
        for (name, labels), value in (self.scrape() or {}).items():
            tags = dict(labels)
            if name == "streamseg_source_state" and tags["stream"] == stream and value == 1:
                return tags["state"]
        return None


def event_key(payload: dict[str, Any]) -> EventKey:
    """What identifies one event message (the publisher delivers at least once)."""
    return (payload["event_id"], payload["type"], int(payload["seq"]))


def logged_events(path: Path) -> list[dict[str, Any]]:
    """The complete lines of the event log (JSONL) so far."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")[:-1]  # a line is complete once its newline is written
    return [json.loads(line) for line in lines if line]


def received_keys(subscriber: Subscriber) -> set[EventKey]:
    """Event messages the subscriber got (duplicates collapse)."""
    return {event_key(json.loads(payload)) for payload in subscriber.on(EVENTS_TOPIC)}


def outbox_keys(path: Path) -> set[EventKey]:
    """Event messages still waiting in the outbox file (read while no streamseg has it open)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT payload FROM outbox").fetchall()
    return {event_key(json.loads(bytes(payload))) for (payload,) in rows}


def log_time(record: dict[str, Any]) -> float:
    """A JSON log record's time, as UNIX seconds."""
    return datetime.fromisoformat(record["time"]).timestamp()


def backoff_s(message: str) -> float:
    """The delay of a ``reconnect attempt N to URL in D s`` log message."""
    found = re.search(r" in ([0-9.]+) s$", message)
    assert found is not None, message
    return float(found.group(1))


def recorder_figures(message: str) -> tuple[int, int, int]:
    """(frames taken, frames dropped, segments finished) from the recorder's closing line
    ``recorder STREAM: N frames, D dropped, S segment(s), ...``."""
    found = re.search(r": (\d+) frames, (\d+) dropped, (\d+) segment", message)
    assert found is not None, message
    took, dropped, segments = (int(group) for group in found.groups())
    return took, dropped, segments


def decoded_frames(path: Path) -> int:
    """Decode every frame of a video file with PyAV; returns how many."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


# ------------------------------------------------------------------------------ setup


def _mqtt(broker_port: int, outbox: Path) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": broker_port,
        "client_id": PUBLISHER_ID,
        "topic_prefix": PREFIX,
        "keepalive_s": 5,
        "reconnect": {"min_delay_s": 0.2, "max_delay_s": 1.0},
        "outbox": {"path": str(outbox)},
    }


def write_pipeline(
    tmp_path: Path, cam_urls: dict[str, str], video: Path, broker_port: int, metrics_port: int
) -> Path:
    """machinery_zone.yaml's zones and rules on the three sources, every output on."""
    doc = yaml.safe_load((ROOT / "pipelines" / "machinery_zone.yaml").read_text())
    calibration = doc["sources"][0]["calibration"]
    live = {
        "open_timeout_s": 2.0,
        "read_timeout_s": 2.0,
        "stall_timeout_s": 2.0,
        "reconnect": {"initial_delay_s": 0.2, "max_delay_s": 1.0},
    }
    sources: list[dict[str, Any]] = [
        {"id": stream, "type": "rtsp", "url": url, "fps": ANALYSIS_FPS, **live}
        for stream, url in cam_urls.items()
    ]
    sources.append(
        {"id": "bad", "type": "file", "path": str(video), "realtime": True, "fps": ANALYSIS_FPS}
    )
    for source in sources:
        source["calibration"] = calibration
    doc["name"] = "faults"
    doc["sources"] = sources
    doc["model"] = {
        "weights": "builtin",
        "device": "cpu",
        "batch_size": len(sources),
        "batch_timeout_ms": 30,
    }
    doc["outputs"] = {
        "events": {"path": str(tmp_path / "events.jsonl")},
        "mqtt": _mqtt(broker_port, tmp_path / "outbox.sqlite3"),
        "record": {
            "encoder": {"keyframe_interval_s": 1.0},
            "continuous": {"dir": str(tmp_path / "rec"), "segment_s": 4, "annotated": True},
        },
    }
    doc["metrics"] = {"enabled": True, "host": "127.0.0.1", "port": metrics_port}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def write_restart_pipeline(tmp_path: Path, video: Path, broker_port: int) -> Path:
    """The same MQTT output and outbox, on a short clean file and no rules: a restart whose only
    work is to send what the first run left in the outbox."""
    doc = {
        "name": "faults",
        "sources": [{"id": "replay", "type": "file", "path": str(video)}],
        "model": {"weights": "builtin", "device": "cpu"},
        "outputs": {"mqtt": _mqtt(broker_port, tmp_path / "outbox.sqlite3")},
    }
    path = tmp_path / "restart.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def fault_sources(tmp_path: Path) -> Iterator[tuple[dict[str, LoopedRtspServer], Path, Path]]:
    """Two RTSP servers looping the yard scene, the corrupt file, and a short clean file."""
    renderer = SceneRenderer("yard", 2, (WIDTH, HEIGHT), fps=float(FPS), difficulty="occlusion")
    images = [frame.image for frame in renderer.frames(LOOP_FRAMES)]
    pattern, _ = write_i420_frames(images, tmp_path / "frames")
    video = tmp_path / "bad.mp4"
    write_h264_mp4(images * FILE_LOOPS, video, fps=FPS, gop=FPS)
    garble_packets(video, GARBLED)
    clean = tmp_path / "clean.mp4"
    write_h264_mp4(images[:3], clean, fps=FPS, gop=FPS)
    servers: dict[str, LoopedRtspServer] = {}
    try:
        for stream in ("cam_a", "cam_b"):
            servers[stream] = LoopedRtspServer(pattern, WIDTH, HEIGHT, FPS)
        yield servers, video, clean
    finally:
        for server in servers.values():
            server.stop()


# ------------------------------------------------------------------------------ the test


class Progress:
    """Samples of one stream's analysed-frame count, in windows (one per outage of another)."""

    def __init__(self, metrics: Metrics, stream: str) -> None:
        self.metrics = metrics
        self.stream = stream
        self.windows: list[list[tuple[float, int]]] = []

    def open_window(self) -> None:
        """Start a new window with a first sample."""
        self.windows.append([])
        self.sample()

    def sample(self) -> None:
        """Record the count now in the current window (if the endpoint answers)."""
        count = self.metrics.frames_or_none(self.stream)
        if count is not None:
            self.windows[-1].append((time.monotonic(), count))

    def sampling(self, check: Callable[[], T]) -> Callable[[], T]:
        """``check``, sampling first: waiting on it keeps the window's record going."""

        def sample_then_check() -> T:
            self.sample()
            return check()

        return sample_then_check

    def longest_pause(self, window: int) -> float:
        """The longest time, in seconds, over which the count did not move in a window."""
        samples = self.windows[window]
        moved = [t for (t, n), (_, m) in itertools.pairwise(samples) if m > n]
        marks = [samples[0][0], *moved, samples[-1][0]]
        return max(b - a for a, b in itertools.pairwise(marks))

    def gained(self, window: int) -> int:
        """Frames analysed over a window."""
        samples = self.windows[window]
        return samples[-1][1] - samples[0][1]


def test_one_run_survives_every_fault_at_once_and_loses_no_event(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    fault_sources: tuple[dict[str, LoopedRtspServer], Path, Path],
    mosquitto: Callable[..., Mosquitto],
) -> None:
    servers, video, clean = fault_sources
    started = time.monotonic()
    broker = mosquitto()
    # A persistent session: the broker keeps the subscription, and queues what is published
    # while the subscriber is away, across its own restarts (it saves its state on SIGTERM).
    subscriber = Subscriber(broker.port, f"{PREFIX}/#", client_id=SUBSCRIBER_ID, persistent=True)
    request.addfinalizer(subscriber.close)
    rec = tmp_path / "rec"
    rec.mkdir()
    blocker = "a file where cam_a's recordings should go"
    (rec / "cam_a").write_text(blocker)
    events_path = tmp_path / "events.jsonl"
    outbox = tmp_path / "outbox.sqlite3"
    metrics = Metrics(free_port())
    urls = {stream: server.url for stream, server in servers.items()}
    run = StreamsegRun(write_pipeline(tmp_path, urls, video, broker.port, metrics.port))
    cam_b = Progress(metrics, "cam_b")
    timeline: dict[str, float] = {}

    def mark(what: str) -> None:
        timeline[what] = round(time.monotonic() - started, 1)

    def logged_count() -> int:
        return len(logged_events(events_path))

    def events_of(stream: str) -> int:
        return sum(e["stream_id"] == stream for e in logged_events(events_path))

    def cam_a_log(prefix: str) -> list[dict[str, Any]]:
        return run.find(lambda r: r["message"].startswith(f"source cam_a: {prefix}"))

    def wait_cam_a_streaming(what: str, frames_before: int, timeout: float) -> None:
        """Until cam_a streams again and gave 5 frames more, with cam_b sampled meanwhile."""
        wait_until(
            what,
            cam_b.sampling(
                lambda: (
                    metrics.state("cam_a") == "streaming"
                    and metrics.frames("cam_a") >= frames_before + 5
                )
            ),
            timeout=timeout,
            run=run,
        )

    def broker_down_and_outbox_holds(logged_before: int) -> Callable[[], bool]:
        return lambda: (
            logged_count() > logged_before
            and metrics.value("streamseg_mqtt_connected") == 0
            and metrics.value("streamseg_mqtt_outbox_depth") >= 1
        )

    try:
        # ---- warm-up: every source analysed; events from both cameras logged and delivered.
        wait_until(
            "frames from every source",
            lambda: all(metrics.frames(s) >= 5 for s in ("cam_a", "cam_b", "bad")),
            timeout=45,
            run=run,
        )
        mark("all streaming")
        wait_until(
            "events of both cameras in the event log",
            lambda: events_of("cam_a") and events_of("cam_b"),
            timeout=20,
            run=run,
        )
        wait_until("an event at the subscriber", lambda: received_keys(subscriber), 10, run)

        # ---- cam_a cannot record: one clear error; its alerts go on regardless.
        wait_until(
            "the error about cam_a's recording folder",
            lambda: run.find(lambda r: "cannot write the recording" in r["message"]),
            timeout=10,
            run=run,
        )
        cam_a_events = events_of("cam_a")
        wait_until(
            "an event of cam_a after its recording failed",
            lambda: events_of("cam_a") > cam_a_events,
            timeout=20,
            run=run,
        )

        # ---- the corrupt packets of the file: counted and skipped, the stream goes on.
        wait_until(
            "the warning about bad's corrupt packets",
            lambda: run.find(
                lambda r: (
                    r["level"] == "warning"
                    and r["message"].startswith("source bad: corrupt packet skipped")
                )
            ),
            timeout=15,
            run=run,
        )
        bad_frames = metrics.frames("bad")
        wait_until(
            "frames of bad analysed after its corrupt packets",
            lambda: metrics.frames("bad") >= bad_frames + 5,
            timeout=10,
            run=run,
        )
        mark("corrupt skipped")

        # ---- cam_a's server dies, then the broker goes down; cam_b goes on all along.
        cam_a_frames = metrics.frames("cam_a")
        cam_b.open_window()
        servers["cam_a"].kill()
        mark("cam_a killed")
        wait_until(
            "cam_a reconnecting",
            cam_b.sampling(lambda: metrics.state("cam_a") == "reconnecting"),
            timeout=10,
            run=run,
        )
        wait_until(
            "/readyz still ready, naming cam_a as down",
            cam_b.sampling(lambda: metrics.readiness() == (200, "degraded: cam_a reconnecting")),
            timeout=10,
            run=run,
        )
        broker.stop()
        mark("broker stopped")
        wait_until(
            "an event waiting in the outbox while the broker is down",
            cam_b.sampling(broker_down_and_outbox_holds(logged_count())),
            timeout=15,
            run=run,
        )
        cam_b_at_kill = cam_b.windows[-1][0][1]
        wait_until(
            "a failed reconnect of cam_a, with cam_b analysed meanwhile",
            cam_b.sampling(
                lambda: (
                    len(cam_a_log("reconnect attempt 2 ")) >= 1
                    and metrics.frames("cam_b") >= cam_b_at_kill + 2 * ANALYSIS_FPS
                )
            ),
            timeout=20,
            run=run,
        )

        # ---- cam_a's server comes back, then the broker: all events so far delivered.
        servers["cam_a"].restart()
        mark("cam_a restarted")
        wait_cam_a_streaming("cam_a analysed again after its reconnect", cam_a_frames, 20)
        mark("cam_a back")
        broker.start()
        mark("broker started")
        wait_until(
            "the outbox drained after the broker came back",
            lambda: (
                metrics.value("streamseg_mqtt_connected") == 1
                and metrics.value("streamseg_mqtt_outbox_depth") == 0
            ),
            timeout=15,
            run=run,
        )
        so_far = {event_key(e) for e in logged_events(events_path)}
        wait_until(
            "every event logged so far at the subscriber",
            lambda: so_far <= received_keys(subscriber),
            timeout=15,
            run=run,
        )
        mark("all delivered")

        # ---- cam_a's server hangs (accepts, sends nothing): stalled, then reconnected.
        cam_a_frames = metrics.frames("cam_a")
        stalls = len(cam_a_log("streaming -> stalled"))
        cam_b.open_window()
        servers["cam_a"].freeze()
        mark("cam_a frozen")
        wait_until(
            "cam_a stalled",
            cam_b.sampling(lambda: len(cam_a_log("streaming -> stalled")) > stalls),
            timeout=15,
            run=run,
        )
        cam_b_at_freeze = cam_b.windows[-1][0][1]
        wait_until(
            "cam_a reconnecting to its hung server, with cam_b analysed meanwhile",
            cam_b.sampling(
                lambda: (
                    metrics.state("cam_a") == "reconnecting"
                    and metrics.frames("cam_b") >= cam_b_at_freeze + 2 * ANALYSIS_FPS
                )
            ),
            timeout=20,
            run=run,
        )
        servers["cam_a"].thaw()
        mark("cam_a thawed")
        wait_cam_a_streaming("cam_a analysed again after the stall", cam_a_frames, 25)
        mark("cam_a back after the stall")

        # ---- SIGTERM with cam_a's server hung again and the broker down.
        second_attempts = len(cam_a_log("reconnect attempt 2 "))
        servers["cam_a"].freeze()
        broker.stop()
        logged_at_last_outage = logged_count()
        wait_until(
            "an event waiting in the outbox during the last broker outage",
            broker_down_and_outbox_holds(logged_at_last_outage),
            timeout=15,
            run=run,
        )
        # Hit it while cam_a's reader is blocked opening its hung server: after the stall, a
        # first attempt timed out (open_timeout_s) and the second one's back-off has passed.
        attempt = wait_until(
            "a reconnect of cam_a to its hung server that timed out",
            lambda: cam_a_log("reconnect attempt 2 ")[second_attempts:],
            timeout=20,
            run=run,
        )[0]
        opening_at = log_time(attempt) + backoff_s(attempt["message"]) + 0.3
        wait_until("cam_a's second attempt under way", lambda: time.time() >= opening_at, 5, run)
        run.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        mark("SIGTERM")
        rc = run.wait_exit(timeout=60)
        exit_s = time.monotonic() - signalled
        mark("exited")
    finally:
        run.kill()
        (tmp_path / "streamseg.stderr").write_text(run.stderr_text())
        (tmp_path / "streamseg.stdout").write_text("\n".join(run.stdout_lines))
    print(f"\ntimeline (s): {timeline}; exit took {exit_s:.1f} s")
    print("cam_b longest pauses (s):", [round(cam_b.longest_pause(w), 2) for w in (0, 1)])

    # ---- the process: a prompt, clean exit.
    assert rc == 0, f"exit status {rc}:\n{run.tail()}"
    assert exit_s < EXIT_WITHIN_S, f"{exit_s:.1f} s to exit after SIGTERM:\n{run.tail()}"
    stderr = run.stderr_text()
    assert "Traceback" not in stderr, stderr[-3000:]
    exceptions = [r for r in run.logs() if "exception" in r or r["level"] == "critical"]
    assert not exceptions, f"exception records in the log: {exceptions}"

    # ---- cam_b was analysed throughout both outages of cam_a, without pausing.
    for window, outage in enumerate(("killed", "hung")):
        assert cam_b.gained(window) >= 2 * ANALYSIS_FPS, f"cam_b hardly moved ({outage})"
        pause = cam_b.longest_pause(window)
        assert pause < MAX_PAUSE_S, f"cam_b paused {pause:.1f} s while cam_a was {outage}"

    # ---- the run's end counts the faults per stream, as data in the JSON log; stdout holds
    # no text table (a log collector reads stdout and stderr as one stream).
    ended = run.find(lambda r: r["message"].startswith("run ended"))
    assert len(ended) == 1, ended
    streams = ended[0]["streams"]
    assert set(streams) == {"cam_a", "cam_b", "bad"}, streams
    assert streams["bad"]["corrupt"] >= 1, streams["bad"]
    assert streams["bad"]["frames"] > 0
    assert streams["cam_a"]["reconnects"] >= 2, streams["cam_a"]  # after the kill and the hang
    assert (streams["cam_b"]["reconnects"], streams["cam_b"]["corrupt"]) == (0, 0)
    assert run.stdout_lines == [], run.stdout_lines

    # ---- cam_a's recording folder: one clear error, without a traceback.
    record_errors = run.find(lambda r: "cannot write the recording" in r["message"])
    assert [r["level"] for r in record_errors] == ["error"], record_errors
    assert record_errors[0]["message"].startswith("record-cam_a: "), record_errors
    assert str(rec / "cam_a") in record_errors[0]["message"], record_errors

    # ---- the recordings of the writable streams are finalized and decode, every frame the
    # recorder took is in them, and cam_a's folder was left alone.
    for stream in ("cam_b", "bad"):
        prefix = f"recorder {stream}: "
        closed = [r for r in run.logs() if r["message"].startswith(prefix)]
        assert len(closed) == 1, closed
        took, dropped, finished = recorder_figures(closed[0]["message"])
        segments = sorted((rec / stream).glob("*.mp4"))
        assert len(segments) == finished >= 2, f"{stream}: {segments}"  # segment_s: 4
        frames = [decoded_frames(segment) for segment in segments]
        assert all(frames), f"{stream}: empty segment among {segments}"
        assert sum(frames) == took - dropped, f"{stream}: {frames}, {closed[0]['message']}"
    assert (rec / "cam_a").read_text() == blocker

    # ---- delivery: each event message was received or is still in the outbox.
    events = logged_events(events_path)
    logged = {event_key(e) for e in events}
    received = received_keys(subscriber)
    waiting = outbox_keys(outbox)
    last_outage = {event_key(e) for e in events[logged_at_last_outage:]}
    assert {"cam_a", "cam_b", "bad"} <= {e["stream_id"] for e in events}
    assert received <= logged, f"received, never logged: {received - logged}"
    assert waiting <= logged, f"in the outbox, never logged: {waiting - logged}"
    assert received | waiting == logged, f"lost: {logged - received - waiting}"
    assert last_outage <= waiting, f"raised with the broker down, not kept: {last_outage - waiting}"

    # ---- a restart, with the broker back, sends the rest: the subscriber has exactly the log.
    broker.start()
    restart = StreamsegRun(write_restart_pipeline(tmp_path, clean, broker.port))
    try:
        assert restart.wait_exit(timeout=60) == 0, restart.tail()
    finally:
        restart.kill()
    subscriber.wait_for(lambda s: received_keys(s) >= logged, timeout=10)
    assert received_keys(subscriber) == logged
    assert not outbox_keys(outbox), "the restart left events in the outbox"
    mark("done")
    print(f"timeline (s): {timeline}")

"""Soak: live RTSP cameras through the built-in model, the tracker, rules and MQTT for a long run.

Four local GStreamer RTSP servers (``tests/helpers/rtsp_server.py`` under Debian's python3) each
loop a synthetic yard scene in real time (15 fps, 640x360; raw frames rendered once). One
``Pipeline`` reads the four cameras with the site-safety rules of
``pipelines/machinery_zone.yaml`` (normalized zones and calibration, so they fit the rendered
scene), publishes events through the durable outbox to a local mosquitto, and logs them to JSONL.
A subscriber counts what the broker delivers.

Printed:

- RSS of the process at start (after the first window warmed up) and at the end, and the growth
  (target < 5 %);
- per window (``--window-min``, default 5 minutes): events raised and received, capture-to-publish
  latency p50 / p99 (from the wall time at which the frame that produced an event was decoded to
  the moment the subscriber received it; target: flat across windows), frames analysed and
  dropped;
- totals: events raised against received (target: equal, deduplicated on (event_id, type, seq)).

Run: ``.venv/bin/python bench/soak.py [--minutes 20] [--window-min 5] [--cameras 4]``.
Needs /usr/sbin/mosquitto and the GStreamer RTSP server packages (``.ci/run`` installs them).
Ends with one ``key=value`` summary line.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import supervision as sv
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.mosquitto import Mosquitto, Subscriber  # noqa: E402

from streamseg.config import load_pipeline_text  # noqa: E402
from streamseg.rules.events import Event  # noqa: E402
from streamseg.runtime.pipeline import Pipeline  # noqa: E402
from streamseg.synth import SceneRenderer  # noqa: E402
from streamseg.types import Frame  # noqa: E402

WIDTH, HEIGHT, FPS = 640, 360, 15
SCENE_FRAMES = 300
PREFIX = "streamseg/soak"


def rss_mb() -> float:
    """Resident set size of this process, MiB (from /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def render_frames(out: Path, seed: int) -> str:
    """Raw I420 frames of a yard scene, once; returns the ``printf`` pattern the server loops."""
    out.mkdir(parents=True, exist_ok=True)
    pattern = out / "%05d.i420"
    if not (out / f"{SCENE_FRAMES - 1:05d}.i420").exists():
        renderer = SceneRenderer("yard", seed, (WIDTH, HEIGHT), fps=FPS, difficulty="occlusion")
        for frame in renderer.frames(SCENE_FRAMES):
            yuv = cv2.cvtColor(frame.image, cv2.COLOR_BGR2YUV_I420)
            (out / f"{frame.index:05d}.i420").write_bytes(yuv.tobytes())
    return str(pattern)


def start_camera(frames: str, path: str) -> tuple[subprocess.Popen[str], int]:
    """An RTSP server looping ``frames``; returns the process and its port."""
    proc = subprocess.Popen(
        [
            "/usr/bin/python3",
            str(ROOT / "tests/helpers/rtsp_server.py"),
            "--port",
            "0",
            "--path",
            path,
            "--width",
            str(WIDTH),
            "--height",
            str(HEIGHT),
            "--fps",
            str(FPS),
            "--frames",
            frames,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("READY"):
        proc.kill()
        raise RuntimeError(f"RTSP server did not start: {line!r}")
    return proc, int(line.split()[1])


class TimedSubscriber(Subscriber):
    """A subscriber that also notes the wall time each event message arrived (first copy)."""

    def __init__(self, port: int, topic: str) -> None:
        self.arrived: dict[tuple[str, str, int], float] = {}
        super().__init__(port, topic)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        now = time.time()
        payload = json.loads(message.payload)
        self.arrived.setdefault((payload["event_id"], payload["type"], payload["seq"]), now)
        super()._on_message(client, userdata, message)


class Raised:
    """An event listener that notes every event raised; :class:`CaptureTimes` then dates it.

    Rules run before the caller's stages, so the capture time of an event's frame is filled in
    by the stage that follows on the same frame (frames of a stream arrive in order).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: dict[tuple[str, str, int], float] = {}
        self.pending: dict[str, list[tuple[int, tuple[str, str, int]]]] = defaultdict(list)

    def on_event(self, event: Event) -> None:
        key = (event.event_id, event.type, event.seq)
        with self.lock:
            self.events[key] = float("nan")
            self.pending[event.stream_id].append((event.frame_index, key))

    def on_rule_state(self, stream_id: str, rule_id: str, active: bool) -> None:
        """Not needed here."""

    def on_zone_count(self, stream_id: str, zone_id: str, class_name: str, count: int) -> None:
        """Not needed here."""

    def date(self, frame: Frame) -> None:
        """Give the events raised on ``frame`` its capture (decode) wall time."""
        with self.lock:
            waiting = self.pending.get(frame.stream_id)
            if not waiting:
                return
            keep = []
            for index, key in waiting:
                if index == frame.index:
                    self.events[key] = frame.wall_time
                elif index > frame.index:
                    keep.append((index, key))
            self.pending[frame.stream_id] = keep


class CaptureTimes:
    """An analytics stage after the rules: dates the events raised on each frame."""

    name = "soak.capture_times"

    def __init__(self, raised: Raised) -> None:
        self.raised = raised

    def process(self, frame: Frame, detections: sv.Detections) -> sv.Detections:
        self.raised.date(frame)
        return detections


def pipeline_yaml(ports: list[int], work: Path, broker_port: int) -> str:
    """machinery_zone.yaml with the RTSP cameras, MQTT to the local broker and a JSONL log."""
    doc = yaml.safe_load((ROOT / "pipelines/machinery_zone.yaml").read_text())
    calibration = doc["sources"][0]["calibration"]
    doc["name"] = "soak"
    doc["sources"] = [
        {
            "id": f"cam{i}",
            "type": "rtsp",
            "url": f"rtsp://127.0.0.1:{port}/cam",
            "calibration": calibration,
        }
        for i, port in enumerate(ports)
    ]
    doc["model"] = {"weights": "builtin", "device": "cpu", "batch_size": len(ports)}
    doc["outputs"] = {
        "events": {"path": str(work / "events.jsonl")},
        "mqtt": {
            "host": "127.0.0.1",
            "port": broker_port,
            "outbox": {"path": str(work / "outbox.sqlite3")},
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


def main() -> None:
    """Run the soak and print; the last line is the key=value summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--window-min", type=float, default=5.0)
    parser.add_argument("--cameras", type=int, default=4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cache = Path(tempfile.gettempdir()) / "streamseg-bench" / "soak-frames"
    frames = render_frames(cache, seed=2)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "broker").start()
        subscriber = TimedSubscriber(broker.port, f"{PREFIX}/events")
        cameras = [start_camera(frames, "/cam") for _ in range(args.cameras)]
        raised = Raised()
        config = load_pipeline_text(pipeline_yaml([p for _, p in cameras], work, broker.port))
        pipeline = Pipeline(config, stage_factories=[lambda _sid: CaptureTimes(raised)])
        original_listeners = pipeline.event_listeners
        pipeline.event_listeners = lambda: [*original_listeners(), raised]  # type: ignore[method-assign]
        windows: list[dict[str, Any]] = []
        rss_start = rss_end = float("nan")
        window_s = args.window_min * 60
        started_wall = time.time()
        try:
            pipeline.start()
            started = time.monotonic()
            started_wall = time.time()
            n_windows = max(1, round(args.minutes / args.window_min))
            frames_before = dropped_before = 0
            for w in range(n_windows):
                deadline = started + (w + 1) * window_s
                while time.monotonic() < deadline:
                    time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                frames_now = sum(p.frames for p in pipeline.progress.values())
                dropped_now = sum(s.stats().frames_dropped for s in pipeline.sources)
                dropped_now += sum(pipeline.frame_drops().values())  # analytics, encoders
                windows.append(
                    {
                        "end_s": time.monotonic() - started,
                        "frames": frames_now - frames_before,
                        "dropped": dropped_now - dropped_before,
                        "rss_mb": rss_mb(),
                    }
                )
                frames_before, dropped_before = frames_now, dropped_now
                if w == 0:
                    rss_start = windows[0]["rss_mb"]
            rss_end = rss_mb()
        finally:
            pipeline.stop()
            time.sleep(2.0)  # the last acknowledged events reach the subscriber
            subscriber.close()
            for proc, _ in cameras:
                proc.terminate()
            broker.stop()

        received = dict(subscriber.arrived)

    print(
        f"{args.cameras} RTSP cameras {WIDTH}x{HEIGHT} at {FPS} fps (looped synthetic yard), "
        f"built-in model, tracker, {len(config.rules)} rules, MQTT with outbox; "
        f"{args.minutes:g} min in windows of {args.window_min:g} min"
    )
    latencies: dict[int, list[float]] = defaultdict(list)
    raised_per_window: dict[int, int] = defaultdict(int)
    for key, captured in raised.events.items():
        if not np.isfinite(captured):
            continue
        index = int((captured - started_wall) // window_s)
        raised_per_window[index] += 1
        arrived = received.get(key)
        if arrived is not None:
            latencies[index].append(arrived - captured)
    for w, window in enumerate(windows):
        lat = np.array(latencies.get(w, []), dtype=float) * 1e3
        p50_w = f"{np.percentile(lat, 50):.0f}" if lat.size else "-"
        p99_w = f"{np.percentile(lat, 99):.0f}" if lat.size else "-"
        print(
            f"  window {w + 1} (to {window['end_s'] / 60:.1f} min): {window['frames']} frames "
            f"analysed, {window['dropped']} dropped, events raised {raised_per_window.get(w, 0)} "
            f"delivered {lat.size}, capture-to-publish p50 {p50_w} ms p99 {p99_w} ms, "
            f"RSS {window['rss_mb']:.0f} MiB"
        )
    all_latencies = [v for values in latencies.values() for v in values]
    p50 = float(np.percentile(all_latencies, 50)) * 1e3 if all_latencies else float("nan")
    p99 = float(np.percentile(all_latencies, 99)) * 1e3 if all_latencies else float("nan")
    growth = (rss_end - rss_start) / rss_start if rss_start == rss_start else float("nan")
    print(f"RSS {rss_start:.0f} MiB after the first window, {rss_end:.0f} MiB at the end")
    print(f"events raised {len(raised.events)}, received {len(received)}")
    print(
        f"rss_start_mb={rss_start:.0f} rss_end_mb={rss_end:.0f} rss_growth={growth:.3f} "
        f"events_raised={len(raised.events)} events_received={len(received)} "
        f"latency_p50_ms={p50:.0f} latency_p99_ms={p99:.0f} "
        f"frames={sum(w['frames'] for w in windows)} dropped={sum(w['dropped'] for w in windows)} "
        f"minutes={args.minutes:g} cameras={args.cameras}"
    )


if __name__ == "__main__":
    main()

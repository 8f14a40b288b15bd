"""``/metrics`` of a real short run: file source -> fake model -> tracker -> rules -> MQTT.

Nothing is mocked: a real H.264 file, the TorchScript fake network, the mask tracker, the rule
engine and a real mosquitto broker; the test scrapes the pipeline's own HTTP endpoint.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.mosquitto import Mosquitto, free_port
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streamseg.config import PipelineConfig, load_pipeline_text
from streamseg.runtime.health import Readiness
from streamseg.runtime.metrics import PipelineMetrics
from streamseg.runtime.pipeline import Pipeline
from streamseg.types import SourceState

FRAMES = 20


def _config(model: Path, video: Path, tmp_path: Path, mqtt_port: int) -> PipelineConfig:
    text = f"""
name: metrics-test
sources:
  - {{id: cam, type: file, path: '{video}'}}
model: {{weights: '{model}', device: cpu, batch_size: 4}}
zones:
  - {{id: all, type: polygon, units: normalized, points: [[0, 0], [1, 0], [1, 1], [0, 1]]}}
rules:
  - {{id: person-in, type: inside, zone: all, classes: [person], min_overlap: 0.1}}
  - {{id: idle, type: dwell, zone: all, classes: [person], dwell_s: 3600}}
outputs:
  mqtt:
    host: 127.0.0.1
    port: {mqtt_port}
    outbox: {{path: '{tmp_path / "outbox.sqlite3"}'}}
metrics: {{enabled: true, host: 127.0.0.1}}
"""
    config = load_pipeline_text(text)
    # Port 0 (any free port) is for tests only: the config asks operators for a real one.
    return config.model_copy(update={"metrics": config.metrics.model_copy(update={"port": 0})})


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_metrics_of_a_short_run(
    fake_model: Path,
    h264_file: Callable[..., Any],
    mosquitto: Callable[..., Mosquitto],
    tmp_path: Path,
) -> None:
    clip = h264_file("in.mp4", frames=FRAMES, fps=10)
    broker = mosquitto()
    pipeline = Pipeline(_config(fake_model, clip.path, tmp_path, broker.port))
    pipeline.start()
    try:
        assert pipeline.wait(30), "the run did not finish"
        assert pipeline.ops_server is not None and pipeline.ops_server.port > 0
        status, content_type, text = _get(pipeline.ops_server.url + "/metrics")
    finally:
        pipeline.stop()
    assert status == 200 and content_type.startswith("text/plain")
    samples = _samples(text)
    names = {name for name, _ in samples}

    expected = {
        "streamseg_frames_processed_total",
        "streamseg_detections_total",
        "streamseg_source_fps",
        "streamseg_frames_dropped_total",
        "streamseg_source_frames_missing_total",
        "streamseg_source_frames_skipped_fps_total",
        "streamseg_source_corrupt_packets_total",
        "streamseg_source_decode_errors_total",
        "streamseg_source_reconnects_total",
        "streamseg_source_state",
        "streamseg_inference_seconds_bucket",
        "streamseg_batch_size_count",
        "streamseg_stage_seconds_count",
        "streamseg_events_total",
        "streamseg_mqtt_outbox_depth",
        "streamseg_mqtt_connected",
    }
    assert expected <= names, expected - names

    assert _value(samples, "streamseg_frames_processed_total", stream="cam") == FRAMES
    # Every drop counter is there from the start, zeros included (rate() sees the first drop).
    for stage in ("source", "analytics"):
        assert _value(samples, "streamseg_frames_dropped_total", stream="cam", stage=stage) == 0
    assert _value(samples, "streamseg_source_reconnects_total", stream="cam") == 0
    assert _value(samples, "streamseg_source_fps", stream="cam") > 0
    assert _value(samples, "streamseg_source_state", stream="cam", state="ended") == 1
    assert _value(samples, "streamseg_source_state", stream="cam", state="streaming") == 0
    assert _value(samples, "streamseg_batch_size_sum") == FRAMES
    for stage in ("tracker", "rules"):
        assert _value(samples, "streamseg_stage_seconds_count", stage=stage) == FRAMES
    # The fake network's person is in the all-frame zone on every frame: one occurrence
    # starts; it is still open when the file ends, so its end comes at stop.
    assert _value(samples, "streamseg_events_total", stream="cam", rule="person-in", type="start")
    # A rule's series exist from its stream's first frame, before any such event.
    for event_type in ("start", "update", "end"):
        assert (
            _value(samples, "streamseg_events_total", stream="cam", rule="idle", type=event_type)
            == 0
        )
    assert _value(samples, "streamseg_mqtt_connected") == 1


def test_readyz_follows_the_lifecycle(fake_model: Path, h264_file: Callable[..., Any]) -> None:
    clip = h264_file("in.mp4", frames=4, fps=10)
    text = f"""
sources: [{{id: cam, type: file, path: '{clip.path}'}}]
model: {{weights: '{fake_model}', device: cpu}}
metrics: {{enabled: true}}
"""
    config = load_pipeline_text(text)
    config = config.model_copy(update={"metrics": config.metrics.model_copy(update={"port": 0})})
    pipeline = Pipeline(config)
    assert pipeline.readiness().reason == "model not loaded"
    pipeline.start_model()
    pipeline.start_metrics()
    try:
        assert pipeline.ops_server is not None
        url = pipeline.ops_server.url
        assert _get(url + "/healthz")[0] == 200
        status, content_type, body = _get(url + "/readyz")
        assert (status, content_type) == (503, "application/json")
        assert json.loads(body) == {"ready": False, "reason": "sources not started"}
        pipeline.start_analytics()
        pipeline.start_sources()
        pipeline.start_inference()
        # Ready once the file delivers (while it opens it is "connecting": not yet).
        deadline = time.monotonic() + 10
        while (answer := _get(url + "/readyz"))[0] != 200:
            assert json.loads(answer[2]) == {
                "ready": False,
                "reason": "no source delivering frames: cam connecting",
            }
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert json.loads(answer[2]) == {"ready": True, "reason": "ok"}
        assert pipeline.wait(30)
    finally:
        pipeline.stop()
    assert pipeline.readiness() == Readiness(False, "stopping")
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/healthz", timeout=2)  # the port is released at stop


def test_readyz_is_503_while_every_source_is_down(fake_model: Path) -> None:
    """A camera nobody answers for: the process is alive, but it analyses nothing."""
    text = f"""
sources: [{{id: cam, type: rtsp, url: 'rtsp://127.0.0.1:{free_port()}/live', open_timeout_s: 1}}]
model: {{weights: '{fake_model}', device: cpu}}
metrics: {{enabled: true}}
"""
    config = load_pipeline_text(text)
    config = config.model_copy(update={"metrics": config.metrics.model_copy(update={"port": 0})})
    pipeline = Pipeline(config)
    pipeline.start_model()
    pipeline.start_metrics()
    try:
        assert pipeline.ops_server is not None
        pipeline.start_analytics()
        pipeline.start_sources()
        pipeline.start_inference()
        deadline = time.monotonic() + 10
        while pipeline.sources[0].state is not SourceState.RECONNECTING:
            assert time.monotonic() < deadline, pipeline.sources[0].state
            time.sleep(0.05)
        status, _, body = _get(pipeline.ops_server.url + "/readyz")
        assert status == 503
        assert json.loads(body)["reason"] == "no source delivering frames: cam reconnecting"
        assert _get(pipeline.ops_server.url + "/healthz")[0] == 200
    finally:
        pipeline.stop()


def test_readyz_is_503_while_the_only_camera_has_not_answered(fake_model: Path) -> None:
    """Regression: a camera that accepts the connection and never answers left /readyz at
    200 "ok" for its whole open timeout."""
    silent = socket.create_server(("127.0.0.1", 0))  # listens, never speaks RTSP
    port = silent.getsockname()[1]
    text = f"""
sources: [{{id: cam, type: rtsp, url: 'rtsp://127.0.0.1:{port}/live', open_timeout_s: 3,
           read_timeout_s: 3, stall_timeout_s: 3}}]
model: {{weights: '{fake_model}', device: cpu}}
"""
    pipeline = Pipeline(load_pipeline_text(text))
    pipeline.start_model()
    try:
        pipeline.start_analytics()
        pipeline.start_sources()
        pipeline.start_inference()
        time.sleep(0.5)
        assert pipeline.sources[0].state is SourceState.CONNECTING
        assert pipeline.readiness() == Readiness(
            False, "no source delivering frames: cam connecting"
        )
    finally:
        pipeline.stop(timeout=2)
        silent.close()


def test_a_scrape_sees_each_source_in_exactly_one_state() -> None:
    """Regression: the state gauge was set label by label, so a scrape during a change could
    show a source in two states or in none."""
    metrics = PipelineMetrics()
    metrics.set_state("cam", SourceState.CONNECTING)
    done = threading.Event()

    def flip() -> None:
        states = [SourceState.STREAMING, SourceState.STALLED, SourceState.RECONNECTING]
        i = 0
        while not done.is_set():
            metrics.set_state("cam", states[i % 3])
            i += 1

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        for _ in range(300):
            samples = _samples(generate_latest(metrics.registry).decode())
            current = [
                dict(labels)["state"]
                for (name, labels), value in samples.items()
                if name == "streamseg_source_state" and value == 1
            ]
            assert len(current) == 1, current
    finally:
        done.set()
        flipper.join()
    assert len([k for k in samples if k[0] == "streamseg_source_state"]) == len(SourceState)

"""A live RTSP camera and a file in one pipeline, against a real GStreamer RTSP server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streamseg.config import load_pipeline_text
from streamseg.runtime.pipeline import Pipeline


@pytest.mark.integration
def test_camera_outage_does_not_pause_the_file(
    fake_model: Path,
    h264_file: Callable[..., Any],
    rtsp_server: Callable[..., Any],
    tmp_path: Path,
) -> None:
    """The camera's server dies mid-run: the file stream finishes, the camera comes back."""
    server = rtsp_server(fps=25)
    clip = h264_file("in.mp4", frames=60, fps=10)
    out = tmp_path / "det.jsonl"
    config = load_pipeline_text(
        f"""
sources:
  - id: cam
    type: rtsp
    url: {server.url}
    read_timeout_s: 1.5
    stall_timeout_s: 1.5
    reconnect: {{initial_delay_s: 0.2, max_delay_s: 1.0}}
  - {{id: clip, type: file, path: '{clip.path}', realtime: true}}
model: {{weights: '{fake_model}', device: cpu, batch_size: 2}}
outputs:
  jsonl: {{path: '{out}'}}
"""
    )
    pipeline = Pipeline(config)
    pipeline.start()
    try:
        deadline = time.monotonic() + 30
        while pipeline.progress["cam"].frames < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pipeline.progress["cam"].frames >= 10, "no frames from the camera"
        server.kill()
        file_before = pipeline.progress["clip"].frames
        time.sleep(2.0)
        # The file keeps flowing while the camera is down (realtime: 10 fps).
        assert pipeline.progress["clip"].frames >= file_before + 10
        server.restart()
        cam_before = pipeline.progress["cam"].frames
        deadline = time.monotonic() + 30
        while pipeline.progress["cam"].frames < cam_before + 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pipeline.progress["cam"].frames >= cam_before + 10, "camera did not come back"
        assert not pipeline.wait(0.0)  # a live camera keeps the run going after the file ends
    finally:
        pipeline.stop()
    summary = pipeline.summary()
    assert summary.sources["cam"].reconnects >= 1
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    cam_pts = [line["pts_s"] for line in lines if line["stream"] == "cam"]
    assert cam_pts == sorted(cam_pts)  # in order, and pts never go back across the reconnect
    assert {line["stream"] for line in lines} == {"cam", "clip"}

"""The progress bars' totals and the end-of-run summary printed after a run."""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from streamseg.config import load_pipeline_text
from streamseg.runtime.pipeline import Pipeline, RunSummary
from streamseg.runtime.progress import estimate_total_frames
from streamseg.runtime.report import analysed_nothing, print_summary
from streamseg.sources.base import SourceStats
from streamseg.types import SourceState


@pytest.mark.parametrize("cap", [None, 5.0, 10.0, 7.5, 30.0])
def test_the_bar_total_is_the_frames_the_run_analyses(
    cap: float | None, fake_model: Path, h264_file: Callable[..., Any], tmp_path: Path
) -> None:
    """Regression: with a source ``fps`` cap the total was the file's frames, so the bar of a
    15 fps file read at 5 fps stopped at a third."""
    clip = h264_file("in.mp4", frames=45, fps=15)
    fps = "" if cap is None else f", fps: {cap}"
    config = load_pipeline_text(
        f"sources: [{{id: cam, type: file, path: '{clip.path}'{fps}}}]\n"
        f"model: {{weights: '{fake_model}', device: cpu}}\n"
    )
    summary = Pipeline(config).run()
    assert estimate_total_frames(str(clip.path), cap) == summary.frames["cam"]
    assert summary.frames["cam"] == {None: 45, 5.0: 15, 10.0: 23, 7.5: 23, 30.0: 45}[cap]

    console = Console(record=True, width=200)
    print_summary(summary, console)
    text = console.export_text()
    skipped = 45 - summary.frames["cam"]
    line = f"cam: {skipped} of 45 decoded frames skipped by the source's fps cap"
    assert (line in text) == (skipped > 0), text


def test_the_summary_does_not_claim_a_file_that_was_never_written(
    fake_model: Path, tmp_path: Path
) -> None:
    """Regression: a source that failed to open still got "wrote out/cam.mp4"."""
    config = load_pipeline_text(
        f"sources: [{{id: cam, type: file, path: '{tmp_path / 'missing.mp4'}'}}]\n"
        f"model: {{weights: '{fake_model}', device: cpu}}\n"
        f"outputs: {{video: {{path: '{tmp_path / '{stream}.mp4'}'}}}}\n"
    )

    def end_text() -> str:
        console = Console(record=True, width=200)
        print_summary(Pipeline(config).run(), console)
        return console.export_text()

    text = end_text()
    assert f"not written {tmp_path / 'cam.mp4'}" in text
    assert "wrote" not in text
    # An earlier run's file there is not this run's: said so, not "wrote".
    (tmp_path / "cam.mp4").write_bytes(b"an earlier run's video")
    os.utime(tmp_path / "cam.mp4", (1_000_000_000, 1_000_000_000))
    text = end_text()
    assert f"not written {tmp_path / 'cam.mp4'} (nothing reached it; the file there is" in text
    assert "wrote" not in text


def test_the_end_table_fits_80_columns_and_prints_the_last_error_whole() -> None:
    """Regression: off a terminal (a pipe, a journal: 80 columns) the table cut its headers to
    "detect…" and folded the last error into a column of single words."""
    error = (
        "gave up after 3 reconnect attempt(s) in a row; last: cannot connect to "
        "rtsp://admin:***@camera-7.invalid:8554/live: cannot resolve host 'camera-7.invalid' "
        "(Name or service not known); check the URL and DNS"
    )
    stats = SourceStats(
        frames_decoded=1234,
        frames_delivered=1200,
        frames_dropped=34,
        frames_skipped_fps=0,
        frames_missing=0,
        corrupt_packets=5,
        decode_errors=2,
        reconnects=3,
        state=SourceState.RECONNECTING,
        last_error=error,
        fps=10.0,
        nominal_fps=10.0,
        resolution_wh=(640, 360),
    )
    stream_id = "front-gate-camera-01"
    summary = RunSummary(
        wall_s=12.0,
        frames={stream_id: 1200},
        detections={stream_id: 56789},
        sources={stream_id: stats},
        timings=[],
    )
    console = Console(record=True, width=80)
    print_summary(summary, console)
    lines = console.export_text().splitlines()
    header = next(line for line in lines if line.startswith("stream"))
    assert header.split() == [
        "stream",
        "state",
        "frames",
        "detections",
        "dropped",
        "corrupt",
        "reconnects",
    ]
    row = next(line for line in lines if "reconnecting" in line)
    assert row.split()[-6:] == ["reconnecting", "1200", "56789", "34", "7", "3"]
    table = lines[: lines.index(row) + 1]
    assert all(len(line) <= 80 for line in table)
    # One line, never folded: a log collector keeps it whole, a terminal wraps it.
    assert f"{stream_id}: stopped while reconnecting; last error: {error}" in lines
    # A camera that came back after its error says so.
    stats = dataclasses.replace(stats, frames_since_error=250)
    console = Console(record=True, width=80)
    print_summary(dataclasses.replace(summary, sources={stream_id: stats}), console)
    assert (
        f"{stream_id}: stopped while reconnecting; last error (250 frames decoded after it): "
        f"{error}"
    ) in console.export_text().splitlines()


@pytest.mark.parametrize("with_file", [False, True])
def test_a_camera_stopped_while_down_is_named_and_fails_the_run(
    with_file: bool, fake_model: Path, h264_file: Callable[..., Any]
) -> None:
    """Regression: a camera that never answered showed ``ended`` with 0 frames after SIGTERM,
    like one that had streamed, and the run exited 0."""
    with socket.socket() as probe:  # a port nobody listens on: refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sources = [
        f"  - {{id: cam, type: rtsp, url: 'rtsp://127.0.0.1:{port}/live', "
        "reconnect: {initial_delay_s: 30}}"
    ]
    if with_file:
        sources.append(f"  - {{id: clip, type: file, path: '{h264_file(frames=4).path}'}}")
    config = load_pipeline_text(
        "sources:\n" + "\n".join(sources) + f"\nmodel: {{weights: '{fake_model}', device: cpu}}\n"
    )
    pipeline = Pipeline(config)
    pipeline.start()
    try:
        deadline = time.monotonic() + 10
        while pipeline.sources[0].state is not SourceState.RECONNECTING:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        if with_file:
            deadline = time.monotonic() + 10
            while pipeline.progress["clip"].frames < 4:
                assert time.monotonic() < deadline
                time.sleep(0.02)
    finally:
        pipeline.stop()
    summary = pipeline.summary()
    cam = summary.sources["cam"]
    assert (cam.state, cam.stopped_in) == (SourceState.STOPPED, SourceState.RECONNECTING)
    console = Console(record=True, width=300)
    print_summary(summary, console)
    line = next(x for x in console.export_text().splitlines() if x.startswith("cam: "))
    assert line.startswith("cam: stopped while reconnecting, having never delivered a frame; ")
    assert "last error: cannot connect to" in line  # nothing decoded after it
    # The run analysed nothing only when the camera was all it had.
    assert analysed_nothing(summary) is not with_file

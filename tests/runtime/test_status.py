"""The periodic status line of a run (``streamseg run --status-every``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import supervision as sv

from streamseg.cli import main
from streamseg.config import load_pipeline_text
from streamseg.runtime.pipeline import Pipeline
from streamseg.runtime.status import StatusLogger
from streamseg.types import Frame


def _status_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "streamseg.runtime.status"]


def test_a_live_run_logs_each_streams_state_and_pace(
    fake_model: Path,
    h264_file: Callable[..., Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clip = h264_file("in.mp4", frames=30, fps=10)  # 3 s at its own pace
    config = load_pipeline_text(
        f"""
sources:
  - {{id: cam, type: file, path: '{clip.path}', realtime: true}}
  - {{id: gone, type: file, path: '{tmp_path / "missing.mp4"}', realtime: true}}
model: {{weights: '{fake_model}', device: cpu}}
"""
    )
    pipeline = Pipeline(config)
    caplog.set_level(logging.INFO, logger="streamseg.runtime.status")
    with StatusLogger(pipeline, interval_s=0.5) as status:
        summary = pipeline.run()
        status.log_once()  # the frames since the last tick
    assert summary.frames["cam"] == 30

    records = _status_records(caplog)
    assert len(records) >= 4, [r.getMessage() for r in records]
    # A line from the middle of the run: the file streams at about its own 10 fps, the missing
    # file has failed, and the message says both in words.
    middle = records[len(records) // 2]
    streams = middle.streams  # type: ignore[attr-defined]
    assert streams["cam"]["state"] == "streaming"
    assert 5.0 <= streams["cam"]["fps"] <= 15.0, streams
    assert streams["gone"]["state"] == "failed" and streams["gone"]["fps"] == 0
    assert "cam streaming" in middle.getMessage() and "gone failed 0.0 fps" in middle.getMessage()
    # Each line covers its own interval: the lines' fps times their intervals add up to the
    # frames analysed.
    total = sum(r.streams["cam"]["fps"] * r.interval_s for r in records)  # type: ignore[attr-defined]
    assert total == pytest.approx(30, abs=0.5)


class _Slow:
    """A sink that takes 0.3 s per frame: the live stream's analytics fall behind and drop."""

    def write(self, frame: Frame, detections: sv.Detections) -> None:
        time.sleep(0.3)

    def close_stream(self, stream_id: str) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.parametrize("cap", [False, True])
def test_drops_since_the_last_line_are_named(
    fake_model: Path, h264_file: Callable[..., Any], caplog: pytest.LogCaptureFixture, cap: bool
) -> None:
    clip = h264_file("in.mp4", frames=20, fps=10)
    fps = ", fps: 5" if cap else ""
    config = load_pipeline_text(
        f"""
sources: [{{id: cam, type: file, path: '{clip.path}', realtime: true{fps}}}]
model: {{weights: '{fake_model}', device: cpu}}
"""
    )
    # Capped at 5 fps: half the frames are left out by design, which is no drop. Slow: the
    # stream's analytics fall behind and drop frames, which the line names.
    pipeline = Pipeline(config, extra_sinks=[] if cap else [_Slow()], stream_queue_size=2)
    caplog.set_level(logging.INFO, logger="streamseg.runtime.status")
    status = StatusLogger(pipeline, interval_s=3600)  # lines on demand only
    with status:
        summary = pipeline.run()
        status.log_once()
    (record,) = _status_records(caplog)
    dropped = record.streams["cam"]["dropped"]  # type: ignore[attr-defined]
    if cap:
        assert summary.sources["cam"].frames_skipped_fps >= 8
        assert dropped == 0 and "dropped" not in record.getMessage()
    else:
        assert dropped >= 8
        assert f"({dropped} dropped)" in record.getMessage()


def test_the_cli_option(
    fake_model: Path,
    h264_file: Callable[..., Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clip = h264_file("in.mp4", frames=4, fps=10)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        f"sources: [{{id: cam, type: file, path: '{clip.path}'}}]\n"
        f"model: {{weights: '{fake_model}', device: cpu}}\n"
    )
    with pytest.raises(SystemExit) as info:
        main(["run", str(pipeline), "--status-every", "-1"])
    assert info.value.code == 2
    assert "expected seconds >= 0, got '-1'" in capsys.readouterr().err
    assert main(["run", str(pipeline), "--no-progress", "--status-every", "0"]) == 0
    assert not _status_records(caplog)

"""A recording disk that cannot be written: one clear error, and analytics and alerts go on.

The recording, clip and snapshot folders lie under a regular file, so every write fails with
``NotADirectoryError`` (an ``OSError``, like a full or read-only disk; the tests run as root,
where file modes do not stop writes, so this is the failure that can be forced portably). The
run must still analyse every frame and log every event, log the failure once per path without a
traceback, and count the failed work in the recorder's stats.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from streamseg.config import load_pipeline_text
from streamseg.runtime.pipeline import Pipeline
from streamseg.synth import SceneRenderer, write_video

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
FRAMES = 45


def test_unwritable_recording_folder_is_one_clear_error_and_alerts_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    video = tmp_path / "yard.mp4"
    renderer = SceneRenderer("yard", 2, (640, 360), fps=15.0, difficulty="occlusion")
    write_video(renderer.frames(FRAMES), video, fps=15.0)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the recordings should go")
    doc = yaml.safe_load((PIPELINES / "machinery_zone.yaml").read_text())
    doc["sources"][0]["path"] = str(video)
    doc["model"]["device"] = "cpu"
    doc["outputs"] = {
        "events": {"path": str(tmp_path / "events.jsonl")},
        "record": {
            "continuous": {"dir": str(blocker / "segments"), "segment_s": 60},
            "snapshots": {"dir": str(blocker / "snapshots")},
            "clips": {"dir": str(blocker / "clips")},
        },
    }
    config = load_pipeline_text(yaml.safe_dump(doc), env={})
    caplog.set_level(logging.ERROR, logger="streamseg.record")

    pipeline = Pipeline(config)
    summary = pipeline.run()

    assert summary.frames == {"yard": FRAMES}
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert any(e["type"] == "start" for e in events), "no alert raised beside the failing disk"
    assert pipeline.recorder is not None
    stats = pipeline.recorder.stats()["yard"]
    assert stats.errors > 0
    # Every frame failed to be written, and counts as a frame dropped by the recording
    # (streamseg_frames_dropped_total{stage="record"}, the end table): before, only the
    # recorder's own errors counted them and the metric read 0 on a full disk.
    assert (stats.frames_received, stats.frames_dropped, stats.frames_failed) == (
        FRAMES,
        0,
        FRAMES,
    )
    assert pipeline.frame_drops()[("yard", "record")] == FRAMES
    assert summary.frames_dropped["yard"]["record"] == FRAMES
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors, "the failing recording folder was not reported"
    assert all(r.exc_info is None for r in errors), "a disk error should not dump a traceback"
    messages = [r.getMessage() for r in errors]
    assert any(str(blocker / "segments") in m and "cannot write" in m for m in messages)
    assert len(messages) == len(set(messages)), f"the same error was logged twice: {messages}"

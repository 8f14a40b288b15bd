"""The recorder in a real pipeline: a file through the built-in model and the tracker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamseg.config import load_pipeline_text
from streamseg.runtime.pipeline import Pipeline


def test_pipeline_records_every_frame_of_a_file(
    kit: type, h264_file: Callable[..., Any], tmp_path: Path
) -> None:
    clip = h264_file("in.mp4", frames=24, fps=12, width=192, height=112)
    config = load_pipeline_text(
        f"sources:\n  - {{id: cam, type: file, path: '{clip.path}'}}\n"
        "model: {weights: builtin, device: cpu}\n"
        "outputs:\n"
        "  record:\n"
        "    encoder: {keyframe_interval_s: 0.5, queue_frames: 2}\n"
        f"    continuous: {{dir: '{tmp_path / 'rec'}', segment_s: 1}}\n"
    )
    pipeline = Pipeline(config)  # builds its tracker and its recorder from the config
    summary = pipeline.run()  # stop() closes the recorder: every file is finished
    recorder = pipeline.recorder
    assert recorder is not None

    assert summary.frames == {"cam": 24}
    stats = recorder.stats()["cam"]
    assert stats.frames_dropped == 0 and stats.frames_encoded == {"annotated": 24}
    segments = sorted((tmp_path / "rec" / "cam").glob("cam_*.mp4"))
    decoded = [kit.decode(p) for p in segments]
    assert [len(d.pts_s) for d in decoded] == [12, 12]  # 1 s segments at 12 fps
    assert all(d.error is None for d in decoded)
    assert decoded[0].duration_s is not None and abs(decoded[0].duration_s - 1.0) < 0.05

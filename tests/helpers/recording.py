"""Shared by the recorder tests: a record config in a temporary folder, and a run of frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamseg.config.record import RecordConfig
from streamseg.record import Recorder

FPS = 20.0
KEYFRAME_S = 0.5


def record_config(tmp_path: Path, **sections: Any) -> RecordConfig:
    """Encoder at :data:`FPS` with a keyframe every :data:`KEYFRAME_S`, no traces; each keyword
    is a section (``continuous``, ``clips``, ``snapshots``) writing to ``tmp_path / name``."""
    base: dict[str, Any] = {
        "encoder": {"keyframe_interval_s": KEYFRAME_S, "fps": FPS, "crf": 18, "queue_frames": 8},
        "annotation": {"traces": False},
    }
    for name, value in sections.items():
        base[name] = {"dir": str(tmp_path / name), **value}
    return RecordConfig.model_validate(base)


def play(kit: Any, recorder: Recorder, frames: int, detections: Any, *messages: Any) -> None:
    """Feed ``frames`` frames of stream 'cam', each event message before the frame it is on
    (as the rules stage does), then close the recorder."""
    for i in range(frames):
        for message in messages:
            if message.frame_index == i:
                recorder.on_event(recorder.with_paths(message))
        recorder.write(kit.frame(i, FPS), detections)
    recorder.close_stream("cam")
    recorder.close()

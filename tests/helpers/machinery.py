"""The example pipeline ``pipelines/machinery_zone.yaml`` pointed at a test's own video, broker
and output folder, for the end-to-end runs of the real model, tracker and rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from streamseg.synth import SceneRenderer, write_video

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
PREFIX = "streamseg/machinery-zone"
"""Its MQTT topic prefix (from its name)."""


def machinery_pipeline(tmp_path: Path, video: Path, port: int, **outputs: Any) -> Path:
    """Write the example under ``tmp_path`` reading ``video`` on the CPU, with an event log and
    MQTT to the broker on ``port`` (outbox in ``tmp_path``), plus ``outputs`` (more output
    sections; ``realtime=...`` goes to the source instead); return its path."""
    doc = yaml.safe_load((PIPELINES / "machinery_zone.yaml").read_text())
    doc["sources"][0]["path"] = str(video)
    if "realtime" in outputs:
        doc["sources"][0]["realtime"] = outputs.pop("realtime")
    doc["model"]["device"] = "cpu"
    doc["outputs"] = {
        "events": {"path": str(tmp_path / "events.jsonl")},
        "mqtt": {
            "host": "127.0.0.1",
            "port": port,
            "keepalive_s": 5,
            "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
        },
        **outputs,
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def yard_video(tmp_path: Path, frames: int) -> Path:
    """The yard scene the example is written for (seed 2, occlusion, 640x360 at 15 fps),
    ``frames`` long, as ``tmp_path / "yard.mp4"``."""
    renderer = SceneRenderer("yard", 2, (640, 360), fps=15.0, difficulty="occlusion")
    video = tmp_path / "yard.mp4"
    write_video(renderer.frames(frames), video, fps=15.0)
    return video

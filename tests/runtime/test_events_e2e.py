"""End to end: ``streamseg run`` on a yard video -> built-in model -> tracker -> rules -> events.

The example pipeline ``pipelines/machinery_zone.yaml`` (zones, a calibration, inside and near
rules) runs on the synthetic yard scene its comments name, through the real model forward, the
mask tracker and the rule engine; events go to a JSONL log, to a real mosquitto broker through the
durable outbox, and to the recorder (snapshots and clips). Nothing is mocked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import jsonschema
import yaml
from helpers.mosquitto import Mosquitto, Subscriber

from streamseg.cli import main
from streamseg.rules import event_schema
from streamseg.synth import SceneRenderer, write_video

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
PREFIX = "streamseg/machinery-zone"


def _pipeline(tmp_path: Path, video: Path, port: int) -> Path:
    """The example pipeline, reading ``video`` and writing every output under ``tmp_path``."""
    doc = yaml.safe_load((PIPELINES / "machinery_zone.yaml").read_text())
    doc["sources"][0]["path"] = str(video)
    doc["model"]["device"] = "cpu"
    doc["outputs"] = {
        "events": {"path": str(tmp_path / "events.jsonl")},
        "mqtt": {
            "host": "127.0.0.1",
            "port": port,
            "keepalive_s": 5,
            "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
        },
        "record": {
            "snapshots": {"dir": str(tmp_path / "snapshots")},
            "clips": {"dir": str(tmp_path / "clips"), "pre_s": 1.0, "post_s": 0.5},
        },
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_run_raises_events_that_reach_the_log_the_broker_and_the_recorder(
    tmp_path: Path, mosquitto: Callable[..., Mosquitto]
) -> None:
    renderer = SceneRenderer("yard", 2, (640, 360), fps=15.0, difficulty="occlusion")
    video = tmp_path / "yard.mp4"
    write_video(renderer.frames(90), video, fps=15.0)
    broker = mosquitto()
    subscriber = Subscriber(broker.port, f"{PREFIX}/#")
    try:
        assert main(["run", str(_pipeline(tmp_path, video, broker.port))]) == 0

        lines = (tmp_path / "events.jsonl").read_text().splitlines()
        logged = [json.loads(line) for line in lines]
        assert logged, "the yard scene raised no event end to end"
        validator = jsonschema.Draft202012Validator(
            event_schema(), format_checker=jsonschema.FormatChecker()
        )
        for payload in logged:
            validator.validate(payload)
        rules = {p["rule_id"] for p in logged}
        assert "worker-in-swing-near" in rules

        # Every occurrence has a lifecycle that ends (the stream's end closes open ones).
        by_id: dict[str, list[str]] = {}
        for p in logged:
            by_id.setdefault(p["event_id"], []).append(p["type"])
        assert all(types[0] == "start" and types[-1] == "end" for types in by_id.values())

        # The broker got exactly the logged messages (the outbox was flushed at close).
        key = lambda p: (p["event_id"], p["type"], p["seq"])  # noqa: E731
        subscriber.wait_for(lambda s: len(s.on(f"{PREFIX}/events")) >= len(logged), timeout=10)
        published = [json.loads(m) for m in subscriber.on(f"{PREFIX}/events")]
        assert {key(p) for p in published} == {key(p) for p in logged}

        # Retained state: the rules that fired were ON, all are OFF once the stream ended.
        state = subscriber.on(f"{PREFIX}/yard/worker-in-swing-near/state")
        assert b"ON" in state and state[-1] == b"OFF"
        assert subscriber.on(f"{PREFIX}/yard/status")[-1] == b"ended"
        assert subscriber.on(f"{PREFIX}/available")[-1] == b"offline"

        # The recorder's paths are in the payload and the files exist and decode.
        snapshots = {p["snapshot"] for p in logged if p["snapshot"]}
        assert snapshots, "no event carries a snapshot path"
        for path in snapshots:
            image: Any = cv2.imread(path)
            assert image is not None and image.shape == (360, 640, 3), path
        clips = {p["clip"] for p in logged if p["type"] == "end" and p["clip"]}
        assert clips and all(Path(c).is_file() and Path(c).stat().st_size > 0 for c in clips)
    finally:
        subscriber.close()

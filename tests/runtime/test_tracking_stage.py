"""``streamseg run``-style pipelines carry track ids: the tracker stage runs first per stream."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import supervision as sv

from streamseg.config import ModelConfig, TrackerConfig, load_pipeline_text
from streamseg.runtime.analytics import AnalyticsStage
from streamseg.runtime.pipeline import Pipeline
from streamseg.track import TrackerStage, tracker_stage_factory
from streamseg.track.stage import model_for_tracking
from streamseg.types import Frame


def _yaml(model: Path, clips: list[tuple[str, Path]], out: Path, tracker: str = "") -> str:
    lines = ["name: tracked", "sources:"]
    lines += [f"  - {{id: {sid}, type: file, path: '{path}'}}" for sid, path in clips]
    lines += ["model:", f"  weights: '{model}'", "  device: cpu", "outputs:"]
    lines += [f"  jsonl: {{path: '{out / 'det.jsonl'}'}}"]
    return "\n".join(lines) + "\n" + tracker


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_pipeline_output_carries_track_ids(
    fake_model: Path, h264_file: Callable[..., Any], tmp_path: Path
) -> None:
    clips = [("a", h264_file("a.mp4", frames=12, fps=15).path)]
    clips.append(("b", h264_file("b.mp4", frames=9, fps=15).path))
    config = load_pipeline_text(_yaml(fake_model, clips, tmp_path))
    assert config.tracker.enabled  # on by default
    summary = Pipeline(config).run()
    assert summary.frames == {"a": 12, "b": 9}
    assert any(s.stage == "tracker" for s in summary.timings)
    for stream in ("a", "b"):
        lines = [line for line in _lines(tmp_path / "det.jsonl") if line["stream"] == stream]
        ids = [[d["tracker_id"] for d in line["detections"]] for line in lines]
        # The fake network plants person 0.9, car 0.7, dog 0.5, dog 0.3 on every frame. From
        # the stream's first frame (no wait for min_confirm_s there) the three confident ones
        # hold ids 1, 2, 3 (each stream numbers its own tracks); the 0.3 dog never starts a
        # track (persist_threshold is off by default; see the test below).
        assert ids == [[1, 2, 3, -1]] * len(lines)


@pytest.mark.parametrize("persist", [True, False])
def test_weak_detections_reach_the_tracker_and_show_only_once_tracked(
    fake_model: Path, h264_file: Callable[..., Any], tmp_path: Path, persist: bool
) -> None:
    """Below model.confidence (here 0.35) but above tracker.low_threshold (0.25), the 0.3 dog
    is kept by the model for the tracker, and the outputs show it only while a track holds it:
    with persist_threshold, from the sixth frame (it stayed persist_s, 0.3 s, in place)."""
    clips = [("a", h264_file("a.mp4", frames=10, fps=15).path)]
    tracker = "tracker: {persist_threshold: %s}\n" % ("0.2" if persist else "null")
    text = _yaml(fake_model, clips, tmp_path, tracker).replace(
        "  device: cpu", "  device: cpu\n  confidence: 0.35"
    )
    Pipeline(load_pipeline_text(text)).run()
    ids = [[d["tracker_id"] for d in line["detections"]] for line in _lines(tmp_path / "det.jsonl")]
    assert ids[:5] == [[1, 2, 3]] * 5
    assert ids[5:] == [[1, 2, 3, 4] if persist else [1, 2, 3]] * 5


def test_tracker_disabled_leaves_ids_unset(
    fake_model: Path, h264_file: Callable[..., Any], tmp_path: Path
) -> None:
    clips = [("a", h264_file("a.mp4", frames=5, fps=15).path)]
    config = load_pipeline_text(_yaml(fake_model, clips, tmp_path, "tracker: {enabled: false}\n"))
    summary = Pipeline(config).run()
    assert summary.frames == {"a": 5}
    assert not any(s.stage == "tracker" for s in summary.timings)
    for line in _lines(tmp_path / "det.jsonl"):
        assert all("tracker_id" not in d for d in line["detections"])


class _Seen:
    """A stage after the tracker: records the ids it receives."""

    name = "seen"

    def __init__(self, log: list[list[int]]) -> None:
        self.log = log

    def process(self, frame: Frame, detections: sv.Detections) -> sv.Detections:
        self.log.append([] if detections.tracker_id is None else detections.tracker_id.tolist())
        return detections


def test_caller_stages_run_after_the_tracker(
    fake_model: Path, h264_file: Callable[..., Any], tmp_path: Path
) -> None:
    clips = [("a", h264_file("a.mp4", frames=6, fps=15).path)]
    config = load_pipeline_text(_yaml(fake_model, clips, tmp_path))
    log: list[list[int]] = []

    def factory(stream_id: str) -> AnalyticsStage:
        return _Seen(log)

    Pipeline(config, stage_factories=[factory]).run()
    assert log[0] == log[-1] == [1, 2, 3, -1]  # ids: the tracker ran first


def test_stage_uses_the_frame_timestamp_and_one_tracker_per_stream() -> None:
    factory = tracker_stage_factory(TrackerConfig(min_confirm_s=0.5))
    assert factory is not None and tracker_stage_factory(TrackerConfig(enabled=False)) is None
    a, b = factory("a"), factory("b")
    assert isinstance(a, TrackerStage) and isinstance(b, TrackerStage)
    assert a.tracker is not b.tracker
    image = np.zeros((20, 20, 3), dtype=np.uint8)
    dets = sv.Detections(xyxy=np.array([[1.0, 1, 9, 9]]), confidence=np.array([0.9]))
    # The first frame is empty (on it an object would get its id at once). Frame indices
    # advance by one but pts by 0.3 s: confirmation follows pts, not indices.
    a.process(Frame("a", 0, 0.0, 0.0, image), sv.Detections.empty())
    ids = [
        a.process(Frame("a", i, 0.3 * i, 0.0, image), dets).tracker_id.tolist() for i in range(1, 4)
    ]
    assert ids == [[-1], [-1], [1]]


def test_the_model_keeps_the_weak_band_only_for_a_tracker_that_uses_it() -> None:
    model = ModelConfig(weights="builtin", confidence=0.3)
    lowered = model_for_tracking(model, TrackerConfig(low_threshold=0.15))
    assert lowered.confidence == 0.15 and lowered.weights == "builtin"
    assert model.confidence == 0.3  # not modified
    assert model_for_tracking(model, TrackerConfig(low_threshold=0.3)) is model
    assert model_for_tracking(model, TrackerConfig(low_threshold=0.4)) is model
    off = TrackerConfig(enabled=False, low_threshold=0.15)
    assert model_for_tracking(model, off) is model

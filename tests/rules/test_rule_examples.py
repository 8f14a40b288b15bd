"""The example pipelines raise their events on the synthetic scene each one is written for."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamseg.config import load_pipeline
from streamseg.rules import RuleEngine
from streamseg.synth import SceneRenderer
from streamseg.types import Frame

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"


@pytest.mark.parametrize(
    ("example", "kind", "seed", "frames", "expected"),
    [
        (
            "machinery_zone",
            "yard",
            2,
            90,
            {
                "worker-in-swing-near",
                "worker-feet-in-swing-near",
                "worker-near-machine",
                "worker-near-moving-machine",
            },
        ),
        (
            "livestock",
            "field",
            2,
            150,
            {"animal-left-paddock", "animal-entered-paddock", "headcount-low"},
        ),
        ("sports", "pitch", 3, 90, {"halfway-crossed", "box-crowded", "ball-in-box"}),
    ],
)
def test_example_raises_events_on_its_scene(
    example: str, kind: str, seed: int, frames: int, expected: set[str]
) -> None:
    """Ground-truth detections of the scene the example's comments render (at half size: the
    zones and the calibration are normalized)."""
    config = load_pipeline(PIPELINES / f"{example}.yaml", env={})
    (source,) = config.sources
    engine = RuleEngine.from_config(config, source.id)
    assert set(engine.rule_ids) == {rule.id for rule in config.rules}
    renderer = SceneRenderer(kind, seed, (320, 180), fps=15.0, difficulty="occlusion")
    started: set[str] = set()
    for synth in renderer.frames(frames):
        frame = Frame(source.id, synth.index, synth.pts_s, synth.pts_s, synth.image)
        started |= {e.rule_id for e in engine.evaluate(frame, synth.to_detections())}
    assert expected <= started

"""The ``outputs.record`` section: defaults, sections off unless present, errors into the YAML."""

from __future__ import annotations

import pytest

from streamseg.config import ConfigError, load_pipeline_text
from streamseg.config.record import RecordConfig

HEAD = "sources:\n  - {id: gate, type: file, path: gate.mp4}\noutputs:\n"


def test_full_example_parses() -> None:
    config = load_pipeline_text(
        HEAD
        + """  record:
    encoder: {codec: h264, crf: 26, preset: superfast, keyframe_interval_s: 1, fps: 15}
    annotation: {traces: false}
    continuous: {dir: rec, segment_s: 60, max_age_h: 24, max_total_mb: 500, annotated: false}
    clips: {dir: clips, pre_s: 3, post_s: 2}
    snapshots: {dir: snaps, jpeg_quality: 80}
"""
    )
    record = config.outputs.record
    assert record is not None
    assert (record.encoder.preset, record.encoder.keyframe_interval_s) == ("superfast", 1.0)
    assert record.continuous is not None and record.continuous.max_total_mb == 500
    assert record.clips is not None and (record.clips.pre_s, record.clips.post_s) == (3, 2)
    assert record.continuous_on and record.clips_on and record.snapshots_on


def test_sections_are_off_unless_present_and_empty_keys_take_defaults() -> None:
    record = load_pipeline_text(HEAD + "  record:\n    clips:\n").outputs.record
    assert record is not None
    assert record.clips_on and not record.continuous_on and not record.snapshots_on
    assert record.clips is not None and record.clips.dir == "out/clips"
    off = RecordConfig.model_validate({"continuous": {"enabled": False}})
    assert not off.continuous_on


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("continuous: {segment_s: 0.5}", "outputs.record.continuous.segment_s"),
        ("clips: {pre_s: -1}", "outputs.record.clips.pre_s"),
        ("encoder: {keyframe_interval_s: 0}", "outputs.record.encoder.keyframe_interval_s"),
        ("encoder: {codec: divx}", "outputs.record.encoder.codec"),
        ("encoder: {preset: turbo}", "outputs.record.encoder.preset"),
        ("snapshots: {jpeg_quality: 101}", "outputs.record.snapshots.jpeg_quality"),
        ("continuous: {max_total_mb: true}", "outputs.record.continuous.max_total_mb"),
        ("clips: {pre_roll: 3}", "outputs.record.clips.pre_roll"),
    ],
)
def test_errors_point_at_the_key(section: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_pipeline_text(HEAD + f"  record:\n    {section}\n", filename="p.yaml")
    text = str(info.value)
    assert expected in text and "p.yaml:5:" in text


def test_clips_and_segments_need_separate_folders() -> None:
    """Regression: with one folder, segment retention deleted clips (the open one too)."""
    same = "    continuous: {dir: out/rec}\n    clips: {dir: ./out/rec/}\n"
    with pytest.raises(ConfigError) as info:
        load_pipeline_text(HEAD + "  record:\n" + same, filename="p.yaml")
    text = str(info.value)
    assert "p.yaml:6:" in text and "outputs.record.clips" in text
    assert "clips.dir and continuous.dir are the same folder" in text
    apart = "    continuous: {dir: out/rec}\n    clips: {dir: out/rec/clips}\n"
    record = load_pipeline_text(HEAD + "  record:\n" + apart).outputs.record
    assert record is not None and record.clips_on and record.continuous_on

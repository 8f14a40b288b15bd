"""The ``tracker:`` section: defaults, bounds, and how a pipeline file turns tracking on or off."""

from __future__ import annotations

import textwrap

import pytest
from pydantic import ValidationError

from streamseg.config import ConfigError, TrackerConfig, load_pipeline_text

HEAD = """\
sources:
  - {id: cam, type: file, path: a.mp4}
"""


def test_defaults_are_a_mask_tracker() -> None:
    cfg = TrackerConfig()
    assert cfg.enabled and cfg.type == "mask"
    assert cfg.effective_mask_weight == cfg.mask_weight == 0.5
    assert (cfg.min_confirm_s, cfg.lost_buffer_s) == (0.1, 2.0)
    assert cfg.low_threshold <= cfg.high_threshold
    assert TrackerConfig(type="box").effective_mask_weight == 0.0
    # Every option is documented for operators.
    assert all(field.description for field in TrackerConfig.model_fields.values())


@pytest.mark.parametrize(
    ("text", "enabled", "kind"),
    [
        ("", True, "mask"),
        ("tracker:\n", True, "mask"),
        ("tracker: {}\n", True, "mask"),
        ("tracker: {enabled: false}\n", False, "mask"),
        ("tracker: {type: box, lost_buffer_s: 3}\n", True, "box"),
        ("tracker: {lost_buffer_s: 6, hidden_buffer_s: null}\n", True, "mask"),
    ],
)
def test_pipeline_section(text: str, enabled: bool, kind: str) -> None:
    config = load_pipeline_text(HEAD + text, env={})
    assert config.tracker.enabled is enabled and config.tracker.type == kind


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"type": "iou"}, "'mask' or 'box'"),
        ({"high_threshold": 1.5}, "less than or equal to 1"),
        ({"low_threshold": -0.1}, "greater than or equal to 0"),
        ({"high_threshold": 0.3, "low_threshold": 0.5}, "must not exceed high_threshold"),
        ({"match_threshold": 0}, "greater than 0"),
        ({"new_track_threshold": 1.1}, "less than or equal to 1"),
        ({"mask_weight": 2}, "less than or equal to 1"),
        ({"mask_resolution": 8}, "greater than or equal to 16"),
        ({"min_confirm_s": -1}, "greater than or equal to 0"),
        ({"lost_buffer_s": 0}, "greater than 0"),
        ({"lost_buffer_s": 6, "hidden_buffer_s": 5}, r"hidden_buffer_s \(5.0\) must not be below"),
        ({"hidden_buffer_s": 0}, "greater than 0"),
        ({"lost_velocity_decay_s": 0}, "greater than 0"),
        ({"fallback_dt_s": 0}, "greater than 0"),
        ({"lost_buffer_s": True}, "not true/false"),
        ({"max_age": 30}, "Extra inputs are not permitted"),
    ],
)
def test_rejects(options: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        TrackerConfig(**options)  # type: ignore[arg-type]


def test_errors_point_into_the_yaml() -> None:
    text = HEAD + textwrap.dedent(
        """\
        tracker:
          lost_buffer_s: -2
        """
    )
    with pytest.raises(ConfigError) as info:
        load_pipeline_text(text, env={})
    (issue,) = info.value.issues
    assert issue.key_path == "tracker.lost_buffer_s" and issue.line == 4

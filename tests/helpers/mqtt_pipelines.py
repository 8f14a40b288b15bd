"""A pipeline for the MQTT output tests: two streams, with zones and rules that run on one of
them or on both (``gate``: in-pen and crossing; ``dock``: crossing and close)."""

from __future__ import annotations

import json
from typing import Any

from streamseg.config import PipelineConfig, load_pipeline_text

TWO_STREAMS = """\
name: yard
sources:
  - {{id: gate, type: file, path: x.mp4}}
  - {{id: dock, type: file, path: y.mp4}}
zones:
  - {{id: pen, type: polygon, stream: gate, points: [[0, 0], [10, 0], [10, 10]]}}
  - {{id: halfway, type: line, points: [[0, 0], [0, 10]]}}
rules:
  - {{id: in-pen, type: inside, zone: pen}}
  - {{id: crossing, type: cross, zone: halfway}}
  - {{id: close, type: near, classes: [person], other_classes: [truck], max_distance: 5,
      stream: dock}}
outputs:
  mqtt: {mqtt}
"""
"""The pipeline's YAML, with ``{mqtt}`` to fill with the ``outputs.mqtt`` block (JSON)."""
RULE_PAIRS = [("gate", "in-pen"), ("gate", "crossing"), ("dock", "crossing"), ("dock", "close")]
"""The (stream, rule) pairs that run."""


def two_streams(**mqtt: Any) -> PipelineConfig:
    """:data:`TWO_STREAMS` with ``mqtt`` as its ``outputs.mqtt`` block."""
    return load_pipeline_text(TWO_STREAMS.format(mqtt=json.dumps(mqtt)), filename="p.yaml", env={})

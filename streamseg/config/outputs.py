"""The ``outputs`` section: JSON Lines detections, annotated video and MOTS tracks."""

from __future__ import annotations

import logging
import string
from typing import Literal

from pydantic import Field, field_validator

from streamseg.config._base import ConfigModel, Float, Int, NonEmptyStr
from streamseg.config.mqtt import MqttOutputConfig
from streamseg.config.record import RecordConfig

logger = logging.getLogger(__name__)

STREAM_PLACEHOLDER = "{stream}"
"""Placeholder in ``outputs.video.path`` that becomes the source id."""


class JsonlOutputConfig(ConfigModel):
    """Per-frame detections as JSON Lines."""

    path: NonEmptyStr = Field(default="out/detections.jsonl", description="output file")
    masks: bool = Field(default=False, description="include RLE masks")


class VideoOutputConfig(ConfigModel):
    """One annotated MP4 per stream."""

    path: NonEmptyStr = Field(
        default="out/{stream}.mp4", description="output file; {stream} becomes the source id"
    )
    codec: Literal["auto", "h264", "mpeg4", "hevc", "vp9"] = Field(
        default="auto", description="encoder; auto = h264 when available, else mpeg4"
    )
    crf: Int = Field(
        default=23, ge=0, le=51, description="constant rate factor (lower = better quality)"
    )
    fps: Float | None = Field(
        default=None, gt=0, description="output frame rate; null uses the measured source rate"
    )
    masks: bool = Field(default=True, description="draw masks")
    boxes: bool = Field(default=True, description="draw boxes")
    labels: bool = Field(default=True, description="draw class and track labels")

    @field_validator("path")
    @classmethod
    def _only_stream_placeholder(cls, value: str) -> str:
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as exc:
            raise ValueError(
                f"expected a path whose only placeholder is {STREAM_PLACEHOLDER} "
                f"(write {{{{ and }}}} for literal braces): {exc}"
            ) from None
        unknown = sorted(fields - {"stream"})
        if unknown:
            raise ValueError(
                f"expected {STREAM_PLACEHOLDER} as the only placeholder, "
                f"found {', '.join('{' + name + '}' for name in unknown)}"
            )
        return value

    def path_for(self, stream_id: str) -> str:
        """The output path of one stream: ``path`` with ``{stream}`` replaced by ``stream_id``."""
        return self.path.format(stream=stream_id)


class MotsOutputConfig(ConfigModel):
    """Tracks as MOTS text, one ``<dir>/<stream>.txt`` per stream (``streamseg eval tracking``).

    Rows are written for tracked objects only (``tracker_id`` >= 1), so the pipeline needs a
    tracker; see :mod:`streamseg.outputs.mots` for the format.
    """

    dir: NonEmptyStr = Field(
        default="out/mots", description="output folder; each stream writes <dir>/<stream>.txt"
    )


class EventsOutputConfig(ConfigModel):
    """Every event message as JSON Lines (the payload of the shipped event schema)."""

    path: NonEmptyStr = Field(default="out/events.jsonl", description="output file (appended to)")


class OutputsConfig(ConfigModel):
    """Where results go; every output is off unless its key is present."""

    jsonl: JsonlOutputConfig | None = Field(
        default=None, description="per-frame detections as JSONL"
    )
    video: VideoOutputConfig | None = Field(default=None, description="annotated MP4 per stream")
    mots: MotsOutputConfig | None = Field(
        default=None, description="tracks as MOTS text per stream (TrackEval)"
    )
    events: EventsOutputConfig | None = Field(
        default=None, description="every event message as JSONL"
    )
    mqtt: MqttOutputConfig | None = Field(
        default=None, description="alerts over MQTT with a durable outbox"
    )
    record: RecordConfig | None = Field(
        default=None, description="continuous recording, event clips and snapshots"
    )

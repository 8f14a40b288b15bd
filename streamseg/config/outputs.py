"""The ``outputs`` section: JSON Lines detections and annotated video."""

from __future__ import annotations

import logging
import string
from typing import Literal

from pydantic import Field, field_validator

from streamseg.config._base import ConfigModel, Float, Int, NonEmptyStr

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


class OutputsConfig(ConfigModel):
    """Where results go; every output is off unless its key is present."""

    jsonl: JsonlOutputConfig | None = Field(
        default=None, description="per-frame detections as JSONL"
    )
    video: VideoOutputConfig | None = Field(default=None, description="annotated MP4 per stream")

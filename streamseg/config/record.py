"""The ``outputs.record`` section: continuous segments, event clips and snapshots.

Example::

    outputs:
      record:
        encoder: {codec: auto, crf: 23, preset: ultrafast, keyframe_interval_s: 2}
        continuous: {dir: recordings, segment_s: 300, max_age_h: 168, max_total_mb: 20000}
        clips: {dir: clips, pre_s: 5, post_s: 5}
        snapshots: {dir: snapshots, jpeg_quality: 90}

Each of ``continuous``, ``clips`` and ``snapshots`` is off unless its key is present; an empty
key (``clips:``) takes the defaults, and ``enabled: false`` turns a block off without deleting
it. ``encoder`` is shared: continuous recording and clips of the same variant (annotated or
clean) come out of one encoder per stream, clips being remuxed from its packets.
"""

from __future__ import annotations

import logging
import os
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from streamseg.config._base import ConfigModel, Float, Int, NonEmptyStr, none_as_empty

logger = logging.getLogger(__name__)

Preset = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
]


class RecordEncoderConfig(ConfigModel):
    """How recordings are encoded (shared by continuous recording and clips)."""

    codec: Literal["auto", "h264", "hevc", "mpeg4"] = Field(
        default="auto", description="encoder; auto = h264 when available, else mpeg4"
    )
    crf: Int = Field(
        default=23, ge=0, le=51, description="constant rate factor (lower = better, bigger)"
    )
    preset: Preset = Field(
        default="ultrafast",
        description="x264/x265 speed preset (faster = less CPU, bigger files); ultrafast costs "
        "about half the CPU of veryfast at twice the bit rate, which suits a CPU box whose cores "
        "run the model",
    )
    keyframe_interval_s: Float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="seconds between keyframes: the precision of clip starts and segment cuts, "
        "and the most a SIGKILL loses",
    )
    fps: Float | None = Field(
        default=None, gt=0, description="rate declared in the files; null = the source's rate"
    )
    threads: Int = Field(
        default=1, ge=0, le=64, description="encoder threads per stream (0 = one per core)"
    )
    queue_frames: Int = Field(
        default=16,
        ge=1,
        le=1024,
        description="frames waiting for the encoder per stream; beyond it frames are dropped "
        "and counted (each holds one raw frame in memory)",
    )


class RecordAnnotationConfig(ConfigModel):
    """What annotated recordings draw."""

    masks: bool = Field(default=True, description="draw instance masks, coloured per track")
    boxes: bool = Field(default=True, description="draw bounding boxes")
    labels: bool = Field(default=True, description="draw class, track id and confidence")
    zones: bool = Field(default=True, description="draw zones and lines with counts and state")
    traces: bool = Field(default=True, description="draw short motion traces per track")
    trace_length: Int = Field(
        default=30, ge=2, le=1000, description="frames of history a motion trace shows"
    )


class ContinuousRecordConfig(ConfigModel):
    """Continuous recording of every stream, split into segments, with retention."""

    enabled: bool = Field(default=True, description="record continuously")
    annotated: bool = Field(default=True, description="draw annotations (false = clean video)")
    dir: NonEmptyStr = Field(
        default="out/record", description="folder; each stream writes <dir>/<stream>/*.mp4"
    )
    segment_s: Float = Field(
        default=300.0,
        ge=1,
        le=86400,
        description="segment length in seconds (cut at the next keyframe)",
    )
    max_age_h: Float | None = Field(
        default=168.0, gt=0, description="delete segments older than this; null keeps them"
    )
    max_total_mb: Float | None = Field(
        default=10000.0,
        gt=0,
        description="delete the oldest segments while the folder is larger; null = no cap",
    )


class ClipsConfig(ConfigModel):
    """One clip per event, from ``pre_s`` before its start to ``post_s`` after its end."""

    enabled: bool = Field(default=True, description="record event clips")
    annotated: bool = Field(default=True, description="draw annotations (false = clean video)")
    dir: NonEmptyStr = Field(
        default="out/clips", description="folder; each stream writes <dir>/<stream>/*.mp4"
    )
    pre_s: Float = Field(
        default=5.0, ge=0, le=120, description="seconds kept in memory before each event"
    )
    post_s: Float = Field(default=5.0, ge=0, le=600, description="seconds recorded after its end")
    max_s: Float = Field(
        default=600.0, gt=0, le=86400, description="longest clip; a longer event's clip is cut"
    )
    ring_max_mb: Float = Field(
        default=64.0,
        gt=0,
        le=4096,
        description="memory cap of the pre-event ring per stream (encoded video)",
    )
    max_age_h: Float | None = Field(
        default=None, gt=0, description="delete clips older than this; null keeps them"
    )
    max_total_mb: Float | None = Field(
        default=None, gt=0, description="delete the oldest clips while the folder is larger"
    )


class SnapshotsConfig(ConfigModel):
    """A JPEG of each event's first frame with the event's objects highlighted."""

    enabled: bool = Field(default=True, description="write event snapshots")
    dir: NonEmptyStr = Field(
        default="out/snapshots", description="folder; each stream writes <dir>/<stream>/*.jpg"
    )
    jpeg_quality: Int = Field(default=90, ge=1, le=100, description="JPEG quality")
    max_age_h: Float | None = Field(
        default=None, gt=0, description="delete snapshots older than this; null keeps them"
    )
    max_total_mb: Float | None = Field(
        default=None, gt=0, description="delete the oldest snapshots while the folder is larger"
    )


class RecordConfig(ConfigModel):
    """Recording: continuous segments, event clips and snapshots (each off unless present)."""

    encoder: RecordEncoderConfig = Field(
        default_factory=RecordEncoderConfig, description="encoding shared by segments and clips"
    )
    annotation: RecordAnnotationConfig = Field(
        default_factory=RecordAnnotationConfig, description="what annotated recordings draw"
    )
    continuous: ContinuousRecordConfig | None = Field(
        default=None, description="continuous recording in segments"
    )
    clips: ClipsConfig | None = Field(default=None, description="event clips with pre/post roll")
    snapshots: SnapshotsConfig | None = Field(default=None, description="event snapshots (JPEG)")

    _sections_none = field_validator(
        "encoder", "annotation", "continuous", "clips", "snapshots", mode="before"
    )(none_as_empty)

    @field_validator("clips")
    @classmethod
    def _clips_apart_from_segments(
        cls, value: ClipsConfig | None, info: ValidationInfo
    ) -> ClipsConfig | None:
        # Each folder's retention deletes the oldest <stream>/*.mp4 it finds and spares only
        # the files its own recorder is writing: sharing one folder, segment retention deleted
        # clips, the open one included.
        continuous = info.data.get("continuous")
        if value is None or continuous is None:
            return value
        if os.path.abspath(value.dir) == os.path.abspath(continuous.dir):
            raise ValueError(
                f"clips.dir and continuous.dir are the same folder ({value.dir!r}); expected "
                "separate folders: each one's retention would delete the other's files"
            )
        return value

    @property
    def continuous_on(self) -> bool:
        """Continuous recording is configured and enabled."""
        return self.continuous is not None and self.continuous.enabled

    @property
    def clips_on(self) -> bool:
        """Event clips are configured and enabled."""
        return self.clips is not None and self.clips.enabled

    @property
    def snapshots_on(self) -> bool:
        """Event snapshots are configured and enabled."""
        return self.snapshots is not None and self.snapshots.enabled

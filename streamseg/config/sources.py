"""The ``sources`` section: files, RTSP cameras and USB cameras (discriminated on ``type``)."""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from typing_extensions import Self

from streamseg.config._base import ConfigModel, Float, Identifier, Int, NonEmptyStr, none_as_empty
from streamseg.config.zones import CalibrationConfig
from streamseg.redact import redact_url

logger = logging.getLogger(__name__)

_FPS_DESCRIPTION = "optional cap in frames per second; frames above it are skipped and counted"

_URL_SCHEME = re.compile(r"^rtsps?://", re.IGNORECASE)


class ReconnectConfig(ConfigModel):
    """How a live source retries after it loses its stream: exponential back-off."""

    initial_delay_s: Float = Field(
        default=0.5, gt=0, description="delay before the first reconnect attempt, seconds"
    )
    max_delay_s: Float = Field(
        default=30.0,
        gt=0,
        description="upper bound of the doubling delay between attempts, seconds",
    )
    max_attempts: Int | None = Field(
        default=None, ge=1, description="attempts before the source fails; null retries forever"
    )

    @field_validator("max_delay_s")
    @classmethod
    def _max_not_below_initial(cls, value: float, info: ValidationInfo) -> float:
        initial = info.data.get("initial_delay_s")
        if initial is not None and value < initial:
            raise ValueError(f"expected max_delay_s >= initial_delay_s ({initial:g})")
        return value


class _SourceBase(ConfigModel):
    """Keys every source type has."""

    id: Identifier = Field(description="unique id of the stream (letters, digits, _ and -)")
    fps: Float | None = Field(default=None, gt=0, description=_FPS_DESCRIPTION)
    calibration: CalibrationConfig | None = Field(
        default=None,
        description="ground plane: 4 image points and their ground positions in metres "
        "(near rules in metres)",
    )


class FileSourceConfig(_SourceBase):
    """A video file (or any path/URL PyAV opens), read frame by frame without drops."""

    type: Literal["file"] = Field(description="source type")
    path: NonEmptyStr = Field(description="file path or URL that PyAV opens")
    realtime: bool = Field(
        default=False,
        description="pace frames at the stream rate like a camera (newest frame, drops counted)",
    )
    queue_size: Int = Field(
        default=8, ge=1, description="bounded queue length; a file run blocks on it, it never drops"
    )


class _LiveSourceBase(_SourceBase):
    """Fields every live source (camera) shares: the stall watchdog and reconnecting."""

    stall_timeout_s: Float = Field(
        default=5.0,
        gt=0,
        description="connected but no frame for this long: stalled, then reconnect",
    )
    reconnect: ReconnectConfig = Field(
        default_factory=ReconnectConfig, description="reconnect back-off"
    )

    _reconnect_none = field_validator("reconnect", mode="before")(none_as_empty)


class RtspSourceConfig(_LiveSourceBase):
    """An RTSP camera, with a stall watchdog and reconnects."""

    type: Literal["rtsp"] = Field(description="source type")
    url: NonEmptyStr = Field(description="rtsp:// or rtsps:// URL; use ${VAR} for credentials")
    transport: Literal["tcp", "udp"] = Field(default="tcp", description="RTP transport")
    open_timeout_s: Float = Field(
        default=5.0, gt=0, description="time allowed to open the stream, seconds"
    )
    read_timeout_s: Float = Field(
        default=5.0, gt=0, description="socket read timeout passed to FFmpeg, seconds"
    )

    @field_validator("url")
    @classmethod
    def _rtsp_scheme(cls, value: str) -> str:
        # The message never repeats the URL: it may hold a password.
        if not _URL_SCHEME.match(value):
            raise ValueError("expected a URL that starts with rtsp:// or rtsps://")
        return value

    @property
    def redacted_url(self) -> str:
        """``url`` with the password replaced by ``***``, safe for logs and metrics."""
        return redact_url(self.url)


class UsbSourceConfig(_LiveSourceBase):
    """A V4L2 camera (``/dev/video<n>``), with a stall watchdog and reconnects."""

    type: Literal["usb"] = Field(description="source type")
    device: int | str = Field(
        description="device path such as /dev/video0, or an index n meaning /dev/video<n>"
    )
    width: Int | None = Field(default=None, ge=1, description="requested frame width in pixels")
    height: Int | None = Field(default=None, ge=1, description="requested frame height in pixels")
    input_format: NonEmptyStr | None = Field(
        default=None, description="requested pixel format, e.g. mjpeg or yuyv422"
    )

    @model_validator(mode="after")
    def _width_with_height(self) -> Self:
        # FFmpeg's V4L2 input takes one video_size: caught here, not when the camera opens
        # (where it stopped the whole pipeline's start).
        if (self.width is None) != (self.height is None):
            raise ValueError("width and height go together: give both or neither")
        return self

    @field_validator("device", mode="before")
    @classmethod
    def _device_path_or_index(cls, value: Any) -> int | str:
        # One check here instead of an int|str union, which would report one error per member.
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str) and value.strip():
            return value
        raise ValueError("expected a device path like /dev/video0 or an index >= 0")

    @property
    def device_path(self) -> str:
        """The device as a path: an index ``n`` (or the text ``"n"``) becomes ``/dev/video<n>``."""
        if isinstance(self.device, int) or self.device.isdigit():
            return f"/dev/video{int(self.device)}"
        return self.device


SourceConfig = Annotated[
    FileSourceConfig | RtspSourceConfig | UsbSourceConfig, Field(discriminator="type")
]
"""One entry of ``sources``: the ``type`` key picks the model."""

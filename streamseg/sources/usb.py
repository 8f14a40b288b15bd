"""USB / V4L2 cameras, read with PyAV's ``v4l2`` input device (Linux)."""

from __future__ import annotations

import logging
import random
from typing import Protocol

from streamseg.sources.live import LiveSource, OpenArgs, ReconnectSettings

__all__ = ["UsbSource", "UsbSourceSettings", "usb_device_path", "usb_open_args"]

logger = logging.getLogger(__name__)


class UsbSourceSettings(Protocol):
    """The fields of ``streamseg.config.UsbSourceConfig`` this module reads."""

    @property
    def id(self) -> str: ...
    @property
    def device(self) -> str | int: ...
    @property
    def width(self) -> int | None: ...
    @property
    def height(self) -> int | None: ...
    @property
    def input_format(self) -> str | None: ...
    @property
    def fps(self) -> float | None: ...
    @property
    def stall_timeout_s(self) -> float: ...
    @property
    def reconnect(self) -> ReconnectSettings: ...


def usb_device_path(device: str | int) -> str:
    """``/dev/videoN`` for an index N (int or all-digit string); a path is returned as is."""
    if isinstance(device, bool):
        raise ValueError(f"device must be a path or an index, got {device!r}")
    if isinstance(device, int) or device.isdigit():
        index = int(device)
        if index < 0:
            raise ValueError(f"device index must be >= 0, got {device!r}")
        return f"/dev/video{index}"
    if not device:
        raise ValueError("device must be a path like /dev/video0 or an index, got ''")
    return device


def usb_open_args(cfg: UsbSourceSettings) -> OpenArgs:
    """Build the ``av.open`` arguments for a V4L2 camera.

    Options are set only when configured, so the camera keeps its defaults otherwise:
    ``video_size`` = ``WIDTHxHEIGHT``, ``input_format`` (``mjpeg``, ``yuyv422``, ...) and
    ``framerate`` (from ``fps``, which also caps delivery). The timeout only bounds the open:
    V4L2 reads do not consult FFmpeg's interrupt callback (an unplugged camera makes the read
    fail instead).

    Raises:
        ValueError: if only one of width / height is set, or a size or rate is not positive.
    """
    if (cfg.width is None) != (cfg.height is None):
        raise ValueError(
            f"source {cfg.id!r}: width and height go together, got width={cfg.width!r}, "
            f"height={cfg.height!r}"
        )
    options: dict[str, str] = {}
    if cfg.width is not None and cfg.height is not None:
        if cfg.width <= 0 or cfg.height <= 0:
            raise ValueError(
                f"source {cfg.id!r}: width and height must be > 0, got {cfg.width!r}x{cfg.height!r}"
            )
        options["video_size"] = f"{cfg.width}x{cfg.height}"
    if cfg.input_format:
        options["input_format"] = cfg.input_format
    if cfg.fps is not None:
        if cfg.fps <= 0:
            raise ValueError(f"source {cfg.id!r}: fps must be > 0, got {cfg.fps!r}")
        options["framerate"] = f"{cfg.fps:g}"
    timeout_s = cfg.stall_timeout_s
    return OpenArgs(
        file=usb_device_path(cfg.device),
        format="v4l2",
        options=options,
        timeout=(timeout_s, timeout_s),
    )


class UsbSource(LiveSource):
    """A V4L2 camera: reconnects when it disappears (unplugged), newest frame only.

    Args:
        cfg: a ``UsbSourceConfig`` (or anything with its fields).
        rng: random generator for the backoff jitter.
    """

    def __init__(self, cfg: UsbSourceSettings, *, rng: random.Random | None = None) -> None:
        self._open_args = usb_open_args(cfg)
        super().__init__(
            cfg.id,
            fps_cap=cfg.fps,
            stall_timeout_s=cfg.stall_timeout_s,
            reconnect=cfg.reconnect,
            rng=rng,
        )
        self.device = self._open_args.file

    def open_args(self) -> OpenArgs:
        """The ``av.open`` arguments (see :func:`usb_open_args`)."""
        return self._open_args

    @property
    def target(self) -> str:
        """The device path."""
        return self.device

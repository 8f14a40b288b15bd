"""USB / V4L2 cameras, read with PyAV's ``v4l2`` input device (Linux).

FFmpeg's V4L2 reads do not consult its interrupt callback: opened the usual way, a camera that
stays connected but stops delivering (a firmware hang, a stalled USB hub) blocks the read
forever, and the stall watchdog can mark the source ``stalled`` but never get the reader back
to reconnect. So the device is opened non-blocking (the format flag ``AVFMT_FLAG_NONBLOCK``,
given as ``fflags=+4``: FFmpeg 8 no longer knows the name ``nonblock``; FFmpeg's v4l2 device
then opens it with ``O_NONBLOCK``), a read with no frame ready raises ``BlockingIOError`` at
once, and :meth:`UsbSource._pump` waits :data:`NO_FRAME_POLL_S` and reads again, checking
between reads whether the source is stopping or stalled.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import av
from av.container import Flags

from streamseg.sources.live import LiveSource, OpenArgs, ReconnectSettings
from streamseg.types import Frame

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.stream import VideoStream

__all__ = ["UsbSource", "UsbSourceSettings", "usb_device_path", "usb_open_args"]

logger = logging.getLogger(__name__)

NO_FRAME_POLL_S = 0.004
"""How long the reader waits after a non-blocking read found no frame ready (at most this much
latency on top of the camera's; a 30 fps camera leaves 33 ms between frames)."""

NONBLOCK_FFLAGS = f"+{Flags.non_block.value}"
"""``fflags`` value that adds ``AVFMT_FLAG_NONBLOCK`` to FFmpeg's defaults (module docstring)."""


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

    Camera options are set only when configured, so the camera keeps its defaults otherwise:
    ``video_size`` = ``WIDTHxHEIGHT``, ``input_format`` (``mjpeg``, ``yuyv422``, ...) and
    ``framerate`` (from ``fps``, which also caps delivery). ``fflags`` always adds the
    non-blocking flag (:data:`NONBLOCK_FFLAGS`), so a read never blocks (module docstring). The
    timeout only bounds the open: V4L2 reads do not consult FFmpeg's interrupt callback.

    Raises:
        ValueError: if only one of width / height is set, or a size or rate is not positive.
    """
    if (cfg.width is None) != (cfg.height is None):
        raise ValueError(
            f"source {cfg.id!r}: width and height go together, got width={cfg.width!r}, "
            f"height={cfg.height!r}"
        )
    options: dict[str, str] = {"fflags": NONBLOCK_FFLAGS}
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

    def _pump(
        self,
        container: InputContainer,
        stream: VideoStream,
        deliver: Callable[[Frame], bool],
        interrupted: Callable[[], bool],
    ) -> bool:
        """Read the camera like :meth:`Source._pump`, through its non-blocking reads.

        A read with no frame ready ends the demux loop with ``BlockingIOError``; the reader then
        waits :data:`NO_FRAME_POLL_S` (or until the source stops) and demuxes again, until the
        stream ends, ``deliver`` stops it, or ``interrupted`` says the source is stopping or
        stalled (the watchdog's flag: the camera has been silent for ``stall_timeout_s``).
        """
        while True:
            try:
                return super()._pump(container, stream, deliver, interrupted)
            except av.error.BlockingIOError:
                if interrupted() or self._stop_event.wait(NO_FRAME_POLL_S) or interrupted():
                    return False

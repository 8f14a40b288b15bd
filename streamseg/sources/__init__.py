"""Video sources: files, RTSP cameras and USB (V4L2) cameras, each read by its own thread.

``build_source(cfg)`` turns one entry of the pipeline's ``sources`` list into a
:class:`Source`; the runtime calls ``start()``, then takes frames with ``get_nowait()`` /
``get(timeout)`` when the notifier fires, and ``stop()`` at shutdown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamseg.redact import redact_url
from streamseg.sources.base import Notifier, Source, SourceStats, StateListener
from streamseg.sources.file import FileSource
from streamseg.sources.live import LiveSource, OpenArgs, backoff_delay
from streamseg.sources.rtsp import RtspSource, rtsp_open_args
from streamseg.sources.usb import UsbSource, usb_open_args

if TYPE_CHECKING:
    from streamseg.config import SourceConfig

__all__ = [
    "FileSource",
    "LiveSource",
    "Notifier",
    "OpenArgs",
    "RtspSource",
    "Source",
    "SourceStats",
    "StateListener",
    "UsbSource",
    "backoff_delay",
    "build_source",
    "redact_url",
    "rtsp_open_args",
    "usb_open_args",
]

_BUILDERS: dict[str, Any] = {"file": FileSource, "rtsp": RtspSource, "usb": UsbSource}


def build_source(cfg: SourceConfig) -> Source:
    """Build the source described by one entry of the pipeline's ``sources`` list.

    Nothing is opened here: the reader connects after ``start()``.

    Args:
        cfg: a ``FileSourceConfig``, ``RtspSourceConfig`` or ``UsbSourceConfig``.

    Raises:
        ValueError: if ``cfg.type`` is not a known source type (the message lists them), or
            the settings cannot be turned into FFmpeg options.
    """
    kind = getattr(cfg, "type", None)
    builder = _BUILDERS.get(kind) if isinstance(kind, str) else None
    if builder is None:
        raise ValueError(
            f"source type must be one of {', '.join(sorted(_BUILDERS))}, got {kind!r} "
            f"(source {getattr(cfg, 'id', '?')!r})"
        )
    source: Source = builder(cfg)
    return source

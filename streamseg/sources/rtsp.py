"""RTSP cameras, read with PyAV (FFmpeg's RTSP client)."""

from __future__ import annotations

import errno
import logging
import random
import socket
import urllib.parse
from typing import Protocol

import av

from streamseg.redact import redact_url
from streamseg.sources.live import LiveSource, OpenArgs, ReconnectSettings

__all__ = ["RtspSource", "RtspSourceSettings", "rtsp_open_args"]

logger = logging.getLogger(__name__)

RTSP_TRANSPORTS = ("tcp", "udp")

# FFmpeg's default probing reads ~5 s of stream before the first frame; 0.1 s is enough for
# one H.264 stream and cuts connect time from ~1.2 s to ~0.25 s (PLATFORM.md).
ANALYZE_DURATION_US = 100_000

STALL_READ_FACTOR = 1.25
"""A blocked read gives up at this many stall timeouts (or the read timeout, if shorter). Not
at exactly one: FFmpeg's RTSP demuxer releases the frame it holds when a read times out, and a
frame arriving as the watchdog is about to fire re-armed it, so a frozen camera was declared
stalled after two stall timeouts instead of one (measured: 4.0 s for stall_timeout_s 2)."""


class RtspSourceSettings(Protocol):
    """The fields of ``streamseg.config.RtspSourceConfig`` this module reads."""

    @property
    def id(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def transport(self) -> str: ...
    @property
    def open_timeout_s(self) -> float: ...
    @property
    def read_timeout_s(self) -> float: ...
    @property
    def stall_timeout_s(self) -> float: ...
    @property
    def reconnect(self) -> ReconnectSettings: ...
    @property
    def fps(self) -> float | None: ...


def rtsp_open_args(cfg: RtspSourceSettings) -> OpenArgs:
    """Build the ``av.open`` arguments for an RTSP source.

    Options: ``rtsp_transport`` (tcp/udp), ``timeout`` (socket I/O timeout in microseconds,
    the longer of ``open_timeout_s`` and ``read_timeout_s``) and a short ``analyzeduration``.
    PyAV's own ``timeout=(open, read)`` bounds every blocking call through FFmpeg's interrupt
    callback; its read part is ``min(read_timeout_s, 1.25 * stall_timeout_s)``: a read
    blocking longer than the stall timeout is a stall, which the watchdog declares on time,
    and the reader can only reconnect once the read returns (see
    :mod:`streamseg.sources.live` and :data:`STALL_READ_FACTOR`).

    Raises:
        ValueError: on a transport other than tcp/udp, a URL that is not rtsp(s)://, or a
            timeout <= 0.
    """
    if cfg.transport not in RTSP_TRANSPORTS:
        raise ValueError(
            f"source {cfg.id!r}: transport must be one of {', '.join(RTSP_TRANSPORTS)}, "
            f"got {cfg.transport!r}"
        )
    if not cfg.url.lower().startswith(("rtsp://", "rtsps://")):
        raise ValueError(
            f"source {cfg.id!r}: url must start with rtsp:// or rtsps://, "
            f"got {redact_url(cfg.url)!r}"
        )
    for name in ("open_timeout_s", "read_timeout_s", "stall_timeout_s"):
        value = getattr(cfg, name)
        if value <= 0:
            raise ValueError(f"source {cfg.id!r}: {name} must be > 0, got {value!r}")
    # FFmpeg's socket timeout also bounds the RTSP handshake: the longer of the two, so that
    # open_timeout_s holds; PyAV's read timeout (below) still bounds every read.
    socket_s = max(cfg.open_timeout_s, cfg.read_timeout_s)
    options = {
        "rtsp_transport": cfg.transport,
        "timeout": str(int(socket_s * 1e6)),
        "analyzeduration": str(ANALYZE_DURATION_US),
    }
    read_s = min(cfg.read_timeout_s, STALL_READ_FACTOR * cfg.stall_timeout_s)
    return OpenArgs(
        file=cfg.url, format=None, options=options, timeout=(cfg.open_timeout_s, read_s)
    )


class RtspSource(LiveSource):
    """An RTSP camera: reconnects on loss, watchdog on silence, newest frame only.

    Args:
        cfg: an ``RtspSourceConfig`` (or anything with its fields).
        rng: random generator for the backoff jitter.
    """

    def __init__(self, cfg: RtspSourceSettings, *, rng: random.Random | None = None) -> None:
        self._open_args = rtsp_open_args(cfg)
        super().__init__(
            cfg.id,
            fps_cap=cfg.fps,
            stall_timeout_s=cfg.stall_timeout_s,
            reconnect=cfg.reconnect,
            rng=rng,
        )
        self.url = cfg.url
        self.transport = cfg.transport

    def open_args(self) -> OpenArgs:
        """The ``av.open`` arguments (see :func:`rtsp_open_args`)."""
        return self._open_args

    @property
    def target(self) -> str:
        """The URL with its password replaced by ``***``."""
        return redact_url(self.url)

    def explain_open_error(self, exc: Exception, elapsed_s: float) -> str | None:
        """Causes FFmpeg's error hides or says tersely (PyAV 18):

        - a refused login (401) or path (403), a path the server does not know (404);
        - a host that accepts the connection and never answers in RTSP: after the timeout
          FFmpeg says ``Invalid data found when processing input``;
        - an unknown host: ``[Errno 5] Input/output error``; the host is looked up here.
        """
        if isinstance(exc, av.error.HTTPUnauthorizedError):
            return (
                "the camera refused the user name or password (401 Unauthorized); check them. "
                "Retries wait reconnect.max_delay_s: cameras may lock an account after "
                "repeated failures"
            )
        if isinstance(exc, av.error.HTTPForbiddenError):
            return (
                "the camera refused access to this path (403 Forbidden); check the user's "
                "rights. Retries wait reconnect.max_delay_s"
            )
        if isinstance(exc, av.error.HTTPNotFoundError):
            path = urllib.parse.urlsplit(self.url).path or "/"
            return (
                f"the server has no stream at path {path!r} (404 Not Found); check the URL's "
                "path against the camera's manual or web page. Some cameras answer 404 for a "
                "while after a reboot, so it is retried with the usual backoff"
            )
        open_timeout_s = self._open_args.timeout[0] if self._open_args.timeout else None
        if open_timeout_s is not None and elapsed_s >= 0.9 * open_timeout_s:
            # The timeout, not the measured time: the same cause must read the same each
            # attempt (a changed reason is logged again, see LiveSource._run).
            return (
                f"no RTSP answer within open_timeout_s ({open_timeout_s:g} s); is it an RTSP "
                "server, on the right port?"
            )
        if getattr(exc, "errno", None) != errno.EIO:
            return None
        host = urllib.parse.urlsplit(self.url).hostname
        if not host:
            return None
        try:
            socket.getaddrinfo(host, None)
        except socket.gaierror as lookup:
            return f"cannot resolve host {host!r} ({lookup.strerror}); check the URL and DNS"
        return None

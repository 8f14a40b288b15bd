"""Video files: every frame in order (default), or paced to the wall clock (``realtime: true``)."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Protocol

import av
import av.error
from av.container import InputContainer
from av.video.stream import VideoStream

from streamseg.sources.base import Source
from streamseg.types import Frame, SourceState

__all__ = ["FileSource", "FileSourceSettings"]

logger = logging.getLogger(__name__)


class FileSourceSettings(Protocol):
    """The fields of ``streamseg.config.FileSourceConfig`` this module reads."""

    @property
    def id(self) -> str: ...
    @property
    def path(self) -> str | os.PathLike[str]: ...
    @property
    def realtime(self) -> bool: ...
    @property
    def queue_size(self) -> int: ...
    @property
    def fps(self) -> float | None: ...


class _Pacer:
    """Holds each frame back until its pts, measured from the first frame, is due on the wall
    clock."""

    def __init__(self) -> None:
        self._origin: tuple[float, float] | None = None  # (monotonic, pts_s) of the first frame

    def wait(self, pts_s: float, stop: threading.Event) -> bool:
        """Sleep until ``pts_s`` is due; False if ``stop`` was set meanwhile."""
        now = time.monotonic()
        if self._origin is None:
            self._origin = (now, pts_s)
            return not stop.is_set()
        due = self._origin[0] + (pts_s - self._origin[1])
        if due > now:
            return not stop.wait(due - now)
        return not stop.is_set()


class FileSource(Source):
    """Reads one video file with PyAV.

    * Default: a bounded FIFO of ``queue_size`` frames; the reader blocks while it is full, so
      every frame (after the fps cap) reaches the consumer. ``live`` is False.
    * ``realtime: true``: frames are released at the pace of their pts and go through the
      latest-frame mailbox like a camera's; frames the consumer misses are dropped and counted.
      ``live`` is True.

    States: ``connecting`` (opening) -> ``streaming`` -> ``ended`` at the end of the file.
    Only a file that cannot be opened (missing, not a video, no video stream) or from which
    not one frame decodes (truncated after its header) ends ``failed``; corrupt packets inside
    are counted and skipped.

    Args:
        cfg: a ``FileSourceConfig`` (or anything with its fields).
        max_consecutive_demux_errors: demuxer errors in a row, with no good packet between
            them, after which the rest of the file is given up as unreadable (state ``ended``,
            ``last_error`` set).
    """

    def __init__(self, cfg: FileSourceSettings, *, max_consecutive_demux_errors: int = 20) -> None:
        super().__init__(cfg.id, live=cfg.realtime, fps_cap=cfg.fps, queue_size=cfg.queue_size)
        if max_consecutive_demux_errors < 1:
            raise ValueError(
                f"max_consecutive_demux_errors must be >= 1, got {max_consecutive_demux_errors!r}"
            )
        # Kept as given: the config allows any path or URL PyAV opens, and Path() would
        # collapse the "//" of a URL.
        self.path = os.fspath(cfg.path)
        self.realtime = cfg.realtime
        self._max_demux_errors = max_consecutive_demux_errors

    def _run(self) -> None:
        try:
            container = av.open(self.path)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            self._record_error(f"cannot open video file {self.path}: {type(exc).__name__}: {exc}")
            self._transition(SourceState.FAILED, f"cannot open video file {self.path}")
            return
        try:
            if not container.streams.video:
                kinds = ", ".join(s.type for s in container.streams) or "none"
                self._record_error(f"expected a video stream in {self.path}, found: {kinds}")
                self._transition(SourceState.FAILED, f"no video stream in {self.path}")
                return
            stream = container.streams.video[0]
            # Frame threading: files are about throughput, not latency.
            stream.thread_type = "AUTO"
            self._set_stream_info(stream)
            self._transition(
                SourceState.STREAMING,
                f"opened {self.path} ({stream.codec_context.name}, "
                f"{stream.codec_context.width}x{stream.codec_context.height})",
            )
            reason = self._read_all(container, stream)
            if reason != "stopped" and self.stats().frames_decoded == 0:
                # Opened, but nothing in it decodes (truncated after its header, all damaged):
                # an input problem to report, not a short file.
                self._record_error(f"no frame could be decoded from {self.path} ({reason})")
                self._transition(SourceState.FAILED, f"no frame decoded from {self.path}")
                return
            if reason == "end of file":
                cut = self._cut_short(container, stream)
                if cut is not None:
                    # The frames read are analysed; the operator learns the rest is missing.
                    self._record_error(cut)
                    logger.warning("source %s: %s", self.stream_id, cut)
            stopped = reason == "stopped"
            self._transition(SourceState.STOPPED if stopped else SourceState.ENDED, reason)
        finally:
            container.close()

    def _cut_short(self, container: InputContainer, stream: VideoStream) -> str | None:
        """Why a file that read to its end looks truncated: its last frame comes well before
        the end its header declares (a copy cut off, a recording whose writer died). None when
        it does not, or the file declares no duration (raw H.264)."""
        last = self._last_raw_pts_s
        if last is None:
            return None
        if stream.duration is not None and stream.time_base is not None:
            start = stream.start_time * stream.time_base if stream.start_time is not None else 0
            declared = float(start + stream.duration * stream.time_base)
        elif container.duration is not None:
            start_us = container.start_time if container.start_time is not None else 0
            declared = (start_us + container.duration) / 1e6
        else:
            return None
        rate = self.stats().nominal_fps or 25.0
        # The last frame starts one interval before the end; allow two, or 2 % of a long file.
        if last + max(2.0 / rate, 0.02 * declared) >= declared:
            return None
        return (
            f"{self.path} ended at {last:.1f} s of the {declared:.1f} s its header declares: "
            "truncated or damaged? The frames before that were analysed"
        )

    def _read_all(self, container: InputContainer, stream: VideoStream) -> str:
        """Decode to the end; returns why reading ended."""
        pacer = _Pacer() if self.realtime else None

        def deliver(frame: Frame) -> bool:
            if pacer is not None and not pacer.wait(frame.pts_s, self._stop_event):
                return False
            return self._publish(frame)

        demux_errors = 0
        while True:
            decoded_before = self.stats().frames_decoded
            try:
                finished = self._pump(container, stream, deliver, lambda: self._stopping)
            except av.error.FFmpegError as exc:
                # The demuxer hit damage; reading resumes with the next packet it can parse.
                progressed = self.stats().frames_decoded > decoded_before
                demux_errors = 1 if progressed else demux_errors + 1
                self._packet_problem("demuxer error, skipping", exc, corrupt=True)
                if demux_errors >= self._max_demux_errors:
                    message = (
                        f"gave up on {self.path} after {demux_errors} demuxer errors in a row: "
                        f"{type(exc).__name__}: {exc}"
                    )
                    self._record_error(message)
                    return message
                continue
            if not finished:
                return "stopped"
            return "end of file"

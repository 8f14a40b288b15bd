"""The source contract the runtime codes against, and the machinery every source shares.

A source owns one reader thread that demuxes and decodes with PyAV and hands
:class:`~streamseg.types.Frame` objects to the consumer through a buffer:

* files: a bounded FIFO; the reader blocks when it is full, so no frame is ever dropped;
* live sources (RTSP, USB, files with ``realtime: true``): a latest-frame mailbox; a frame the
  consumer did not take before the next one arrived is dropped and counted, so latency never
  builds up behind a slow pipeline.

Subclasses implement :meth:`Source._run` (the body of the reader thread) and use
:meth:`Source._pump` to decode, :meth:`Source._transition` to change state and
:meth:`Source._record_error` to report problems.

Frames come upright, as a player shows them: a display rotation in the stream (a phone's
portrait video is stored landscape with a 90 degree display matrix) is applied to the image
(:func:`quarter_turns`), as the ffmpeg command line does by default, so zones drawn on the picture
an operator sees land where they meant.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import av
import av.error
import numpy as np
import numpy.typing as npt
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from streamseg.redact import redact_url
from streamseg.sources._buffer import FrameBuffer
from streamseg.sources.timing import FpsCap, PtsClock, RateMeter
from streamseg.types import Frame, SourceState

ImageU8 = npt.NDArray[np.uint8]


def quarter_turns(rotation: float) -> int:
    """Counter-clockwise quarter turns that make a frame upright (0 to 3).

    Args:
        rotation: ``VideoFrame.rotation``, the stream's display matrix in degrees
            counter-clockwise (``np.rot90(image, quarter_turns(r))`` was checked against
            ``ffmpeg``'s autorotation for 90, -90 and 180).

    Returns:
        ``rotation / 90`` modulo 4; 0 for an angle that is not a multiple of 90 (not applied,
        see ``Source._log_rotation``).
    """
    if rotation % 90 != 0:
        return 0
    return round(rotation / 90) % 4


__all__ = ["Notifier", "Source", "SourceStats", "StateListener"]

logger = logging.getLogger(__name__)

TROUBLE_STATES = frozenset({SourceState.STALLED, SourceState.RECONNECTING, SourceState.FAILED})
"""States whose transitions are logged at WARNING: a camera going away must show at
``--log-level warning``, where a run otherwise prints nothing until its end table."""

Notifier = Callable[[], None]
"""Called with no arguments after each new frame and each state change."""

StateListener = Callable[[str, SourceState, SourceState], None]
"""Called as ``fn(stream_id, old_state, new_state)`` on each state change."""


@dataclass(frozen=True, slots=True)
class SourceStats:
    """A snapshot of one source's counters.

    Attributes:
        frames_decoded: frames that came out of the decoder.
        frames_delivered: frames the consumer took with ``get`` / ``get_nowait``.
        frames_dropped: live sources only: frames overwritten in the mailbox before the consumer
            took them (it had no time for them). Always 0 for non-realtime files.
        frames_skipped_fps: frames removed by the fps cap (live and files): left out by
            design, so not among ``frames_dropped`` (an alert on drops must not fire for
            every capped camera). ``frames_decoded = frames_delivered + frames_dropped +
            frames_skipped_fps`` (+ the frames still waiting).
        frames_missing: frames the stream's timestamps skip (a gap of ``k`` frame intervals
            counts ``k - 1``): lost in transit or damaged data the demuxer resynchronised over
            without an error. A variable-rate stream's slow stretches count too.
        corrupt_packets: packets the demuxer or decoder rejected as invalid data (skipped).
        decode_errors: other decoder errors on a single packet (skipped).
        reconnects: reconnect attempts made after a connection was lost or failed (live only).
        state: the state when the snapshot was taken.
        last_error: the most recent problem, passwords redacted; None if there was none.
        frames_since_error: frames decoded after ``last_error`` (a camera that came back after
            it shows > 0).
        fps: decoded frames per second over the last few seconds of wall time.
        nominal_fps: the frame rate the stream declares, None if it declares none.
        resolution_wh: (width, height) of the last decoded frame, None before the first.
        stopped_in: the state the source was in when it was stopped (``connecting``,
            ``streaming``, ``stalled``, ``reconnecting``); None while it runs, and when it
            ended or failed by itself. ``state`` says ``stopped`` either way.
    """

    frames_decoded: int
    frames_delivered: int
    frames_dropped: int
    frames_skipped_fps: int
    frames_missing: int
    corrupt_packets: int
    decode_errors: int
    reconnects: int
    state: SourceState
    last_error: str | None
    fps: float
    nominal_fps: float | None
    resolution_wh: tuple[int, int] | None
    stopped_in: SourceState | None = None
    frames_since_error: int = 0


def stream_rate(stream: VideoStream) -> float | None:
    """The frame rate a video stream declares in Hz, or None.

    ``guessed_rate`` comes first: for raw H.264 the demuxer's ``average_rate`` is a 25 fps
    placeholder while ``guessed_rate`` reads the codec's own timing.
    """
    for rate in (stream.guessed_rate, stream.average_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return float(rate)
    return None


class Source(abc.ABC):
    """One video source: a reader thread, a state, counters and a frame buffer.

    Attributes:
        stream_id: the source's id in the pipeline file; it tags every frame and log line.
        live: True for RTSP / USB and for files read in real time; live sources keep only the
            newest frame.

    Args:
        stream_id: the source's id.
        live: use the latest-frame mailbox (True) or a blocking FIFO (False).
        fps_cap: deliver at most this many frames per second of stream time; None for all.
        queue_size: capacity of the FIFO when ``live`` is False (ignored when live).
    """

    stream_id: str
    live: bool

    def __init__(
        self,
        stream_id: str,
        *,
        live: bool,
        fps_cap: float | None = None,
        queue_size: int = 8,
    ) -> None:
        if not stream_id:
            raise ValueError("stream_id must be a non-empty string, got ''")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size!r}")
        self.stream_id = stream_id
        self.live = live
        self._buffer = FrameBuffer(1 if live else queue_size, overwrite=live)
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        # Serialises state changes and their listener calls, so listeners see transitions in
        # order. Readers of the state (state, exhausted) never take it: the runtime may call them
        # while holding its own Condition, which a notifier called under this lock acquires.
        self._transition_lock = threading.RLock()
        self._state = SourceState.CONNECTING
        self._notifier: Notifier | None = None
        self._listeners: list[StateListener] = []

        self._stats_lock = threading.Lock()
        self._frames_decoded = 0
        self._frames_delivered = 0
        self._frames_dropped = 0
        self._frames_skipped_fps = 0
        self._frames_missing = 0
        self._corrupt_packets = 0
        self._decode_errors = 0
        self._reconnects = 0
        self._last_error: str | None = None
        self._decoded_at_error = 0
        """``frames_decoded`` when ``last_error`` was set (``frames_since_error`` derives)."""
        self._nominal_fps: float | None = None
        self._resolution_wh: tuple[int, int] | None = None
        self._rate_meter = RateMeter()
        self._stopped_in: SourceState | None = None

        # Touched by the reader thread only.
        self._pts_clock = PtsClock()
        self._fps_cap = FpsCap(fps_cap)
        self._next_index = 0
        self._last_raw_pts_s: float | None = None
        """The container timestamp of the last decoded frame (a file's truncation check)."""
        self._session_problem_logged = False
        self._session_gap_logged = False
        self._rotation_logged: float | None = None

    # ------------------------------------------------------------------ public API

    def start(self) -> None:
        """Start the reader thread (a daemon) and return at once.

        Raises:
            RuntimeError: if the source was already started.
        """
        if self._thread is not None:
            raise RuntimeError(f"source {self.stream_id!r} was already started")
        self._thread = threading.Thread(
            target=self._thread_main, name=f"source-{self.stream_id}", daemon=True
        )
        self._thread.start()

    def get_nowait(self) -> Frame | None:
        """The next frame, or None if none is ready (live: the newest frame only)."""
        frame = self._buffer.get_nowait()
        if frame is not None:
            self._count_delivered()
        return frame

    def get(self, timeout: float) -> Frame | None:
        """The next frame, waiting up to ``timeout`` seconds.

        Returns None on timeout, and at once when the source has ended and nothing is left.
        """
        frame = self._buffer.get(timeout)
        if frame is not None:
            self._count_delivered()
        return frame

    def set_notifier(self, fn: Notifier | None) -> None:
        """Set the function called (from the reader thread) after each frame and state change.

        The runtime passes one function for all its sources (it notifies a shared Condition).
        It must be quick and must not raise; exceptions are logged and ignored.
        """
        self._notifier = fn

    def add_state_listener(self, fn: StateListener) -> None:
        """Add ``fn(stream_id, old, new)``, called on each state change in order."""
        with self._transition_lock:
            self._listeners.append(fn)

    @property
    def state(self) -> SourceState:
        """The current state."""
        return self._state

    @property
    def exhausted(self) -> bool:
        """True when the source is in a terminal state and every frame has been taken."""
        return self._state.terminal and len(self._buffer) == 0

    def stats(self) -> SourceStats:
        """A consistent snapshot of the counters."""
        with self._stats_lock:
            return SourceStats(
                frames_decoded=self._frames_decoded,
                frames_delivered=self._frames_delivered,
                frames_dropped=self._frames_dropped,
                frames_skipped_fps=self._frames_skipped_fps,
                frames_missing=self._frames_missing,
                corrupt_packets=self._corrupt_packets,
                decode_errors=self._decode_errors,
                reconnects=self._reconnects,
                state=self._state,
                last_error=self._last_error,
                frames_since_error=self._frames_decoded - self._decoded_at_error,
                fps=self._rate_meter.rate(time.monotonic()),
                nominal_fps=self._nominal_fps,
                resolution_wh=self._resolution_wh,
                stopped_in=self._stopped_in,
            )

    def request_stop(self) -> None:
        """Ask the reader to stop and return at once (idempotent); :meth:`stop` also joins.

        A pipeline asks every source first, then joins them: a reader blocked opening a hung
        camera holds up only its own join, not the stop of the sources after it.
        """
        self._stop_event.set()
        self._buffer.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the reader to stop, then join its threads for up to ``timeout`` seconds in all.

        The reader closes its own container: FFmpeg contexts are not thread-safe, and closing one
        while the reader is inside ``av_read_frame`` would free memory the read is using. A
        blocked read returns within the source's read timeout (see the subclasses), so the join
        normally finishes well inside ``timeout``; if not, a warning is logged and the daemon
        thread ends on its own shortly after.
        """
        self.request_stop()
        deadline = time.monotonic() + timeout
        for thread in self._threads():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                logger.warning(
                    "source %s: thread %s still running %.1f s after stop; it is a daemon "
                    "and ends after its current read times out",
                    self.stream_id,
                    thread.name,
                    timeout,
                )
        if self._thread is None:
            self._transition(SourceState.STOPPED, "stopped before start")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.stream_id!r} {self._state.value}>"

    # ------------------------------------------------------------------ for subclasses

    @abc.abstractmethod
    def _run(self) -> None:
        """Body of the reader thread: open, decode, deliver, until the end or ``_stopping``.

        It should leave the source in a terminal state; if it returns without doing so, the
        thread moves it to ``ended``. Exceptions are caught by the thread, logged and turn the
        source ``failed``.
        """

    def _threads(self) -> list[threading.Thread]:
        """Threads joined by :meth:`stop`; subclasses with more threads extend it."""
        return [self._thread] if self._thread is not None else []

    @property
    def _stopping(self) -> bool:
        return self._stop_event.is_set()

    def _transition(self, new: SourceState, reason: str = "") -> bool:
        """Move to ``new``, log it, tell listeners and the notifier.

        Trouble (:data:`TROUBLE_STATES`: stalled, reconnecting, failed) is logged at WARNING,
        so that ``--log-level warning`` still shows a camera going away; the other changes at
        INFO. A terminal state is final: later transitions are ignored. Returns True if the
        state changed.
        """
        with self._transition_lock:
            old = self._state
            if old == new or old.terminal:
                return False
            self._state = new
            level = logging.WARNING if new in TROUBLE_STATES else logging.INFO
            if reason:
                logger.log(
                    level,
                    "source %s: %s -> %s (%s)",
                    self.stream_id,
                    old.value,
                    new.value,
                    redact_url(reason),
                )
            else:
                logger.log(level, "source %s: %s -> %s", self.stream_id, old.value, new.value)
            if new.terminal:
                self._buffer.close()
            for listener in list(self._listeners):
                try:
                    listener(self.stream_id, old, new)
                except Exception:
                    logger.exception(
                        "source %s: state listener %r raised", self.stream_id, listener
                    )
            self._notify()
            return True

    def _record_error(self, message: str) -> None:
        """Set ``last_error`` (passwords redacted)."""
        with self._stats_lock:
            self._last_error = redact_url(message)
            self._decoded_at_error = self._frames_decoded

    def _count_reconnect(self) -> None:
        with self._stats_lock:
            self._reconnects += 1

    def _set_stream_info(self, stream: VideoStream) -> None:
        """Record the declared frame rate of a freshly opened stream."""
        with self._stats_lock:
            self._nominal_fps = stream_rate(stream)

    def _frame_arrived(self, now: float) -> None:  # noqa: B027  (optional hook, no-op default)
        """Hook called for every decoded frame (before the fps cap); ``now`` is monotonic."""

    def _pump(
        self,
        container: InputContainer,
        stream: VideoStream,
        deliver: Callable[[Frame], bool],
        interrupted: Callable[[], bool],
    ) -> bool:
        """Demux ``stream`` and decode it packet by packet, handing frames to ``deliver``.

        A packet the decoder rejects is counted (``corrupt_packets`` for invalid data,
        ``decode_errors`` otherwise) and skipped, so one bad packet costs at most the frames
        that depend on it. Errors of the demuxer itself propagate to the caller, which knows
        whether they mean "skip" (file) or "disconnected" (live).

        Args:
            container: an open input container.
            stream: the video stream to read.
            deliver: takes each admitted frame; returns False to stop reading.
            interrupted: checked before each packet; True stops reading.

        Returns:
            True at the end of the stream, False when ``interrupted`` or ``deliver`` stopped it.
        """
        rate = stream_rate(stream)
        fallback_time_base = stream.time_base
        for packet in container.demux(stream):
            if interrupted():
                return False
            try:
                av_frames = packet.decode()
            except av.error.InvalidDataError as exc:
                self._packet_problem("corrupt packet skipped", exc, corrupt=True)
                continue
            except av.error.FFmpegError as exc:
                self._packet_problem("decode error, packet skipped", exc, corrupt=False)
                continue
            for av_frame in av_frames:
                frame = self._make_frame(av_frame, rate, fallback_time_base)
                if frame is not None and not deliver(frame):
                    return False
        return True

    def _packet_problem(self, what: str, exc: Exception, *, corrupt: bool) -> None:
        message = f"{what}: {type(exc).__name__}: {redact_url(str(exc))}"
        with self._stats_lock:
            if corrupt:
                self._corrupt_packets += 1
            else:
                self._decode_errors += 1
            self._last_error = message
            self._decoded_at_error = self._frames_decoded
        # One warning per session is enough to notice; the counters carry the rest.
        if not self._session_problem_logged:
            self._session_problem_logged = True
            logger.warning("source %s: %s (further ones logged at DEBUG)", self.stream_id, message)
        else:
            logger.debug("source %s: %s", self.stream_id, message)

    def _frames_went_missing(self, count: int, pts_s: float) -> None:
        with self._stats_lock:
            self._frames_missing += count
        # Like packet problems: one warning per session, the counter carries the rest.
        if not self._session_gap_logged:
            self._session_gap_logged = True
            logger.warning(
                "source %s: %d frame(s) missing before %.3f s, by the timestamps (lost or "
                "damaged data; further gaps counted in frames_missing, logged at DEBUG)",
                self.stream_id,
                count,
                pts_s,
            )
        else:
            logger.debug(
                "source %s: %d frame(s) missing before %.3f s", self.stream_id, count, pts_s
            )

    def _make_frame(
        self, av_frame: VideoFrame, rate: float | None, fallback_time_base: Fraction | None
    ) -> Frame | None:
        """Stamp, count and cap one decoded frame; convert it to BGR if it is admitted."""
        now_mono = time.monotonic()
        now_wall = time.time()
        time_base = av_frame.time_base if av_frame.time_base is not None else fallback_time_base
        raw_pts_s = (
            float(av_frame.pts * time_base)
            if av_frame.pts is not None and time_base is not None
            else None
        )
        if raw_pts_s is not None:
            self._last_raw_pts_s = raw_pts_s
        pts_s = self._pts_clock.stamp(raw_pts_s, rate, now_mono)
        if self._pts_clock.last_gap_frames:
            self._frames_went_missing(self._pts_clock.last_gap_frames, pts_s)
        self._frame_arrived(now_mono)
        admitted = self._fps_cap.admit(pts_s)
        rotation = float(av_frame.rotation or 0)
        if rotation != self._rotation_logged:
            self._log_rotation(rotation)
        turns = quarter_turns(rotation)
        size_wh = (
            (av_frame.height, av_frame.width) if turns % 2 else (av_frame.width, av_frame.height)
        )
        with self._stats_lock:
            self._frames_decoded += 1
            self._rate_meter.add(now_mono)
            self._resolution_wh = size_wh
            if not admitted:  # left out by design: counted apart, not as dropped
                self._frames_skipped_fps += 1
        if not admitted:
            return None
        image: ImageU8 = av_frame.to_ndarray(format="bgr24")  # type: ignore[assignment]
        if turns:
            image = np.ascontiguousarray(np.rot90(image, turns))
        frame = Frame(
            stream_id=self.stream_id,
            index=self._next_index,
            pts_s=pts_s,
            wall_time=now_wall,
            image=image,
        )
        self._next_index += 1
        return frame

    def _log_rotation(self, rotation: float) -> None:
        """Say once per change what is done with the stream's display rotation."""
        self._rotation_logged = rotation
        if rotation % 90 != 0:
            logger.warning(
                "source %s: the stream asks for a %.1f degree display rotation; only multiples "
                "of 90 are applied, so frames come as stored",
                self.stream_id,
                rotation,
            )
        elif rotation != 0:
            logger.info(
                "source %s: frames turned %.0f degrees counter-clockwise, as the stream's display "
                "matrix says (as players show them)",
                self.stream_id,
                rotation,
            )

    def _publish(self, frame: Frame) -> bool:
        """Put a frame in the buffer (blocking for files) and notify; False once stopping."""
        accepted, dropped = self._buffer.put(frame, self._stop_event)
        if dropped:
            with self._stats_lock:
                self._frames_dropped += dropped
        if accepted:
            self._notify()
        return accepted

    # ------------------------------------------------------------------ internals

    def _thread_main(self) -> None:
        try:
            self._run()
        except Exception as exc:
            logger.exception("source %s: reader crashed", self.stream_id)
            self._record_error(f"reader crashed: {type(exc).__name__}: {exc}")
            self._transition(SourceState.FAILED, f"reader crashed: {type(exc).__name__}")
        finally:
            if not self._state.terminal:
                if self._stopping:
                    with self._stats_lock:
                        self._stopped_in = self._state
                    self._transition(SourceState.STOPPED, "stopped")
                else:
                    self._transition(SourceState.ENDED, "reader ended")

    def _notify(self) -> None:
        fn = self._notifier
        if fn is None:
            return
        try:
            fn()
        except Exception:
            logger.exception("source %s: notifier %r raised", self.stream_id, fn)

    def _count_delivered(self) -> None:
        with self._stats_lock:
            self._frames_delivered += 1

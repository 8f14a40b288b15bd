"""What RTSP and USB sources share: connect, reconnect with backoff, and the stall watchdog.

States of a live source::

    connecting --first frame--> streaming --lost / error--> reconnecting --first frame--> streaming
        |                          |                            |
        | cannot connect           | no frame for stall_timeout | max_attempts used up
        v                          v                            v
    reconnecting                stalled --> reconnecting      failed

The reader keeps decoding into the latest-frame mailbox whatever the consumer does, so a slow
pipeline shows up as ``frames_dropped``, never as a stall. Only the camera going quiet while
connected makes the source ``stalled``.

Unblocking a hung read: FFmpeg contexts are not thread-safe, and closing the container from
another thread while the reader sits in ``av_read_frame`` would free memory that call is using.
So the watchdog does not close the container. It marks the source ``stalled`` and raises a flag;
the reader checks the flag between packets, and every blocking read is bounded by PyAV's
interrupt callback (the read timeout, capped at ``stall_timeout_s``), so the reader returns,
closes the container itself and reconnects within ``min(read_timeout_s, stall_timeout_s)``
of the stall.
"""

from __future__ import annotations

import abc
import logging
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import av
import av.error

from streamseg.redact import redact_url
from streamseg.sources.base import Source
from streamseg.types import Frame, SourceState

__all__ = ["LiveSource", "OpenArgs", "ReconnectSettings", "backoff_delay"]

logger = logging.getLogger(__name__)

REFUSALS = (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError)
"""Errors of a server that answered and refused access (401, 403): retried at
``reconnect.max_delay_s`` only, not in the fast backoff of a lost connection."""


class ReconnectSettings(Protocol):
    """The fields of ``streamseg.config.ReconnectConfig`` this module reads."""

    @property
    def initial_delay_s(self) -> float: ...
    @property
    def max_delay_s(self) -> float: ...
    @property
    def max_attempts(self) -> int | None: ...


@dataclass(frozen=True)
class OpenArgs:
    """Arguments for ``av.open`` of one live source.

    Attributes:
        file: URL or device path. It may hold a password: log ``redact_url(file)`` only.
        format: demuxer name (``"v4l2"``), or None to let FFmpeg probe.
        options: FFmpeg options for the container.
        timeout: ``(open_timeout_s, read_timeout_s)`` for PyAV's interrupt callback.
    """

    file: str = field(repr=False)  # may hold a password
    format: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    timeout: tuple[float, float] | None = None


def backoff_delay(
    attempt: int,
    initial_s: float,
    max_s: float,
    jitter: float = 0.1,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before reconnect attempt ``attempt``.

    ``initial_s * 2 ** (attempt - 1)``, capped at ``max_s``, times a random factor in
    ``[1 - jitter, 1 + jitter]`` so that cameras dropped together do not retry in lockstep.

    Args:
        attempt: 1 for the first attempt after a loss, 2 for the next, ...
        initial_s: delay before the first attempt, > 0.
        max_s: cap on the delay before jitter, >= initial_s.
        jitter: relative spread of the random factor, in [0, 1).
        rng: random generator; a fresh one when None.

    Raises:
        ValueError: if an argument is out of range (the message names it and its value).
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt!r}")
    if initial_s <= 0:
        raise ValueError(f"initial_s must be > 0, got {initial_s!r}")
    if max_s < initial_s:
        raise ValueError(f"max_s must be >= initial_s ({initial_s!r}), got {max_s!r}")
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter must be in [0, 1), got {jitter!r}")
    # Cap the exponent first: 2 ** 10_000 overflows a float.
    base = min(max_s, initial_s * 2.0 ** min(attempt - 1, 64))
    factor = (rng or random.Random()).uniform(1.0 - jitter, 1.0 + jitter)
    return base * factor


class LiveSource(Source):
    """A camera-like source: mailbox of one, reconnects with capped backoff, stall watchdog.

    Subclasses say how to open the stream (:meth:`open_args`) and how to name it in logs
    (:attr:`target`).

    ``reconnects`` counts reconnect attempts. ``max_attempts`` bounds the attempts in a row
    without a single frame between them: after a connection that streamed, the count starts
    again; ``None`` retries forever; 0 never reconnects.

    Args:
        stream_id: the source's id.
        fps_cap: deliver at most this many frames per second of stream time; None for all.
        stall_timeout_s: no frame for this long while connected -> ``stalled``, reconnect.
        reconnect: backoff settings.
        watchdog_interval_s: how often the watchdog looks; default ``stall_timeout_s / 10``
            capped to [0.05, 0.5] s.
        backoff_jitter: relative jitter of the reconnect delay.
        rng: random generator for the jitter (tests pass a seeded one).
    """

    def __init__(
        self,
        stream_id: str,
        *,
        fps_cap: float | None,
        stall_timeout_s: float,
        reconnect: ReconnectSettings,
        watchdog_interval_s: float | None = None,
        backoff_jitter: float = 0.1,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(stream_id, live=True, fps_cap=fps_cap)
        if stall_timeout_s <= 0:
            raise ValueError(f"stall_timeout_s must be > 0, got {stall_timeout_s!r}")
        if reconnect.max_attempts is not None and reconnect.max_attempts < 0:
            raise ValueError(
                f"reconnect.max_attempts must be >= 0 or None, got {reconnect.max_attempts!r}"
            )
        # Validate the backoff settings now rather than on the first disconnect.
        backoff_delay(1, reconnect.initial_delay_s, reconnect.max_delay_s, backoff_jitter)
        self.stall_timeout_s = stall_timeout_s
        self._initial_delay_s = reconnect.initial_delay_s
        self._max_delay_s = reconnect.max_delay_s
        self._max_attempts = reconnect.max_attempts
        self._jitter = backoff_jitter
        self._rng = rng or random.Random()
        self._watchdog_interval_s = (
            watchdog_interval_s
            if watchdog_interval_s is not None
            else min(0.5, max(0.05, stall_timeout_s / 10))
        )
        self._watchdog: threading.Thread | None = None
        # Watchdog state; changed under _transition_lock.
        self._armed = False
        self._last_frame_mono = 0.0
        self._stall_flag = threading.Event()
        self._refused = False
        """The last connection attempt was refused access (:data:`REFUSALS`)."""

    # ------------------------------------------------------------------ for subclasses

    @abc.abstractmethod
    def open_args(self) -> OpenArgs:
        """The arguments of ``av.open`` for one connection attempt."""

    @property
    @abc.abstractmethod
    def target(self) -> str:
        """What this source reads, fit for logs (no passwords)."""

    def explain_open_error(self, exc: Exception, elapsed_s: float) -> str | None:
        """Say in plain words why opening failed, where FFmpeg's error says too little (an
        unknown host is ``[Errno 5] Input/output error``); None keeps FFmpeg's own message.

        Args:
            exc: what ``av.open`` raised.
            elapsed_s: how long the attempt took.
        """
        return None

    # ------------------------------------------------------------------ Source

    def start(self) -> None:
        """Start the reader thread and the stall watchdog (both daemons); return at once."""
        super().start()
        self._watchdog = threading.Thread(
            target=self._watchdog_main, name=f"source-{self.stream_id}-watchdog", daemon=True
        )
        self._watchdog.start()

    def _threads(self) -> list[threading.Thread]:
        threads = super()._threads()
        if self._watchdog is not None:
            threads.append(self._watchdog)
        return threads

    def _frame_arrived(self, now: float) -> None:
        self._last_frame_mono = now

    def _run(self) -> None:
        failures = 0  # reconnect attempts in a row without a frame
        said = ""  # the reason the log last gave for reconnecting
        while True:
            streamed, reason = self._session()
            if self._stopping:
                return
            self._record_error(reason)
            if streamed:
                failures = 0
                said = ""
            if self._max_attempts is not None and failures >= self._max_attempts:
                self._transition(
                    SourceState.FAILED,
                    f"gave up after {failures} reconnect attempt(s) in a row; last: {reason}",
                )
                return
            failures += 1
            refused = self._refused
            if not self._transition(SourceState.RECONNECTING, reason) and reason != said:
                # Still reconnecting, for a new reason (the camera came back with a 404, or
                # refuses the password): an operator reading the log must see it now.
                logger.warning(
                    "source %s: still reconnecting, now: %s", self.stream_id, redact_url(reason)
                )
            said = reason
            # A refused login is retried at the longest delay only: many cameras lock the
            # account after a few failures in a row.
            delay = backoff_delay(
                failures,
                self._max_delay_s if refused else self._initial_delay_s,
                self._max_delay_s,
                self._jitter,
                self._rng,
            )
            logger.info(
                "source %s: reconnect attempt %d to %s in %.2f s",
                self.stream_id,
                failures,
                self.target,
                delay,
            )
            if self._stop_event.wait(delay):
                return
            self._count_reconnect()

    # ------------------------------------------------------------------ internals

    def _session(self) -> tuple[bool, str]:
        """One connection: open, decode until it ends. Returns (delivered a frame?, why it
        ended)."""
        self._stall_flag.clear()
        self._refused = False
        self._session_problem_logged = False
        self._session_gap_logged = False
        self._pts_clock.new_segment()
        streamed = False
        connected = False
        container = None
        started = time.monotonic()
        try:
            args = self.open_args()
            container = av.open(
                args.file,
                format=args.format,
                options=dict(args.options),
                timeout=args.timeout,
            )
            if not container.streams.video:
                kinds = ", ".join(s.type for s in container.streams) or "none"
                return False, f"expected a video stream from {self.target}, found: {kinds}"
            stream = container.streams.video[0]
            self._set_stream_info(stream)
            connected = True
            logger.info(
                "source %s: connected to %s in %.2f s (%s %dx%d)",
                self.stream_id,
                self.target,
                time.monotonic() - started,
                stream.codec_context.name,
                stream.codec_context.width,
                stream.codec_context.height,
            )
            self._arm_watchdog()

            def deliver(frame: Frame) -> bool:
                nonlocal streamed
                if not streamed:
                    streamed = True
                    self._transition(SourceState.STREAMING, f"receiving from {self.target}")
                return self._publish(frame)

            self._pump(
                container,
                stream,
                deliver,
                lambda: self._stopping or self._stall_flag.is_set(),
            )
            if self._stopping:
                return streamed, "stopped"
            if self._stall_flag.is_set():
                return streamed, self._stall_reason()
            # A server that goes away often just ends the demux loop, with no exception.
            return streamed, f"stream from {self.target} ended (connection closed)"
        except (av.error.FFmpegError, OSError) as exc:
            # A read that timed out after stall_timeout of silence is a stall, whichever of the
            # watchdog and the reader noticed first.
            if self._stall_flag.is_set() or (connected and self._check_stall()):
                return streamed, self._stall_reason()
            what = "connection lost to" if connected else "cannot connect to"
            self._refused = isinstance(exc, REFUSALS)
            elapsed = time.monotonic() - started
            detail = None if connected else self.explain_open_error(exc, elapsed)
            if detail is None:
                detail = f"{type(exc).__name__}: {redact_url(str(exc))}"
            return streamed, f"{what} {self.target}: {detail}"
        except Exception as exc:
            # Never let a surprise kill the reader: log it, reconnect.
            logger.exception("source %s: unexpected error reading %s", self.stream_id, self.target)
            return streamed, f"unexpected error reading {self.target}: {type(exc).__name__}: {exc}"
        finally:
            self._disarm_watchdog()
            if container is not None:
                try:
                    container.close()
                except Exception:
                    logger.debug(
                        "source %s: error closing container", self.stream_id, exc_info=True
                    )

    def _stall_reason(self) -> str:
        return (
            f"no frame from {self.target} for {self.stall_timeout_s:g} s while connected "
            "(stall_timeout_s)"
        )

    def _arm_watchdog(self) -> None:
        with self._transition_lock:
            self._last_frame_mono = time.monotonic()
            self._armed = True

    def _disarm_watchdog(self) -> None:
        with self._transition_lock:
            self._armed = False

    def _check_stall(self) -> bool:
        """Mark the source ``stalled`` if connected and silent for ``stall_timeout_s``.

        Returns True if the source is (now) flagged as stalled.
        """
        with self._transition_lock:
            if self._stall_flag.is_set():
                return True
            if not self._armed:
                return False
            if time.monotonic() - self._last_frame_mono < self.stall_timeout_s:
                return False
            self._stall_flag.set()
            reason = self._stall_reason()
            self._record_error(reason)
            self._transition(SourceState.STALLED, reason)
            return True

    def _watchdog_main(self) -> None:
        while not self._stop_event.wait(self._watchdog_interval_s):
            if self._state.terminal:
                return
            try:
                self._check_stall()
            except Exception:
                logger.exception("source %s: stall watchdog error", self.stream_id)

"""Small clocks used by every source: monotonic pts, the fps cap and the measured frame rate."""

from __future__ import annotations

import collections
import logging

__all__ = ["FpsCap", "PtsClock", "RateMeter"]

logger = logging.getLogger(__name__)


class PtsClock:
    """Turns decoder timestamps into a strictly increasing ``pts_s`` for one stream.

    Rules, in order:

    * The first segment (the file, or the first connection of a live source) keeps the
      stream's own clock: ``pts_s = frame.pts * frame.time_base``, so file timestamps match
      the file (0, 1/24, 2/24, ...).
    * A frame without pts (the first frame of an RTSP session often has none) gets the previous
      ``pts_s`` plus one frame interval (``1 / rate``), or 0.0 if it is the very first frame.
    * After a reconnect (:meth:`new_segment`) the camera's clock usually restarts. The first
      frame of the new segment is placed one frame interval after the last frame, or later by
      the wall-clock time the stream was away, whichever is larger; later frames of that
      segment keep their spacing from the stream. So ``pts_s`` never goes backwards across
      reconnects, and durations measured in ``pts_s`` stay roughly aligned with real time.
    * If timestamps go backwards inside a segment (a broken muxer, a wrapped clock), the clock
      re-anchors the same way, one interval after the last frame; ``discontinuities`` counts it.
    * A frame whose timestamp is ``k`` intervals (rounded, ``k >= 2``) after the previous one's
      in the same segment keeps it, and ``last_gap_frames`` says ``k - 1`` frames are missing
      there: data lost in transit or damaged beyond the demuxer's notice (a damaged MPEG-TS
      loses whole frames without an error). A variable-rate stream's slow stretches count too.

    Args:
        default_rate: frame rate in Hz assumed when the stream declares none.
    """

    def __init__(self, default_rate: float = 25.0) -> None:
        if default_rate <= 0:
            raise ValueError(f"default_rate must be > 0 Hz, got {default_rate!r}")
        self._default_rate = default_rate
        self._last: float | None = None
        self._last_wall: float = 0.0
        self._offset = 0.0
        self._anchored = False
        self._segment_fresh = True
        self.discontinuities = 0
        self.last_gap_frames = 0
        """Frames missing just before the last stamped one, by its timestamp (0 for none)."""

    def new_segment(self) -> None:
        """Mark a new connection: the next timestamps may restart from anywhere."""
        self._anchored = False
        self._segment_fresh = True

    def stamp(self, raw_pts_s: float | None, rate: float | None, now: float) -> float:
        """Return the ``pts_s`` for one decoded frame.

        Args:
            raw_pts_s: the frame's own timestamp in seconds, or None when it has none.
            rate: the stream's frame rate in Hz, or None when unknown.
            now: ``time.monotonic()`` when the frame was decoded.

        Returns:
            Seconds, strictly greater than the value returned for the previous frame.
        """
        interval = 1.0 / (rate if rate is not None and rate > 0 else self._default_rate)
        if self._last is None:
            expected = 0.0
        elif self._segment_fresh:
            expected = self._last + max(interval, now - self._last_wall)
        else:
            expected = self._last + interval

        self.last_gap_frames = 0
        if raw_pts_s is None:
            value = expected
        else:
            continuing = self._anchored and not self._segment_fresh
            if not self._anchored:
                # The very first frame keeps the stream's clock; later segments are shifted.
                first_ever = self._last is None
                self._offset = 0.0 if first_ever else expected - raw_pts_s
                self._anchored = True
            value = raw_pts_s + self._offset
            if self._last is not None and value <= self._last:
                self.discontinuities += 1
                logger.debug(
                    "pts went backwards (%.6f s after %.6f s); re-anchoring", value, self._last
                )
                self._offset = self._last + interval - raw_pts_s
                value = self._last + interval
            elif continuing and self._last is not None:
                self.last_gap_frames = max(0, round((value - self._last) / interval) - 1)

        self._last = value
        self._last_wall = now
        self._segment_fresh = False
        return value


class FpsCap:
    """Admit a frame only if its pts is at least ``1 / fps`` after the last admitted one.

    Args:
        fps: the cap in Hz; None admits every frame.
        tolerance: fraction of the interval forgiven, so that float rounding and timestamp
            jitter do not halve the rate (at 25 fps capped to 12.5, a gap of 0.0799 s still
            counts as 0.08 s).
    """

    def __init__(self, fps: float | None, tolerance: float = 0.05) -> None:
        if fps is not None and fps <= 0:
            raise ValueError(f"fps cap must be > 0 Hz or None, got {fps!r}")
        if not 0.0 <= tolerance < 1.0:
            raise ValueError(f"tolerance must be in [0, 1), got {tolerance!r}")
        self.fps = fps
        self._min_gap = None if fps is None else (1.0 - tolerance) / fps
        self._last: float | None = None

    def admit(self, pts_s: float) -> bool:
        """True if the frame at ``pts_s`` passes the cap (and becomes the new reference)."""
        if (
            self._min_gap is not None
            and self._last is not None
            and pts_s - self._last < self._min_gap
        ):
            return False
        self._last = pts_s
        return True


class RateMeter:
    """Events per second over a sliding window of wall-clock time.

    Args:
        window_s: length of the window in seconds.
    """

    def __init__(self, window_s: float = 5.0) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s!r}")
        self._window_s = window_s
        self._times: collections.deque[float] = collections.deque()

    def add(self, now: float) -> None:
        """Record one event at ``now`` (``time.monotonic()``)."""
        self._times.append(now)
        self._trim(now)

    def rate(self, now: float) -> float:
        """Events per second in the last ``window_s`` seconds; 0.0 with fewer than two."""
        self._trim(now)
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self._window_s:
            self._times.popleft()

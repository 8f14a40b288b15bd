"""The shared machinery: buffer, clocks, backoff, redaction, build_source, the reader thread."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from streamseg.sources import (
    FileSource,
    RtspSource,
    Source,
    UsbSource,
    backoff_delay,
    build_source,
    redact_url,
)
from streamseg.sources._buffer import FrameBuffer
from streamseg.sources.timing import FpsCap, PtsClock, RateMeter
from streamseg.types import Frame, SourceState


def make_frame(index: int) -> Frame:
    return Frame("s", index, index / 25, 0.0, np.zeros((2, 2, 3), np.uint8))


# ---------------------------------------------------------------------------- FrameBuffer


def test_fifo_put_blocks_when_full_until_a_get() -> None:
    buffer = FrameBuffer(2, overwrite=False)
    stop = threading.Event()
    assert buffer.put(make_frame(0), stop) == (True, 0)
    assert buffer.put(make_frame(1), stop) == (True, 0)
    done = threading.Event()
    results: list[tuple[bool, int]] = []

    def blocked_put() -> None:
        results.append(buffer.put(make_frame(2), stop))
        done.set()

    threading.Thread(target=blocked_put, daemon=True).start()
    assert not done.wait(0.3), "put returned although the buffer was full"
    first = buffer.get_nowait()
    assert first is not None and first.index == 0
    assert done.wait(2.0)
    assert results == [(True, 0)]
    assert [buffer.get(0.1).index for _ in range(2)] == [1, 2]  # type: ignore[union-attr]


def test_fifo_blocked_put_gives_up_on_stop() -> None:
    buffer = FrameBuffer(1, overwrite=False)
    stop = threading.Event()
    buffer.put(make_frame(0), stop)
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    assert buffer.put(make_frame(1), stop) == (False, 0)
    assert time.monotonic() - started < 1.0


def test_mailbox_keeps_the_newest_and_counts_drops() -> None:
    buffer = FrameBuffer(1, overwrite=True)
    stop = threading.Event()
    drops = [buffer.put(make_frame(i), stop)[1] for i in range(5)]
    assert drops == [0, 1, 1, 1, 1]
    frame = buffer.get_nowait()
    assert frame is not None and frame.index == 4
    assert buffer.get_nowait() is None


def test_close_wakes_a_waiting_get_and_refuses_puts() -> None:
    buffer = FrameBuffer(1, overwrite=True)
    threading.Timer(0.2, buffer.close).start()
    started = time.monotonic()
    assert buffer.get(timeout=5.0) is None
    assert time.monotonic() - started < 1.0
    assert buffer.put(make_frame(0), threading.Event()) == (False, 0)


def test_frames_held_at_close_can_still_be_taken() -> None:
    buffer = FrameBuffer(3, overwrite=False)
    buffer.put(make_frame(0), threading.Event())
    buffer.close()
    frame = buffer.get(timeout=1.0)
    assert frame is not None and frame.index == 0
    assert len(buffer) == 0


# ---------------------------------------------------------------------------- clocks


def test_pts_clock_keeps_the_stream_clock_of_the_first_segment() -> None:
    clock = PtsClock()
    assert [clock.stamp(i / 24 + 10.0, 24.0, now=i) for i in range(3)] == pytest.approx(
        [10.0, 10.0 + 1 / 24, 10.0 + 2 / 24]
    )


def test_pts_clock_fills_missing_pts_from_the_rate() -> None:
    """An RTSP session's first frame often has no pts (PLATFORM.md)."""
    clock = PtsClock()
    assert clock.stamp(None, 25.0, now=0.0) == 0.0
    assert clock.stamp(0.04, 25.0, now=0.04) == pytest.approx(0.04)
    assert clock.stamp(None, 25.0, now=0.08) == pytest.approx(0.08)
    assert clock.stamp(0.12, 25.0, now=0.12) == pytest.approx(0.12)


def test_pts_clock_never_goes_back_across_a_reconnect() -> None:
    clock = PtsClock()
    for i in range(10):
        clock.stamp(i * 0.04, 25.0, now=100.0 + i * 0.04)  # last: 0.36 at wall 100.36
    clock.new_segment()
    # The camera comes back 3 s later and restarts its clock at 0 (first pts missing).
    first = clock.stamp(None, 25.0, now=103.36)
    assert first == pytest.approx(0.36 + 3.0)
    second = clock.stamp(0.04, 25.0, now=103.40)
    assert second == pytest.approx(first + 0.04)
    # A quick reconnect is placed at least one frame interval later.
    clock.new_segment()
    third = clock.stamp(0.0, 25.0, now=103.401)
    assert third == pytest.approx(second + 0.04)
    assert clock.discontinuities == 0


def test_pts_clock_reanchors_when_pts_jump_back_inside_a_segment() -> None:
    clock = PtsClock()
    values = [clock.stamp(p, 10.0, now=0.0) for p in (5.0, 5.1, 5.2, 1.0, 1.1)]
    assert values == pytest.approx([5.0, 5.1, 5.2, 5.3, 5.4])
    assert clock.discontinuities == 1


def test_pts_clock_counts_the_frames_a_timestamp_gap_skips() -> None:
    clock = PtsClock()
    gaps = []
    for pts in (0.0, 0.1, 0.2, 0.5, 0.6, 0.72, 0.88, 0.98):
        clock.stamp(pts, 10.0, now=0.0)
        gaps.append(clock.last_gap_frames)
    # 0.2 -> 0.5 skips two frames; 0.6 -> 0.72 (jitter: 1.2 intervals) none; 0.72 -> 0.88
    # (1.6 intervals, rounded to 2) one.
    assert gaps == [0, 0, 0, 2, 0, 0, 1, 0]
    clock.new_segment()  # a reconnect's jump is no gap
    clock.stamp(7.0, 10.0, now=5.0)
    assert clock.last_gap_frames == 0
    clock.stamp(1.0, 10.0, now=5.1)  # nor is a re-anchoring jump back
    assert (clock.last_gap_frames, clock.discontinuities) == (0, 1)


@pytest.mark.parametrize(
    ("fps", "pts", "admitted"),
    [
        (None, [0.0, 0.01, 0.02], [True, True, True]),
        (12.0, [i / 24 for i in range(5)], [True, False, True, False, True]),
        (10.0, [i / 24 for i in range(7)], [True, False, False, True, False, False, True]),
        # 25 fps capped at 12.5 with 0.1 ms jitter still gives every other frame.
        (12.5, [0.0, 0.04, 0.0799, 0.12, 0.1601], [True, False, True, False, True]),
    ],
)
def test_fps_cap(fps: float | None, pts: list[float], admitted: list[bool]) -> None:
    cap = FpsCap(fps)
    assert [cap.admit(p) for p in pts] == admitted


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"fps": 0.0}, "fps cap must be > 0"), ({"fps": 5.0, "tolerance": 1.0}, "tolerance")],
)
def test_fps_cap_errors(kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        FpsCap(**kwargs)


def test_rate_meter_measures_recent_rate_only() -> None:
    meter = RateMeter(window_s=2.0)
    for i in range(51):
        meter.add(10.0 + i * 0.04)  # 25 Hz for 2 s
    assert meter.rate(now=12.0) == pytest.approx(25.0, rel=0.05)
    assert meter.rate(now=20.0) == 0.0  # nothing in the last 2 s


# ---------------------------------------------------------------------------- backoff


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (50, 1.0), (10_000, 1.0)],
)
def test_backoff_doubles_up_to_the_cap(attempt: int, expected: float) -> None:
    assert backoff_delay(attempt, 0.2, 1.0, jitter=0.0) == pytest.approx(expected)


def test_backoff_jitter_stays_within_ten_percent() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(3, 0.5, 30.0, rng=rng) for _ in range(500)]
    assert min(delays) >= 1.8 and max(delays) <= 2.2
    assert max(delays) - min(delays) > 0.2  # it does spread


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((0, 0.5, 30.0), "attempt must be >= 1, got 0"),
        ((1, 0.0, 30.0), "initial_s must be > 0"),
        ((1, 2.0, 1.0), "max_s must be >= initial_s"),
        ((1, 0.5, 30.0, 1.5), "jitter must be in"),
    ],
)
def test_backoff_errors(args: tuple[Any, ...], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        backoff_delay(*args)


# ---------------------------------------------------------------------------- redaction


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rtsp://admin:secret@10.0.0.7:554/live", "rtsp://admin:***@10.0.0.7:554/live"),
        ("rtsp://admin:s3cr@t@10.0.0.7/live", "rtsp://admin:***@10.0.0.7/live"),
        ("rtsp://10.0.0.7:554/live", "rtsp://10.0.0.7:554/live"),
        ("rtsp://viewer@10.0.0.7/live", "rtsp://viewer@10.0.0.7/live"),
        ("rtsps://:tok@cam/x", "rtsps://:***@cam/x"),
        (
            "[Errno 111] Connection refused: 'rtsp://u:p@h/a' then rtsp://v:q@g/b",
            "[Errno 111] Connection refused: 'rtsp://u:***@h/a' then rtsp://v:***@g/b",
        ),
        ("no url here", "no url here"),
        # Regression: an unencoded "/" or "#" in the password ended the match, leaking it.
        ("rtsp://u:ab/cd@127.0.0.1:8554/s", "rtsp://u:***@127.0.0.1:8554/s"),
        (
            "cannot connect to rtsp://u:p@ss/w:rd#1@h:554/s: 'rtsp://u:p@ss/w:rd#1@h:554/s'",
            "cannot connect to rtsp://u:***@h:554/s: 'rtsp://u:***@h:554/s'",
        ),
        # Credentials in the query string (some cameras; stream servers' tokens) were logged.
        (
            "rtsp://10.0.0.5/cam/realmonitor?channel=1&user=admin&password=Secret1",
            "rtsp://10.0.0.5/cam/realmonitor?channel=1&user=admin&password=***",
        ),
        (
            "opened https://h/live.m3u8?Token=ab.cd-ef&x=1 (h264)",
            "opened https://h/live.m3u8?Token=***&x=1 (h264)",
        ),
        ("rtsp://h/s?pwd=p%40ss#frag", "rtsp://h/s?pwd=***#frag"),
        ("rtsp://h/s?channel=1&subtype=0", "rtsp://h/s?channel=1&subtype=0"),  # none there
    ],
)
def test_redact_url(text: str, expected: str) -> None:
    assert redact_url(text) == expected


# ---------------------------------------------------------------------------- build_source


def test_build_source_picks_the_class_by_type(
    file_cfg: Callable[..., Any], rtsp_cfg: Callable[..., Any], usb_cfg: Callable[..., Any]
) -> None:
    assert type(build_source(file_cfg("/tmp/x.mp4"))) is FileSource
    assert type(build_source(rtsp_cfg("rtsp://h/x"))) is RtspSource
    assert type(build_source(usb_cfg(0))) is UsbSource


def test_build_source_names_the_valid_types() -> None:
    class Other:
        id = "odd"
        type = "ftp"

    with pytest.raises(ValueError, match=r"one of file, rtsp, usb, got 'ftp' \(source 'odd'\)"):
        build_source(Other())  # type: ignore[arg-type]


def test_build_source_opens_nothing(file_cfg: Callable[..., Any]) -> None:
    source = build_source(file_cfg("/does/not/exist.mp4"))
    assert source.state is SourceState.CONNECTING
    assert source.stats().last_error is None
    source.stop()
    assert source.state is SourceState.STOPPED and source.exhausted


# ---------------------------------------------------------------------------- reader thread


class ScriptedSource(Source):
    """A source whose reader runs a given function: for the thread's contract."""

    def __init__(self, body: Callable[[ScriptedSource], None]) -> None:
        super().__init__("scripted", live=False, queue_size=4)
        self._body = body

    def _run(self) -> None:
        self._body(self)


def wait_terminal(source: Source, timeout: float = 3.0) -> None:
    """Wait until the source is terminal and its reader thread has returned.

    The state flips before the listeners run, so waiting on the state alone races the
    listeners of the last transition.
    """
    deadline = time.monotonic() + timeout
    while not source.state.terminal:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    for thread in source._threads():
        thread.join(max(0.0, deadline - time.monotonic()))
        assert not thread.is_alive()


def test_an_exception_in_the_reader_fails_the_source_and_does_not_escape() -> None:
    def body(source: ScriptedSource) -> None:
        raise RuntimeError("decoder exploded")

    source = ScriptedSource(body)
    errors: list[BaseException | None] = []
    previous = threading.excepthook

    def record(args: threading.ExceptHookArgs) -> None:
        errors.append(args.exc_value)

    threading.excepthook = record
    try:
        source.start()
        wait_terminal(source)
        source.stop()
    finally:
        threading.excepthook = previous
    assert errors == []
    assert source.state is SourceState.FAILED
    assert source.stats().last_error == "reader crashed: RuntimeError: decoder exploded"


def test_a_reader_that_returns_leaves_the_source_ended() -> None:
    source = ScriptedSource(lambda s: None)
    source.start()
    wait_terminal(source)
    assert source.state is SourceState.ENDED


def test_a_raising_listener_or_notifier_does_not_stop_the_reader() -> None:
    def body(source: ScriptedSource) -> None:
        source._transition(SourceState.STREAMING)
        for i in range(3):
            source._publish(make_frame(i))
        source._transition(SourceState.ENDED, "done")

    def bad_listener(*_args: object) -> None:
        raise ValueError("listener bug")

    def bad_notifier() -> None:
        raise ValueError("notifier bug")

    source = ScriptedSource(body)
    seen: list[SourceState] = []
    source.add_state_listener(bad_listener)
    source.add_state_listener(lambda _sid, _old, new: seen.append(new))
    source.set_notifier(bad_notifier)
    source.start()
    wait_terminal(source)
    assert seen == [SourceState.STREAMING, SourceState.ENDED]
    assert [source.get(0.1).index for _ in range(3)] == [0, 1, 2]  # type: ignore[union-attr]
    assert source.exhausted


def test_terminal_state_is_final() -> None:
    source = ScriptedSource(lambda s: None)
    assert source._transition(SourceState.FAILED, "x")
    assert not source._transition(SourceState.STREAMING)
    assert source.state is SourceState.FAILED

"""RtspSource: option building, and the real thing against GStreamer's RTSP server."""

from __future__ import annotations

import itertools
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from helpers.source_states import TransitionLog

from streamseg.config import load_pipeline_text
from streamseg.sources import RtspSource, Source, build_source, rtsp_open_args
from streamseg.types import Frame, SourceState


def take_for(source: Source, seconds: float) -> list[tuple[float, Frame]]:
    """Take every frame offered during ``seconds``, with its monotonic arrival time."""
    taken: list[tuple[float, Frame]] = []
    end = time.monotonic() + seconds
    while (remaining := end - time.monotonic()) > 0:
        frame = source.get(timeout=min(remaining, 0.2))
        if frame is not None:
            taken.append((time.monotonic(), frame))
    return taken


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------- option building


@pytest.mark.parametrize(
    ("fields", "expected_options", "expected_timeout"),
    [
        (
            {"transport": "tcp", "read_timeout_s": 1.5, "stall_timeout_s": 5.0},
            {"rtsp_transport": "tcp", "timeout": "1500000", "analyzeduration": "100000"},
            (1.5, 1.5),
        ),
        (
            {"transport": "udp", "read_timeout_s": 2.0, "open_timeout_s": 4.0},
            # The socket timeout is the longer of open and read: it bounds the handshake too.
            {"rtsp_transport": "udp", "timeout": "4000000", "analyzeduration": "100000"},
            (4.0, 1.875),  # read part capped at 1.25 x stall_timeout_s (1.5 in rtsp_cfg)
        ),
        (
            {"read_timeout_s": 5.0, "stall_timeout_s": 3.0, "open_timeout_s": 5.0},
            {"rtsp_transport": "tcp", "timeout": "5000000", "analyzeduration": "100000"},
            (5.0, 3.75),
        ),
    ],
    ids=["tcp", "udp", "read-capped-by-stall"],
)
def test_open_args(
    rtsp_cfg: Callable[..., Any],
    fields: dict[str, Any],
    expected_options: dict[str, str],
    expected_timeout: tuple[float, float],
) -> None:
    args = rtsp_open_args(rtsp_cfg("rtsp://cam.local:554/live", **fields))
    assert args.file == "rtsp://cam.local:554/live"
    assert "cam.local" not in repr(args)  # the URL may hold a password: never in a repr
    assert args.format is None
    assert dict(args.options) == expected_options
    assert args.timeout == expected_timeout


@pytest.mark.parametrize(
    ("url", "fields", "error"),
    [
        ("rtsp://h/x", {"transport": "http"}, "transport must be one of tcp, udp, got 'http'"),
        ("http://admin:pw123@h/x", {}, r"url must start with rtsp:// .*admin:\*\*\*@h"),
    ],
    ids=["bad-transport", "bad-scheme"],
)
def test_open_args_errors(
    rtsp_cfg: Callable[..., Any], url: str, fields: dict[str, Any], error: str
) -> None:
    # model_copy(update=...) skips validation: gets past the config's own checks to test ours.
    cfg = rtsp_cfg("rtsp://h/x").model_copy(update={"url": url, **fields})
    with pytest.raises(ValueError, match=error) as info:
        rtsp_open_args(cfg)
    assert "pw123" not in str(info.value)


def test_refused_connection_fails_after_max_attempts_without_leaking_the_password(
    rtsp_cfg: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="streamseg.sources")
    url = f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/live"
    source = build_source(rtsp_cfg(url, reconnect={"max_attempts": 2}))
    assert isinstance(source, RtspSource)
    log = TransitionLog(source)
    source.start()
    log.wait_for(SourceState.FAILED, timeout=6)
    source.stop(timeout=2)

    assert log.states == [SourceState.RECONNECTING, SourceState.FAILED]
    stats = source.stats()
    assert stats.reconnects == 2
    assert stats.last_error is not None
    assert "admin:***@127.0.0.1" in stats.last_error
    assert "ConnectionRefused" in stats.last_error
    assert source.target == url.replace("hunter2", "***")
    assert "hunter2" not in stats.last_error
    assert caplog.records, "expected log lines"
    assert all("hunter2" not in r.getMessage() for r in caplog.records)


def _last_error_once(source: Any, state: SourceState, timeout: float) -> str:
    """Start ``source``, wait until it is in ``state``, stop it; its last error (not None)."""
    log = TransitionLog(source)
    source.start()
    log.wait_for(state, timeout=timeout)
    source.stop(timeout=3)
    last_error = source.stats().last_error
    assert last_error is not None
    return str(last_error)


def test_an_unknown_host_is_named_not_an_io_error(rtsp_cfg: Callable[..., Any]) -> None:
    """Regression: FFmpeg's ``[Errno 5] Input/output error`` was all an operator saw for a
    mistyped camera host. ``.invalid`` never resolves (RFC 2606)."""
    source = build_source(
        rtsp_cfg(
            "rtsp://admin:pw@camera-7.invalid:8554/live",
            reconnect={"max_attempts": 1, "initial_delay_s": 0.05},
        )
    )
    last_error = _last_error_once(source, SourceState.FAILED, timeout=10)
    assert "cannot resolve host 'camera-7.invalid'" in last_error, last_error
    assert "Errno 5" not in last_error and "admin:pw" not in last_error


def test_a_server_that_never_answers_gets_the_open_timeout_and_is_named(
    rtsp_cfg: Callable[..., Any],
) -> None:
    """Regression: FFmpeg's socket timeout was the read timeout, so a host that accepts the
    connection and never answers was given up after read_timeout_s, not open_timeout_s, with
    "Invalid data found when processing input"."""
    silent = socket.create_server(("127.0.0.1", 0))  # listens, never speaks RTSP
    try:
        port = silent.getsockname()[1]
        source = build_source(
            rtsp_cfg(
                f"rtsp://127.0.0.1:{port}/live",
                open_timeout_s=2.5,
                read_timeout_s=1.0,
                stall_timeout_s=1.0,
            )
        )
        started = time.monotonic()
        streamed, reason = source._session()  # type: ignore[attr-defined]
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert not streamed
    assert 2.3 <= elapsed <= 4.0, elapsed
    assert "no RTSP answer within open_timeout_s (2.5 s)" in reason, reason
    assert "Invalid data" not in reason


def test_a_new_reason_while_reconnecting_is_logged_at_once(
    rtsp_cfg: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: a camera that came back with a 404 (or refusing the password) looked, in
    the log, like one still down: a reconnecting -> reconnecting change logged nothing. The
    connection attempts are replaced by their outcomes (what FFmpeg would say)."""
    source = build_source(
        rtsp_cfg(
            "rtsp://127.0.0.1:9/x",
            reconnect={"initial_delay_s": 0.01, "max_delay_s": 0.01, "max_attempts": 4},
        )
    )
    outcomes = iter(["refused", "refused", "404 Not Found", "404 Not Found", "404 Not Found"])
    source._session = lambda: (False, next(outcomes))  # type: ignore[method-assign]
    caplog.set_level(logging.INFO, logger="streamseg.sources")
    log = TransitionLog(source)
    source.start()
    log.wait_for(SourceState.FAILED, timeout=5)
    source.stop(timeout=2)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "source cam: connecting -> reconnecting (refused)",
        "source cam: still reconnecting, now: 404 Not Found",
        "source cam: reconnecting -> failed (gave up after 4 reconnect attempt(s) in a row; "
        "last: 404 Not Found)",
    ]


# ---------------------------------------------------------------------------- real server


@pytest.mark.integration
def test_reads_frames_with_increasing_pts(
    rtsp_server: Callable[..., Any],
    rtsp_cfg: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="streamseg.sources")
    server = rtsp_server(width=160, height=120, fps=25)
    source = build_source(rtsp_cfg(server.url_with_credentials("viewer", "s3cret"), id="gate"))
    log = TransitionLog(source)
    source.start()
    log.wait_for(SourceState.STREAMING, timeout=5)
    taken = take_for(source, 1.5)
    source.stop(timeout=3)

    frames = [f for _t, f in taken]
    assert len(frames) >= 20, f"only {len(frames)} frames in 1.5 s from a 25 fps stream"
    pts = [f.pts_s for f in frames]
    assert all(b > a for a, b in itertools.pairwise(pts)), "pts not increasing"
    # 90 kHz RTP clock at 25 fps: consecutive frames 40 ms apart.
    assert min(b - a for a, b in itertools.pairwise(pts)) == pytest.approx(0.04, abs=0.005)
    assert all(f.image.shape == (120, 160, 3) and f.stream_id == "gate" for f in frames)
    stats = source.stats()
    assert stats.nominal_fps == pytest.approx(25.0)
    assert stats.resolution_wh == (160, 120)
    assert 15.0 <= stats.fps <= 35.0
    assert log.states == [SourceState.STREAMING, SourceState.STOPPED]
    assert not any("s3cret" in r.getMessage() for r in caplog.records)
    assert any("viewer:***@" in r.getMessage() for r in caplog.records)


@pytest.mark.integration
def test_reconnects_after_the_server_is_killed_and_restarted(
    rtsp_server: Callable[..., Any], rtsp_cfg: Callable[..., Any]
) -> None:
    server = rtsp_server()
    source = build_source(rtsp_cfg(server.url))
    log = TransitionLog(source)
    source.start()
    log.wait_for(SourceState.STREAMING, timeout=5)
    before = take_for(source, 0.5)
    assert before, "no frames before the kill"

    server.kill()
    lost_at = time.monotonic()
    reconnecting_at = log.wait_for(SourceState.RECONNECTING, timeout=5)
    # Detected by the end of the demux loop, an error, or at the latest the read timeout.
    assert reconnecting_at - lost_at <= 1.5 + 1.5

    server.restart()
    log.wait_for(SourceState.STREAMING, timeout=8, after=2)
    after = take_for(source, 0.5)
    source.stop(timeout=3)

    assert after, "no frames after the reconnect"
    assert after[0][1].pts_s > before[-1][1].pts_s, "pts went backwards across the reconnect"
    pts = [f.pts_s for _t, f in before + after]
    assert all(b > a for a, b in itertools.pairwise(pts))
    assert source.stats().reconnects >= 1
    assert log.states[:2] == [SourceState.STREAMING, SourceState.RECONNECTING]
    assert SourceState.FAILED not in log.states


@pytest.mark.integration
def test_frozen_server_is_a_stall_and_never_hangs(
    rtsp_server: Callable[..., Any], rtsp_cfg: Callable[..., Any]
) -> None:
    server = rtsp_server(freeze_after=1.0)
    source = build_source(rtsp_cfg(server.url, stall_timeout_s=1.0, read_timeout_s=3.0))
    log = TransitionLog(source)
    source.start()
    log.wait_for(SourceState.STREAMING, timeout=5)
    # The video stops ~1 s after the media starts; take frames until the watchdog speaks.
    arrivals: list[float] = []
    deadline = time.monotonic() + 6
    while SourceState.STALLED not in log.states:
        assert time.monotonic() < deadline, f"never stalled; saw {log.states}"
        if source.get(timeout=0.02) is not None:
            arrivals.append(time.monotonic())
    stalled_at = log.wait_for(SourceState.STALLED, timeout=0)
    assert arrivals, "no frames before the freeze"
    silence = stalled_at - max(t for t in arrivals if t <= stalled_at)
    assert 0.9 <= silence <= 1.0 + 0.6, f"stalled after {silence:.2f} s of silence"
    log.wait_for(SourceState.RECONNECTING, timeout=3)
    stop_started = time.monotonic()
    source.stop(timeout=4)
    assert time.monotonic() - stop_started < 4
    assert all(not t.is_alive() for t in source._threads())
    stats = source.stats()
    assert stats.last_error is not None and "no frame" in stats.last_error
    assert log.states[:3] == [SourceState.STREAMING, SourceState.STALLED, SourceState.RECONNECTING]


@pytest.mark.integration
def test_a_frozen_camera_is_stalled_after_one_stall_timeout_not_two(
    rtsp_server: Callable[..., Any], rtsp_cfg: Callable[..., Any]
) -> None:
    """Regression: with the read timeout at exactly the stall timeout, FFmpeg released the
    frame it held as the watchdog was about to fire; that late frame re-armed it, and a frozen
    camera was declared stalled after 4.0 s for a stall_timeout_s of 2."""
    server = rtsp_server(freeze_after=1.0)
    source = build_source(rtsp_cfg(server.url, stall_timeout_s=2.0, read_timeout_s=5.0))
    log = TransitionLog(source)
    source.start()
    log.wait_for(SourceState.STREAMING, timeout=5)
    arrivals: list[float] = []
    deadline = time.monotonic() + 10
    while SourceState.STALLED not in log.states:
        assert time.monotonic() < deadline, f"never stalled; saw {log.states}"
        if source.get(timeout=0.02) is not None:
            arrivals.append(time.monotonic())
    stalled_at = log.wait_for(SourceState.STALLED, timeout=0)
    source.stop(timeout=4)
    assert len(arrivals) >= 10, "no frames before the freeze"
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert max(gaps) < 1.0, f"a late frame arrived {max(gaps):.2f} s after the one before"
    assert 1.9 <= stalled_at - arrivals[-1] <= 2.7, stalled_at - arrivals[-1]


@pytest.mark.integration
def test_server_that_accepts_but_never_answers_does_not_hang(
    silent_tcp_server: int, rtsp_cfg: Callable[..., Any]
) -> None:
    source = build_source(rtsp_cfg(f"rtsp://127.0.0.1:{silent_tcp_server}/live"))
    log = TransitionLog(source)
    started = time.monotonic()
    source.start()
    reconnecting_at = log.wait_for(SourceState.RECONNECTING, timeout=6)
    assert reconnecting_at - started <= 1.5 + 1.5  # open timeout + margin
    assert source.stats().last_error is not None
    assert "cannot connect" in (source.stats().last_error or "")
    stop_started = time.monotonic()
    source.stop(timeout=4)
    assert time.monotonic() - stop_started < 3
    assert all(not t.is_alive() for t in source._threads())
    assert source.state is SourceState.STOPPED


@pytest.mark.integration
def test_udp_transport_streams(
    rtsp_server: Callable[..., Any], rtsp_cfg: Callable[..., Any]
) -> None:
    server = rtsp_server()
    source = build_source(rtsp_cfg(server.url, transport="udp"))
    assert isinstance(source, RtspSource) and source.transport == "udp"
    log = TransitionLog(source)
    source.start()
    log.wait_for(SourceState.STREAMING, timeout=6)
    taken = take_for(source, 1.0)
    source.stop(timeout=3)
    assert len(taken) >= 10


@pytest.mark.integration
def test_slow_consumer_is_not_a_stall(
    rtsp_server: Callable[..., Any], rtsp_cfg: Callable[..., Any]
) -> None:
    """A pipeline taking 1 frame/s from a 25 fps camera must see drops, never a stall."""
    server = rtsp_server(fps=25)
    source = build_source(rtsp_cfg(server.url, stall_timeout_s=1.5))
    log = TransitionLog(source)
    source.start()
    log.wait_for(SourceState.STREAMING, timeout=5)
    taken: list[tuple[float, Frame]] = []
    for _ in range(4):
        frame = source.get(timeout=2.0)
        assert frame is not None
        taken.append((time.time(), frame))
        time.sleep(1.0)  # the consumer is busy for a second per frame
    stats = source.stats()
    source.stop(timeout=3)

    assert stats.state is SourceState.STREAMING
    assert log.states == [SourceState.STREAMING, SourceState.STOPPED]
    assert stats.frames_decoded >= 60
    assert stats.frames_dropped >= 50
    assert stats.frames_delivered == 4
    # What the consumer gets is the newest frame, not one queued seconds ago.
    for took_at, frame in taken[1:]:
        assert took_at - frame.wall_time < 0.2


@pytest.mark.integration
def test_a_refused_password_is_named_and_retried_slowly(
    rtsp_server: Callable[..., Any], rtsp_cfg: Callable[..., Any]
) -> None:
    """Regression: a wrong password read as a bare ``HTTPUnauthorizedError`` and was retried
    in the fast backoff of a lost connection, which gets accounts locked on many cameras."""
    server = rtsp_server(credentials="viewer:s3cret")
    reconnect = {"initial_delay_s": 0.05, "max_delay_s": 1.5}
    source = build_source(
        rtsp_cfg(server.url_with_credentials("viewer", "wrong"), reconnect=reconnect)
    )
    log = TransitionLog(source)
    source.start()
    log.wait_for(SourceState.RECONNECTING, timeout=5)
    time.sleep(2.0)
    source.stop(timeout=3)
    stats = source.stats()
    assert stats.last_error is not None
    assert "refused the user name or password (401 Unauthorized)" in stats.last_error
    assert "wrong" not in stats.last_error
    # At the fast backoff (0.05, 0.1, 0.2, 0.4, 0.8 s) five attempts fit in 2 s; at 1.5 s, one.
    assert stats.reconnects <= 2, stats.reconnects

    # The right password streams: the server did check it.
    good = build_source(rtsp_cfg(server.url_with_credentials("viewer", "s3cret"), id="good"))
    good_log = TransitionLog(good)
    good.start()
    good_log.wait_for(SourceState.STREAMING, timeout=5)
    good.stop(timeout=3)


@pytest.mark.integration
def test_a_wrong_path_is_named_as_such(
    rtsp_server: Callable[..., Any], rtsp_cfg: Callable[..., Any]
) -> None:
    """Regression: a path the server does not serve read as FFmpeg's bare "Server returned 404
    Not Found", which does not say what to check."""
    server = rtsp_server(path="/stream1")
    source = build_source(
        rtsp_cfg(
            f"rtsp://127.0.0.1:{server.port}/stream2",
            reconnect={"initial_delay_s": 0.05, "max_delay_s": 0.1},
        )
    )
    last_error = _last_error_once(source, SourceState.RECONNECTING, timeout=5)
    assert "has no stream at path '/stream2' (404 Not Found)" in last_error, last_error


@pytest.mark.integration
def test_a_password_with_url_characters_logs_in_and_never_shows(
    rtsp_server: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: a password with "@", "/" and "#" from ${CAM_PASS} broke the URL (FFmpeg
    looked up a host made of a piece of it) and showed in the log. It is percent-encoded when
    substituted, which FFmpeg decodes."""
    password = "p@ss/w:rd#1"
    server = rtsp_server(credentials=f"viewer:{password}")
    config = load_pipeline_text(
        f"sources: [{{id: cam, type: rtsp, url: 'rtsp://viewer:${{CAM_PASS}}@127.0.0.1:"
        f"{server.port}{server.path}'}}]\n",
        env={"CAM_PASS": password},
    )
    caplog.set_level(logging.DEBUG, logger="streamseg")
    source = build_source(config.sources[0])
    log = TransitionLog(source)
    source.start()
    log.wait_for(SourceState.STREAMING, timeout=5)
    source.stop(timeout=3)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "viewer:***@127.0.0.1" in messages
    assert "ss/w" not in messages and "p%40ss" not in messages

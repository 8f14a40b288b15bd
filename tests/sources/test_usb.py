"""UsbSource: option building, and a missing camera (no camera on CI machines)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from streamseg.sources import UsbSource, build_source, usb_open_args
from streamseg.sources.usb import usb_device_path
from streamseg.types import SourceState


@pytest.mark.parametrize(
    ("fields", "expected_file", "expected_options"),
    [
        ({"device": "/dev/video0"}, "/dev/video0", {}),
        ({"device": 2}, "/dev/video2", {}),
        ({"device": "3"}, "/dev/video3", {}),
        (
            {"device": "/dev/v4l/by-id/usb-cam", "width": 1280, "height": 720},
            "/dev/v4l/by-id/usb-cam",
            {"video_size": "1280x720"},
        ),
        (
            {"device": 0, "width": 640, "height": 480, "input_format": "mjpeg", "fps": 30.0},
            "/dev/video0",
            {"video_size": "640x480", "input_format": "mjpeg", "framerate": "30"},
        ),
        ({"device": 0, "fps": 7.5}, "/dev/video0", {"framerate": "7.5"}),
    ],
)
def test_open_args(
    usb_cfg: Callable[..., Any],
    fields: dict[str, Any],
    expected_file: str,
    expected_options: dict[str, str],
) -> None:
    args = usb_open_args(usb_cfg(**fields))
    assert args.file == expected_file
    assert args.format == "v4l2"
    assert dict(args.options) == expected_options


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"width": 640}, "width and height go together"),
        ({"height": 480}, "width and height go together"),
    ],
)
def test_open_args_errors(usb_cfg: Callable[..., Any], fields: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        usb_open_args(usb_cfg(**fields))


@pytest.mark.parametrize(
    ("device", "error"),
    [(-1, "index must be >= 0"), ("", "device must be a path"), (True, "path or an index")],
)
def test_device_path_errors(device: Any, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        usb_device_path(device)


def test_missing_device_ends_failed_with_a_clear_error(
    usb_cfg: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streamseg.sources")
    source = build_source(usb_cfg("/dev/video97", reconnect={"max_attempts": 1}))
    assert isinstance(source, UsbSource)
    assert source.live is True
    transitions: list[tuple[SourceState, SourceState]] = []
    source.add_state_listener(lambda _sid, old, new: transitions.append((old, new)))
    source.start()
    deadline = time.monotonic() + 5
    while not source.state.terminal:
        assert time.monotonic() < deadline, f"still {source.state.value} after 5 s"
        time.sleep(0.02)
    source.stop(timeout=2)

    assert transitions == [
        (SourceState.CONNECTING, SourceState.RECONNECTING),
        (SourceState.RECONNECTING, SourceState.FAILED),
    ]
    stats = source.stats()
    assert stats.reconnects == 1
    assert stats.last_error is not None
    assert "/dev/video97" in stats.last_error
    assert "No such file" in stats.last_error
    assert source.exhausted
    assert all(not t.is_alive() for t in source._threads())
    # Each transition is logged at INFO with the stream id.
    transition_logs = [r for r in caplog.records if "->" in r.getMessage()]
    assert len(transition_logs) == 2
    assert all("usb" in r.getMessage() and r.levelno == logging.INFO for r in transition_logs)

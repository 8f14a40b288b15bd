"""UsbSource: option building, a missing camera, and the non-blocking reads.

CI machines have no camera and cannot load v4l2loopback, so the read tests replace ``av.open``
for the device path with a real PyAV container of a real H.264 file whose demuxer answers
``BlockingIOError`` (EAGAIN) the way FFmpeg's V4L2 device does when opened with
``AVFMT_FLAG_NONBLOCK`` and no frame is ready.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import av
import pytest
from helpers.source_states import TransitionLog

from streamseg.sources import UsbSource, build_source, usb_open_args
from streamseg.sources.usb import NONBLOCK_FFLAGS, usb_device_path
from streamseg.types import Frame, SourceState

NONBLOCK = {"fflags": "+4"}  # AVFMT_FLAG_NONBLOCK added to FFmpeg's default flags


@pytest.mark.parametrize(
    ("fields", "expected_file", "expected_options"),
    [
        ({"device": "/dev/video0"}, "/dev/video0", NONBLOCK),
        ({"device": 2}, "/dev/video2", NONBLOCK),
        ({"device": "3"}, "/dev/video3", NONBLOCK),
        (
            {"device": "/dev/v4l/by-id/usb-cam", "width": 1280, "height": 720},
            "/dev/v4l/by-id/usb-cam",
            {**NONBLOCK, "video_size": "1280x720"},
        ),
        (
            {"device": 0, "width": 640, "height": 480, "input_format": "mjpeg", "fps": 30.0},
            "/dev/video0",
            {**NONBLOCK, "video_size": "640x480", "input_format": "mjpeg", "framerate": "30"},
        ),
        ({"device": 0, "fps": 7.5}, "/dev/video0", {**NONBLOCK, "framerate": "7.5"}),
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
    # Each transition is logged with the stream id, at WARNING: both are trouble.
    transition_logs = [r for r in caplog.records if "->" in r.getMessage()]
    assert len(transition_logs) == 2
    assert all("usb" in r.getMessage() and r.levelno == logging.WARNING for r in transition_logs)


class NonblockingCamera:
    """A real input container whose demuxer says "no frame ready" (EAGAIN) before every
    ``eagain_every``-th packet, and on every read once ``silent_after`` packets have gone out
    (a camera that stays connected and goes quiet). Packets are never lost: the reads share one
    demux iterator of the real file. ``sent`` counts the packets that carry a frame, not the
    empty flush packet PyAV yields at the file's end."""

    def __init__(self, real: Any, eagain_every: int = 3, silent_after: int | None = None) -> None:
        self._real = real
        self._packets = real.demux(real.streams.video[0])
        self.eagain_every = eagain_every
        self.silent_after = silent_after
        self.reads = 0
        self.sent = 0
        self.eagains = 0
        self.ended = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def demux(self, *_args: Any) -> Iterator[Any]:
        while True:
            self.reads += 1
            quiet = self.silent_after is not None and self.sent >= self.silent_after
            if quiet or self.reads % self.eagain_every == 0:
                self.eagains += 1
                raise av.error.BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
            try:
                packet = next(self._packets)
            except StopIteration:
                self.ended = True
                return
            if packet.size:  # the demuxer's closing flush packet carries no frame
                self.sent += 1
            yield packet


@pytest.fixture
def fake_camera(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[NonblockingCamera]]:
    """``fake_camera(clip_path, **kwargs)``: ``av.open`` of ``/dev/video42`` opens the clip as a
    :class:`NonblockingCamera` (checking that the source asked for non-blocking reads); returns
    the list of cameras opened so far."""
    real_open = av.open

    def install(clip: Any, **kwargs: Any) -> list[NonblockingCamera]:
        opened: list[NonblockingCamera] = []

        def fake_open(file: Any, *args: Any, **open_kwargs: Any) -> Any:
            if file != "/dev/video42":
                return real_open(file, *args, **open_kwargs)
            assert open_kwargs["options"].get("fflags") == NONBLOCK["fflags"]
            camera = NonblockingCamera(real_open(str(clip)), **kwargs)
            opened.append(camera)
            return camera

        monkeypatch.setattr(av, "open", fake_open)
        return opened

    return install


def test_reads_through_no_frame_ready_without_reconnecting(
    usb_cfg: Callable[..., Any], h264_file: Callable[..., Any], fake_camera: Any
) -> None:
    clip = h264_file(frames=24)
    opened = fake_camera(clip.path, eagain_every=3)
    source = build_source(usb_cfg("/dev/video42", stall_timeout_s=2.0))
    log = TransitionLog(source)
    source.start()
    frames: list[Frame] = []
    deadline = time.monotonic() + 10
    while len(frames) < clip.frames:
        assert time.monotonic() < deadline, f"{len(frames)} frames after 10 s"
        frame = source.get(timeout=0.05)
        if frame is not None:
            frames.append(frame)
    source.stop(timeout=2)

    # Every frame of the first session arrived, in order, although a third of the reads found
    # nothing ready: "no frame yet" is neither a lost connection nor a dropped frame. The clip's
    # end is a lost camera, though: the reader may reopen it before stop() (timing), but only
    # once the first session had served every packet.
    assert opened[0].sent == clip.frames
    assert opened[0].eagains >= clip.frames // 3
    assert [clip.index_of(f.image) for f in frames] == list(range(clip.frames))
    assert log.states[:1] == [SourceState.STREAMING]
    reconnects = source.stats().reconnects
    assert reconnects <= 1 and len(opened) <= 2
    assert (reconnects == 0 and len(opened) == 1) or opened[0].ended


def test_a_silent_camera_stalls_and_reconnects_instead_of_hanging(
    usb_cfg: Callable[..., Any], h264_file: Callable[..., Any], fake_camera: Any
) -> None:
    clip = h264_file(frames=48)
    opened = fake_camera(clip.path, eagain_every=1_000_000, silent_after=10)
    source = build_source(usb_cfg("/dev/video42", stall_timeout_s=1.0))
    log = TransitionLog(source)
    source.start()
    log.wait_for(SourceState.STREAMING, timeout=5)
    stalled_at = log.wait_for(SourceState.STALLED, timeout=4)
    # The reader came back from its polling and reconnected: a new device open.
    log.wait_for(SourceState.RECONNECTING, timeout=2)
    deadline = time.monotonic() + 5
    while len(opened) < 2:
        assert time.monotonic() < deadline, "the reader never reopened the device"
        time.sleep(0.02)
    stop_started = time.monotonic()
    source.stop(timeout=3)
    assert time.monotonic() - stop_started < 3
    assert all(not t.is_alive() for t in source._threads())
    assert opened[0].sent == 10 and opened[0].eagains > 10
    stats = source.stats()
    assert stats.last_error is not None and "no frame" in stats.last_error
    assert stalled_at > 0


def test_ffmpeg_accepts_the_nonblocking_flag(h264_file: Callable[..., Any]) -> None:
    # FFmpeg 8 rejects fflags=nonblock ("Undefined constant"), which would make every camera
    # fail to open; the numeric flag the source passes must be taken and set.
    clip = h264_file(frames=2)
    container = av.open(str(clip.path), options={"fflags": NONBLOCK_FFLAGS})
    try:
        flags = int(container.flags)
        assert flags & 0x4  # AVFMT_FLAG_NONBLOCK
        assert flags & 0x200000  # AVFMT_FLAG_AUTO_BSF, a default: added to, not replaced
    finally:
        container.close()

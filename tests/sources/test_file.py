"""FileSource on real H.264 files encoded with PyAV (libx264)."""

from __future__ import annotations

import logging
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from helpers.corrupt_video import garble_packets

from streamseg.sources import FileSource, Source, build_source
from streamseg.types import Frame, SourceState


def drain(source: Source, timeout: float = 10.0) -> list[Frame]:
    """Take frames until the source is exhausted; fail if that takes longer than ``timeout``."""
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    while not source.exhausted:
        assert time.monotonic() < deadline, f"source not exhausted after {timeout} s"
        frame = source.get(timeout=1.0)
        if frame is not None:
            frames.append(frame)
    return frames


def wait_for_state(source: Source, states: set[SourceState], timeout: float) -> float:
    """Wait until the source is in one of ``states``; returns the seconds it took."""
    start = time.monotonic()
    while source.state not in states:
        assert time.monotonic() - start < timeout, (
            f"state {source.state.value} not in {sorted(s.value for s in states)} after {timeout} s"
        )
        time.sleep(0.01)
    return time.monotonic() - start


def test_reads_every_frame_with_exact_pts_and_content(
    h264_file: Callable[..., Any], file_cfg: Callable[..., Any]
) -> None:
    clip = h264_file(frames=48, fps=24, width=160, height=120)
    source = build_source(file_cfg(clip.path, id="yard"))
    assert isinstance(source, FileSource)
    assert source.live is False
    transitions: list[tuple[str, SourceState, SourceState]] = []
    source.add_state_listener(lambda sid, old, new: transitions.append((sid, old, new)))
    notified = threading.Semaphore(0)
    source.set_notifier(notified.release)

    source.start()
    frames = drain(source)
    source.stop()

    assert len(frames) == 48
    for i, frame in enumerate(frames):
        assert frame.stream_id == "yard"
        assert frame.index == i
        assert frame.pts_s == pytest.approx(i / 24, abs=1e-6)
        assert frame.image.shape == (120, 160, 3)
        assert frame.image.dtype == np.uint8
        assert clip.index_of(frame.image) == i, f"frame {i} shows marker of another frame"
    assert source.state is SourceState.ENDED
    assert transitions == [
        ("yard", SourceState.CONNECTING, SourceState.STREAMING),
        ("yard", SourceState.STREAMING, SourceState.ENDED),
    ]
    stats = source.stats()
    assert (stats.frames_decoded, stats.frames_delivered) == (48, 48)
    assert (stats.frames_dropped, stats.frames_skipped_fps) == (0, 0)
    assert (stats.corrupt_packets, stats.decode_errors, stats.reconnects) == (0, 0, 0)
    assert stats.state is SourceState.ENDED
    assert stats.last_error is None
    assert stats.nominal_fps == pytest.approx(24.0)
    assert stats.resolution_wh == (160, 120)
    # One notification per frame and per state change.
    calls = 0
    while notified.acquire(blocking=False):
        calls += 1
    assert calls == 48 + 2


def test_bounded_queue_blocks_the_reader_instead_of_dropping(
    h264_file: Callable[..., Any], file_cfg: Callable[..., Any]
) -> None:
    clip = h264_file(frames=48)
    source = FileSource(file_cfg(clip.path, queue_size=4))
    source.start()
    wait_for_state(source, {SourceState.STREAMING}, timeout=5)
    time.sleep(0.5)  # nobody consumes: the reader must park on the full queue
    stats = source.stats()
    assert stats.state is SourceState.STREAMING
    # 4 frames queued + at most 1 waiting to go in.
    assert 4 <= stats.frames_decoded <= 5
    frames = drain(source)
    assert [f.index for f in frames] == list(range(48))
    assert source.stats().frames_dropped == 0


def test_get_returns_at_once_when_the_file_has_ended(
    h264_file: Callable[..., Any], file_cfg: Callable[..., Any]
) -> None:
    clip = h264_file(frames=5)
    source = FileSource(file_cfg(clip.path))
    source.start()
    assert len(drain(source)) == 5
    started = time.monotonic()
    assert source.get(timeout=5.0) is None
    assert time.monotonic() - started < 0.5
    assert source.get_nowait() is None
    assert source.exhausted


def test_corrupt_packets_are_counted_and_skipped(
    h264_file: Callable[..., Any], file_cfg: Callable[..., Any]
) -> None:
    clip = h264_file(frames=72, fps=24, gop=12)  # keyframes at 0, 12, 24, 36, ...
    garble_packets(clip.path, {26, 27, 28})
    source = FileSource(file_cfg(clip.path))
    source.start()
    frames = drain(source)

    stats = source.stats()
    assert stats.corrupt_packets + stats.decode_errors > 0
    assert source.state is SourceState.ENDED
    assert stats.last_error is not None
    assert 60 <= len(frames) < 72
    numbers = [round(f.pts_s * 24) for f in frames]
    assert numbers == sorted(set(numbers)), "pts not strictly increasing"
    assert any(n > 28 for n in numbers), "no frame delivered after the damage"
    # From the next keyframe on, the pictures are whole again.
    clean = [f for f, n in zip(frames, numbers, strict=True) if n >= 36]
    assert [round(f.pts_s * 24) for f in clean] == list(range(36, 72))
    for frame in clean:
        assert clip.index_of(frame.image) == round(frame.pts_s * 24)
    # The error is old news by the end: the frames after it are counted (36..71 at least).
    assert stats.frames_since_error >= 36


@pytest.mark.parametrize(
    ("fps_cap", "kept_every"),
    [(12.0, 2), (10.0, 3), (24.0, 1), (100.0, 1)],
)
def test_fps_cap_keeps_frames_at_least_one_interval_apart(
    h264_file: Callable[..., Any], file_cfg: Callable[..., Any], fps_cap: float, kept_every: int
) -> None:
    clip = h264_file(frames=48, fps=24)
    source = FileSource(file_cfg(clip.path, fps=fps_cap))
    source.start()
    frames = drain(source)
    expected = list(range(0, 48, kept_every))
    assert [round(f.pts_s * 24) for f in frames] == expected
    assert [f.index for f in frames] == list(range(len(expected)))
    stats = source.stats()
    assert stats.frames_decoded == 48
    assert stats.frames_skipped_fps == 48 - len(expected)
    assert stats.frames_dropped == 0  # a non-realtime file never drops


def test_realtime_paces_by_pts_and_drops_for_a_slow_consumer(
    h264_file: Callable[..., Any], file_cfg: Callable[..., Any]
) -> None:
    clip = h264_file(frames=48, fps=24)  # 2 s of video
    source = FileSource(file_cfg(clip.path, realtime=True))
    assert source.live is True
    source.start()
    started = time.monotonic()
    taken: list[Frame] = []
    while not source.exhausted:
        frame = source.get(timeout=1.0)
        if frame is not None:
            taken.append(frame)
            time.sleep(0.25)  # a pipeline at 4 fps
    elapsed = time.monotonic() - started

    assert source.state is SourceState.ENDED
    assert 1.7 <= elapsed <= 4.0, f"a 2 s clip played in {elapsed:.2f} s"
    stats = source.stats()
    assert stats.frames_decoded == 48
    assert stats.frames_dropped > 20
    assert stats.frames_delivered == len(taken)
    assert stats.frames_delivered + stats.frames_dropped == 48
    assert 5 <= len(taken) <= 14
    pts = [f.pts_s for f in taken]
    assert pts == sorted(pts)
    # The newest frame wins: consecutive takes skip frames.
    assert taken[-1].index - taken[0].index > len(taken)


def test_realtime_with_a_fast_consumer_takes_about_the_clip_duration(
    h264_file: Callable[..., Any], file_cfg: Callable[..., Any]
) -> None:
    clip = h264_file(frames=24, fps=24)  # 1 s of video
    source = FileSource(file_cfg(clip.path, realtime=True))
    source.start()
    received: list[tuple[float, Frame]] = []
    while not source.exhausted:
        frame = source.get(timeout=1.0)
        if frame is not None:
            received.append((time.monotonic(), frame))
    assert len(received) >= 20  # a consumer waiting in get() misses (almost) nothing
    (t0, f0), (t1, f1) = received[0], received[-1]
    assert t1 - t0 == pytest.approx(f1.pts_s - f0.pts_s, abs=0.2)


def test_realtime_fps_cap_is_counted_apart_from_the_drops(
    h264_file: Callable[..., Any], file_cfg: Callable[..., Any]
) -> None:
    """Frames the fps cap leaves out are skipped by design, not dropped: counted as drops, they
    made an alert on ``streamseg_frames_dropped_total`` fire for ever for a capped camera."""
    clip = h264_file(frames=24, fps=24)
    source = FileSource(file_cfg(clip.path, realtime=True, fps=12.0))
    source.start()
    taken = drain(source)
    stats = source.stats()
    assert stats.frames_skipped_fps == 12
    # Dropped: only the admitted frames the consumer had no time for.
    assert stats.frames_dropped == 12 - len(taken)
    assert stats.frames_delivered + stats.frames_dropped + stats.frames_skipped_fps == 24
    assert all(round(f.pts_s * 24) % 2 == 0 for f in taken)


@pytest.mark.parametrize(
    ("make_file", "expected_in_error"),
    [
        (lambda d: d / "missing.mp4", "missing.mp4"),
        (lambda d: _write(d / "notes.mp4", b"this is not a video at all\n" * 20), "notes.mp4"),
        (lambda d: _write_wav(d / "audio.wav"), "expected a video stream"),
    ],
    ids=["missing", "not-a-video", "audio-only"],
)
def test_unopenable_file_fails_with_a_clear_error(
    tmp_path: Path,
    file_cfg: Callable[..., Any],
    make_file: Callable[[Path], Path],
    expected_in_error: str,
) -> None:
    path = make_file(tmp_path)
    source = FileSource(file_cfg(path))
    transitions: list[SourceState] = []
    source.add_state_listener(lambda _sid, _old, new: transitions.append(new))
    source.start()
    wait_for_state(source, {SourceState.FAILED, SourceState.ENDED}, timeout=5)
    assert source.state is SourceState.FAILED
    # The state flips before the listeners run: let the reader finish before reading them.
    for thread in source._threads():
        thread.join(5)
    assert transitions == [SourceState.FAILED]
    error = source.stats().last_error
    assert error is not None
    assert expected_in_error in error
    assert str(path) in error
    assert source.exhausted
    started = time.monotonic()
    assert source.get(timeout=5.0) is None
    assert time.monotonic() - started < 0.5
    source.stop()


def test_a_failure_is_logged_at_warning_and_a_clean_run_at_info(
    tmp_path: Path,
    file_cfg: Callable[..., Any],
    h264_file: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # ``--log-level warning`` must still show a camera going away; normal starts and ends
    # stay at INFO so that a healthy run is quiet at that level.
    caplog.set_level(logging.INFO, logger="streamseg.sources")
    failing = FileSource(file_cfg(tmp_path / "missing.mp4"))
    failing.start()
    wait_for_state(failing, {SourceState.FAILED}, timeout=5)
    failing.stop()
    clip = h264_file(frames=6)
    clean = FileSource(file_cfg(clip.path))
    clean.start()
    while clean.get(timeout=5.0) is not None:
        pass
    clean.stop()
    changes = [r for r in caplog.records if " -> " in r.getMessage()]
    failed = [r for r in changes if "-> failed" in r.getMessage()]
    assert [r.levelno for r in failed] == [logging.WARNING]
    assert "missing.mp4" in failed[0].getMessage()
    healthy = [r for r in changes if r not in failed]
    assert any("-> streaming" in r.getMessage() for r in healthy)
    assert any("-> ended" in r.getMessage() for r in healthy)
    assert all(r.levelno == logging.INFO for r in healthy)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _write_wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 8000)
    return path


def test_stop_mid_file_ends_the_reader_promptly(
    h264_file: Callable[..., Any], file_cfg: Callable[..., Any]
) -> None:
    clip = h264_file(frames=48)
    source = FileSource(file_cfg(clip.path, queue_size=2))
    source.start()
    assert source.get(timeout=5.0) is not None
    started = time.monotonic()
    source.stop(timeout=3.0)
    assert time.monotonic() - started < 1.0
    assert source.state is SourceState.STOPPED
    assert source._thread is not None and not source._thread.is_alive()
    with pytest.raises(RuntimeError, match="already started"):
        source.start()


def _corner_marked(width: int, height: int) -> np.ndarray:
    """A stored picture with a red block top-left and a green block top-right (BGR)."""
    image = np.zeros((height, width, 3), np.uint8)
    image[: height // 4, : width // 4] = (0, 0, 255)
    image[: height // 4, -width // 4 :] = (0, 255, 0)
    return image


@pytest.mark.parametrize(
    ("rotation", "upright_wh", "top_left"),
    [
        # ffmpeg shows a stream with display rotation 90 (counter-clockwise) turned a quarter
        # counter-clockwise: the stored top-right corner (green) comes to the top-left.
        (90, (60, 80), "green"),
        (-90, (60, 80), "black"),  # a quarter clockwise: the stored top-left goes top-right
        (180, (80, 60), "black"),
        (0, (80, 60), "red"),
    ],
)
def test_display_rotation_is_applied_like_a_player(
    tmp_path: Path,
    file_cfg: Callable[..., Any],
    rotation: int,
    upright_wh: tuple[int, int],
    top_left: str,
) -> None:
    """A phone video is stored landscape with a display matrix: frames come upright (as the
    ffmpeg command line shows them; the mapping was checked against its autorotation)."""
    import av

    stored = _corner_marked(80, 60)
    path = tmp_path / f"rot{rotation}.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 80, 60, "yuv444p"
        stream.options = {"qp": "0"}
        if rotation:
            stream.set_display_rotation(rotation)
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(stored, format="bgr24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    source = build_source(file_cfg(path))
    source.start()
    frames = drain(source)
    source.stop()
    assert len(frames) == 3
    image = frames[0].image
    assert (image.shape[1], image.shape[0]) == upright_wh
    assert image.flags.c_contiguous
    assert source.stats().resolution_wh == upright_wh
    colour = {"red": (0, 0, 255), "green": (0, 255, 0), "black": (0, 0, 0)}[top_left]
    assert np.abs(image[2, 2].astype(int) - colour).max() < 40, image[2, 2]


def test_a_file_with_no_decodable_frame_fails(
    tmp_path: Path, h264_file: Callable[..., Any], file_cfg: Callable[..., Any]
) -> None:
    """Regression: an MPEG-TS cut after its header (it opens, with a video stream) ended
    ``ended`` with no error and the run exited 0, as if the file were a short clip."""
    whole = h264_file("whole.ts", frames=10).path
    cut = _write(tmp_path / "cut.ts", whole.read_bytes()[: 188 * 3])  # PAT, PMT, no picture
    source = FileSource(file_cfg(cut))
    source.start()
    wait_for_state(source, {SourceState.FAILED, SourceState.ENDED}, timeout=5)
    assert source.state is SourceState.FAILED
    assert drain(source) == []
    error = source.stats().last_error
    assert error is not None and f"no frame could be decoded from {cut}" in error
    source.stop()


def test_frames_a_damaged_mpeg_ts_loses_are_counted(
    tmp_path: Path,
    h264_file: Callable[..., Any],
    file_cfg: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Regression: the MPEG-TS demuxer resynchronises over damaged packets without an error,
    so the frames they held vanished uncounted (corrupt 0, no warning)."""
    path = h264_file("clip.ts", frames=60, fps=15, gop=15).path
    data = bytearray(path.read_bytes())
    packets = len(data) // 188
    rng = np.random.default_rng(3)
    for k in range(packets // 3, packets // 3 + 10):  # payloads only: sync bytes stay
        data[k * 188 + 4 : (k + 1) * 188] = rng.integers(0, 256, 184, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    source = FileSource(file_cfg(path))
    with caplog.at_level("WARNING", logger="streamseg.sources.base"):
        source.start()
        frames = drain(source)
        source.stop()
    lost = 60 - len(frames)
    assert lost > 0  # the damage did cost frames
    assert source.stats().frames_missing == lost
    warnings = [r.getMessage() for r in caplog.records if "missing before" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("source clip: ")


def test_an_intact_file_has_no_missing_frames(
    h264_file: Callable[..., Any], file_cfg: Callable[..., Any]
) -> None:
    source = FileSource(file_cfg(h264_file("clip.mp4", frames=30, fps=15).path))
    source.start()
    assert len(drain(source)) == 30
    source.stop()
    assert source.stats().frames_missing == 0


def _faststart_mp4(path: Path, frames: int, fps: int) -> Path:
    """An MP4 whose index comes first (``movflags=faststart``, as streaming copies are): cut
    short, it still opens and declares its full length."""
    rng = np.random.default_rng(0)  # noise: the pictures, not the index, fill the file
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("h264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for _ in range(frames):
            image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize("kind", ["mkv", "mp4-faststart"])
def test_a_truncated_file_is_read_then_reported(
    kind: str,
    tmp_path: Path,
    h264_file: Callable[..., Any],
    file_cfg: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Regression: a file cut off half way (a copy interrupted, a recorder killed) read its
    first half and ended ``end of file`` with no word: the run looked complete."""
    if kind == "mkv":
        whole = h264_file("whole.mkv", frames=60, fps=10).path
    else:
        whole = _faststart_mp4(tmp_path / "whole.mp4", frames=60, fps=10)
    data = whole.read_bytes()
    cut = _write(tmp_path / f"cut{whole.suffix}", data[: len(data) // 2])
    for path, truncated in ((whole, False), (cut, True)):
        source = FileSource(file_cfg(path))
        with caplog.at_level("WARNING", logger="streamseg.sources.file"):
            source.start()
            frames = drain(source)
            source.stop()
        error = source.stats().last_error
        assert source.state is SourceState.ENDED
        if not truncated:
            assert len(frames) == 60 and error is None, error
            continue
        assert 10 <= len(frames) < 60
        assert error is not None and error.startswith(f"{cut} ended at "), error
        assert "of the 6.0 s its header declares: truncated or damaged?" in error
        assert any(error in r.getMessage() for r in caplog.records)

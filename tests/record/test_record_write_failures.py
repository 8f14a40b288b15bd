"""Files that fail mid-recording: the process survives, and one failing file costs only itself.

A full disk is the real ``/dev/full`` (every write fails with ENOSPC), reached through a
symlink so that the writer's clean-up removes the link, never the device. Unwritable paths are
a regular file where a folder should be, or a folder where a file should be (the tests run as
root, where file modes do not stop writes).
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.recording import FPS, play, record_config

from streamseg.record import Recorder
from streamseg.record.clips import STALL_GRACE_S, ClipRecorder
from streamseg.record.encoder import EncoderSettings, VideoEncoder
from streamseg.record.mp4 import FragmentedMp4Writer
from streamseg.record.retention import RetentionKeeper, RetentionPolicy
from streamseg.record.segments import SegmentRecorder
from streamseg.record.worker import BackgroundWorker

RECORD_TESTS = Path(__file__).resolve().parent


def test_a_full_disk_fails_the_write_and_does_not_crash_the_process(tmp_path: Path) -> None:
    """Regression: after the header failed on a full disk, the next packet was muxed into the
    same container and libavformat crashed the process (SIGSEGV: every camera and every alert
    gone). The child process is the one that would crash."""
    assert Path("/dev/full").exists(), "this machine has no /dev/full"
    link = tmp_path / "segment.mp4"
    link.symlink_to("/dev/full")
    child = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(RECORD_TESTS)!r})
        from pathlib import Path
        from conftest import index_image
        from streamseg.record.encoder import EncoderSettings, VideoEncoder
        from streamseg.record.mp4 import FragmentedMp4Writer
        encoder = VideoEncoder(EncoderSettings(keyframe_interval_s=0.5, nominal_fps=20))
        packets = [p for i in range(12) for p in encoder.encode(index_image(i), i / 20)]
        writer = FragmentedMp4Writer(Path({str(link)!r}), encoder.format)
        for packet in packets:
            try:
                writer.write(packet)
                print("ok")
            except Exception as exc:
                print(type(exc).__name__, getattr(exc, "errno", None))
        print("closed" if writer.closed else "open")
        writer.close()
        print("done")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.split()
    assert lines[0:2] == ["OSError", str(errno.ENOSPC)]
    assert lines[2:13] == ["RuntimeError", "None"] * 5 + ["RuntimeError"]
    assert lines[-2:] == ["closed", "done"]
    assert not link.exists() and Path("/dev/full").exists()  # the link went, not the device


def test_segments_start_again_at_the_next_keyframe_after_a_failed_file(
    kit: Any, tmp_path: Path
) -> None:
    encoder = VideoEncoder(EncoderSettings(keyframe_interval_s=0.5, nominal_fps=FPS))
    packets = [p for i in range(40) for p in encoder.encode(kit.index_image(i), i / FPS)]
    assert encoder.format is not None
    segments = SegmentRecorder(tmp_path, "cam", segment_s=60.0)
    for packet in packets[:15]:
        segments.write(packet, encoder.format)
    first = segments.current_path
    assert isinstance(segments._writer, FragmentedMp4Writer)
    segments._writer._abandon()  # what a write that failed (disk full) leaves
    for packet in packets[15:]:
        segments.write(packet, encoder.format)
    segments.close()
    assert segments.finished[0] == first
    second = segments.finished[1]
    # The frames up to the next keyframe (frame 20: one every 0.5 s at 20 fps) are lost.
    assert kit.decode(second).indices == list(range(20, 40))


def test_an_unwritable_segment_folder_does_not_starve_the_clips(kit: Any, tmp_path: Path) -> None:
    """Regression: segments were written first, so their failure kept every packet from the
    clips: the event's payload named a clip that never appeared."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the segments should go")
    config = record_config(
        tmp_path,
        continuous={"segment_s": 2.0, "annotated": False},
        clips={"pre_s": 1.0, "post_s": 0.5, "annotated": False},
    )
    config.continuous.dir = str(blocker / "segments")  # type: ignore[union-attr]
    recorder = Recorder(config, lossless_streams={"cam"})
    start = kit.event("start", 43)
    end = kit.event("end", 61, started_index=43)
    play(kit, recorder, 100, kit.box_detections([]), start, end)
    stats = recorder.stats()["cam"]
    assert stats.errors > 0 and stats.clips == 1 and stats.segments == 0
    # Pre-roll from the keyframe at or before 43 - 20 frames, post-roll 10 frames past the end.
    assert kit.decode(recorder.clip_path(start)).indices == list(range(20, 72))


def test_a_clip_that_cannot_be_written_does_not_break_the_others(kit: Any, tmp_path: Path) -> None:
    """Regression: an exception for one clip skipped the clips after it and the ring, so an
    overlapping clip lost its whole live part."""
    config = record_config(tmp_path, clips={"pre_s": 1.0, "post_s": 0.5, "annotated": False})
    recorder = Recorder(config, lossless_streams={"cam"})
    ids = [f"{c * 8}-0000-0000-0000-000000000000" for c in "abc"]
    messages = [
        kit.event("start", 30, event_id=ids[0]),
        kit.event("start", 32, event_id=ids[1]),
        kit.event("end", 60, started_index=30, event_id=ids[0]),
        kit.event("end", 62, started_index=32, event_id=ids[1]),
        kit.event("start", 100, event_id=ids[2]),
        kit.event("end", 110, started_index=100, event_id=ids[2]),
    ]
    blocked = recorder.clip_path(messages[0])
    blocked.mkdir(parents=True)  # a folder where clip A's file should go
    play(kit, recorder, 140, kit.box_detections([]), *messages)
    assert recorder.stats()["cam"].errors >= 1
    assert blocked.is_dir() and not os.listdir(blocked)
    assert kit.decode(recorder.clip_path(messages[1])).indices == list(range(10, 73))
    assert kit.decode(recorder.clip_path(messages[4])).indices == list(range(80, 121))


def test_a_clip_left_open_by_a_stalled_camera_is_finished(kit: Any, tmp_path: Path) -> None:
    """Regression: a clip ended only on a packet past its post-roll, so a camera that went
    offline after the event left it open (its last frames unwritten) until the stream closed,
    while the MQTT payload already named the file."""
    now = [100.0]
    clips = ClipRecorder(
        pre_s=1.0, post_s=0.5, max_s=60.0, ring_max_bytes=10**7, clock=lambda: now[0]
    )
    encoder = VideoEncoder(EncoderSettings(keyframe_interval_s=0.5, nominal_fps=FPS))
    start, end = kit.event("start", 43), kit.event("end", 61, started_index=43)
    path = tmp_path / "clip.mp4"
    for i in range(66):  # the camera stops after frame 65; the post-roll runs to frame 71
        if i == start.frame_index:
            clips.start(start, path)
        if i == end.frame_index:
            clips.end(end)
        for packet in encoder.encode(kit.index_image(i), i / FPS):
            assert encoder.format is not None
            clips.write(packet, encoder.format)
        now[0] += 1 / FPS
    # The post-roll (0.3 s left of it) plus the grace has not passed yet: still open.
    now[0] += 0.3 + STALL_GRACE_S - 0.2
    clips.finish_stalled()
    assert clips.open_clips == [path] and not clips.finished
    now[0] += 0.3
    clips.finish_stalled()
    assert clips.open_clips == [] and clips.finished == [path]
    assert kit.decode(path).indices == list(range(20, 66))


def test_the_worker_calls_its_idle_work_while_nothing_comes() -> None:
    calls: list[float] = []
    handled: list[int] = []
    worker = BackgroundWorker(
        "idle-test", handled.append, 4, on_idle=lambda: calls.append(time.monotonic()), idle_s=0.02
    )
    time.sleep(0.2)
    worker.put(1)
    worker.close(5.0)
    assert handled == [1] and len(calls) >= 3


def test_a_segment_whose_close_fails_is_not_kept_from_retention(
    kit: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: a close that raised skipped ``retention.closed``, so the file stayed "in use"
    and retention never deleted it."""
    keeper = RetentionKeeper(tmp_path, RetentionPolicy(max_total_bytes=1), ".mp4")
    encoder = VideoEncoder(EncoderSettings(keyframe_interval_s=0.5, nominal_fps=FPS))
    segments = SegmentRecorder(tmp_path, "cam", segment_s=60.0, retention=keeper)
    for i in range(5):
        for packet in encoder.encode(kit.index_image(i), i / FPS):
            assert encoder.format is not None
            segments.write(packet, encoder.format)
    assert keeper._in_use

    def fail(self: FragmentedMp4Writer) -> None:
        raise OSError(errno.EIO, "Input/output error", str(self.path))

    monkeypatch.setattr(FragmentedMp4Writer, "close", fail)
    with pytest.raises(OSError):
        segments.close()
    assert not keeper._in_use


def test_snapshots_waiting_for_a_stuck_worker_are_bounded(
    kit: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: snapshot jobs (a frame each) queued without bound behind a worker stuck on a
    hung disk, until the process ran out of memory and took the alerts with it."""
    from streamseg.record import stream as stream_module

    release = threading.Event()
    written: list[Path] = []

    def stuck_write(path: Path, *args: Any) -> None:
        release.wait(30)
        written.append(path)

    monkeypatch.setattr(stream_module, "write_snapshot", stuck_write)
    recorder = stream_module.StreamRecorder("cam", stream_module.StreamPlan(EncoderSettings()))
    image = kit.index_image(0)
    detections = kit.box_detections([])
    total = stream_module.MAX_SNAPSHOTS_WAITING + 10
    for i in range(total):
        job = stream_module.SnapshotJob(
            kit.event("start", i), tmp_path / f"{i}.jpg", image, detections, 90
        )
        recorder.submit_control(job)
    release.set()
    recorder.close(30)
    stats = recorder.stats()
    assert stats.snapshots_dropped == total - stream_module.MAX_SNAPSHOTS_WAITING
    assert stats.snapshots == len(written) == stream_module.MAX_SNAPSHOTS_WAITING
    assert written == [tmp_path / f"{i}.jpg" for i in range(stream_module.MAX_SNAPSHOTS_WAITING)]

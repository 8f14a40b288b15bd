"""Retention deletes the oldest recordings first, by age and by total size."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from streamseg.config.record import RecordConfig
from streamseg.record import Recorder
from streamseg.record.encoder import EncoderSettings, VideoEncoder
from streamseg.record.retention import RetentionKeeper, RetentionPolicy, enforce_retention
from streamseg.record.segments import SegmentRecorder, utc_stamp

NOW = 1_800_000_000.0


def make_files(root: Path, ages_h: dict[str, float], size: int = 1000) -> dict[str, Path]:
    paths = {}
    for name, age_h in ages_h.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * size)
        os.utime(path, (NOW - age_h * 3600, NOW - age_h * 3600))
        paths[name] = path
    return paths


def remaining(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("policy", "deleted"),
    [
        # By age: everything older than 5 h, across streams.
        (RetentionPolicy(max_age_s=5 * 3600), ["a/a_1.mp4", "b/b_1.mp4"]),
        # By size: 5 files of 1000 B, cap 3000 B: the two oldest go, oldest first.
        (RetentionPolicy(max_total_bytes=3000), ["a/a_1.mp4", "b/b_1.mp4"]),
        (RetentionPolicy(max_total_bytes=2500), ["a/a_1.mp4", "b/b_1.mp4", "a/a_2.mp4"]),
        # Both: age removes one, size then one more.
        (RetentionPolicy(max_age_s=7 * 3600, max_total_bytes=3000), ["a/a_1.mp4", "b/b_1.mp4"]),
        (RetentionPolicy(), []),
    ],
)
def test_oldest_go_first(tmp_path: Path, policy: RetentionPolicy, deleted: list[str]) -> None:
    ages = {"a/a_1.mp4": 8, "b/b_1.mp4": 6, "a/a_2.mp4": 4, "b/b_2.mp4": 2, "a/a_3.mp4": 1}
    make_files(tmp_path, ages)
    gone = enforce_retention(tmp_path, policy, ".mp4", now=NOW)
    assert [str(p.relative_to(tmp_path)) for p in gone] == deleted
    assert remaining(tmp_path) == sorted(set(ages) - set(deleted))


def test_files_in_use_and_foreign_files_are_kept(tmp_path: Path) -> None:
    paths = make_files(
        tmp_path,
        {"a/a_1.mp4": 9, "a/a_2.mp4": 8, "a/notes.txt": 9, "top.mp4": 9, "a/deep/x.mp4": 9},
    )
    gone = enforce_retention(
        tmp_path, RetentionPolicy(max_age_s=3600), ".mp4", in_use=[paths["a/a_1.mp4"]], now=NOW
    )
    assert gone == [paths["a/a_2.mp4"]]
    assert "a/a_1.mp4" in remaining(tmp_path) and "a/notes.txt" in remaining(tmp_path)


def test_policy_from_config_units() -> None:
    policy = RetentionPolicy.from_config(max_age_h=2.0, max_total_mb=1.5)
    assert policy == RetentionPolicy(max_age_s=7200.0, max_total_bytes=1_500_000)
    assert not RetentionPolicy.from_config(None, None).active


def test_segments_are_cut_named_and_pruned(kit: type, tmp_path: Path) -> None:
    """A continuous recording of 3 s in 1 s segments with a cap of about two segments."""
    encoder = VideoEncoder(EncoderSettings(keyframe_interval_s=0.5, nominal_fps=20.0))
    keeper = RetentionKeeper(tmp_path, RetentionPolicy(max_total_bytes=10**9), ".mp4")
    segments = SegmentRecorder(tmp_path, "cam", segment_s=1.0, retention=keeper)
    for i in range(60):
        for packet in encoder.encode(kit.index_image(i), i / 20, wall_time=NOW + i / 20):
            assert encoder.format is not None
            segments.write(packet, encoder.format)
    current = segments.current_path
    assert current is not None
    segments.close()
    names = [p.name for p in segments.finished]
    assert names == [f"cam_{utc_stamp(NOW + s)}.mp4" for s in (0.0, 1.0, 2.0)]
    assert names == sorted(names) and current == segments.finished[-1]
    decoded = [kit.decode(p) for p in segments.finished]
    assert [d.indices for d in decoded] == [list(range(k, k + 20)) for k in (0, 20, 40)]
    # Now a size cap: the oldest segment is deleted, the newest kept.
    sizes = [p.stat().st_size for p in segments.finished]
    for age, path in zip((3, 2, 1), segments.finished, strict=True):
        os.utime(path, (NOW - age, NOW - age))
    capped = RetentionKeeper(tmp_path, RetentionPolicy(max_total_bytes=sum(sizes) - 1), ".mp4")
    assert capped.enforce(now=NOW) == [segments.finished[0]]
    assert capped.deleted == 1


def _snapshot_run(kit: Any, tmp_path: Path, events: int) -> Recorder:
    config = RecordConfig.model_validate(
        {
            "encoder": {"keyframe_interval_s": 0.5, "fps": 20.0, "queue_frames": 8},
            "snapshots": {"dir": str(tmp_path / "snapshots"), "max_total_mb": 0.001},
        }
    )
    recorder = Recorder(config, lossless_streams={"cam"})
    detections = kit.box_detections([(20, 40, 59, 79)], track_ids=[1])
    for i in range(events * 10):
        if i % 10 == 0:
            event = kit.event("start", i, event_id=f"00000000-0000-0000-0000-{i:012d}")
            recorder.on_event(recorder.with_paths(event))
        recorder.write(kit.frame(i, 20.0), detections)
    return recorder


def test_snapshot_retention_holds_for_a_few_snapshots(kit: Any, tmp_path: Path) -> None:
    """Regression: snapshot retention ran only on every 20th snapshot of a run, so a site with
    a few events a day (or daily restarts) never pruned its snapshots. Each snapshot is over
    the 1 kB cap, so none may stay."""
    recorder = _snapshot_run(kit, tmp_path, events=5)
    recorder.close()
    assert recorder.stats()["cam"].snapshots == 5
    assert not list((tmp_path / "snapshots").rglob("*.jpg"))


def test_snapshot_retention_runs_on_the_worker_not_the_analytics_thread(
    kit: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: ``Recorder.write`` (the analytics thread) globbed and statted the snapshot
    folder itself: 0.4 s per pass with 20 000 snapshots."""
    threads: list[str] = []
    enforce = RetentionKeeper.enforce

    def spy(self: RetentionKeeper, now: float | None = None) -> list[Path]:
        threads.append(threading.current_thread().name)
        return enforce(self, now)

    monkeypatch.setattr(RetentionKeeper, "enforce", spy)
    recorder = _snapshot_run(kit, tmp_path, events=3)
    recorder.close_stream("cam")  # the worker has handled everything queued
    before_close = list(threads)
    recorder.close()
    assert before_close and threading.main_thread().name not in before_close

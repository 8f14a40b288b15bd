"""The recorder end to end: segments, clips with pre/post roll, snapshots, zone state, drops."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from helpers.recording import FPS, KEYFRAME_S, play, record_config

from streamseg.config import load_pipeline_text
from streamseg.config.record import RecordConfig
from streamseg.outputs.annotate import ZONE_ACTIVE, ZONE_IDLE, ZoneDrawing
from streamseg.record import Recorder, RecordingListeners, build_recorder
from streamseg.record.encoder import EncoderSettings, VideoEncoder
from streamseg.record.zones import rule_zone_ids, zone_drawings
from streamseg.types import Frame

TRACK_1_BOX = (20, 40, 59, 79)
TRACK_2_BOX = (100, 40, 139, 79)


def test_segments_clip_and_snapshot(kit: type, tmp_path: Path) -> None:
    config = record_config(
        tmp_path,
        continuous={"segment_s": 2.0, "annotated": False},
        clips={"pre_s": 1.0, "post_s": 0.5, "annotated": True},
        snapshots={"jpeg_quality": 95},
    )
    written: list[tuple[str, Path, bool]] = []
    recorder = Recorder(
        config,
        lossless_streams={"cam"},
        on_snapshot=lambda event, path: written.append((event.type, path, path.exists())),
    )
    start = kit.event("start", 43)  # stream time 2.15 s
    end = kit.event("end", 61, started_index=43)  # 3.05 s
    detections = kit.box_detections([TRACK_1_BOX, TRACK_2_BOX], track_ids=[1, 2])
    play(kit, recorder, 100, detections, start, end)

    stats = recorder.stats()["cam"]
    assert stats.frames_received == 100 and stats.frames_dropped == 0
    assert stats.frames_encoded == {"clean": 100, "annotated": 100}
    assert (stats.segments, stats.clips, stats.snapshots, stats.errors) == (3, 1, 1, 0)

    # Continuous: three segments (cut at 2 s and 4 s), every frame once, right durations.
    segments = sorted((tmp_path / "continuous" / "cam").glob("cam_*.mp4"))
    decoded = [kit.decode(p) for p in segments]
    assert [d.indices for d in decoded] == [
        list(range(0, 40)),
        list(range(40, 80)),
        list(range(80, 100)),
    ]
    assert [d.duration_s for d in decoded] == pytest.approx([2.0, 2.0, 1.0], abs=0.06)
    assert all(d.error is None for d in decoded)

    # The clip: asked [2.15 - 1.0, 3.05 + 0.5] = [1.15, 3.55] s.
    clip_path = recorder.clip_path(start)
    assert clip_path is not None and clip_path.exists()
    assert clip_path.parent == tmp_path / "clips" / "cam"
    clip = kit.decode(clip_path)
    assert clip.error is None
    first_s, last_s = clip.indices[0] / FPS, clip.indices[-1] / FPS
    assert 1.15 - KEYFRAME_S <= first_s <= 1.15  # starts on the keyframe at or before
    assert 3.55 - KEYFRAME_S <= last_s <= 3.55 + 1e-9  # ends on the last frame it asked for
    assert (first_s, last_s) == (1.0, 3.55)
    assert clip.indices == list(range(clip.indices[0], clip.indices[-1] + 1))  # no hole
    assert clip.pts_s[0] == 0.0

    # The payloads carry the paths: the snapshot from the start, the clip from updates on.
    assert recorder.with_paths(start).clip is None
    assert recorder.with_paths(end).clip == str(clip_path)
    snapshot_path = recorder.snapshot_path(start)
    assert snapshot_path is not None and recorder.with_paths(start).snapshot == str(snapshot_path)

    assert written == [("start", snapshot_path, True)]  # told once the file existed

    # The snapshot: frame 43, track 1 (the event's) in red, track 2 not.
    image = cv2.imread(str(snapshot_path))
    assert image is not None and image.shape == (kit.HEIGHT, kit.WIDTH, 3)
    assert kit.read_index(image) == 43
    b, g, r = image[50:70, 30:50].astype(int).mean(axis=(0, 1))
    assert r > 150 and r > g + 60 and r > b + 60
    b2, g2, r2 = image[50:70, 110:130].astype(int).mean(axis=(0, 1))
    assert abs(r2 - g2) < 25 and abs(r2 - b2) < 25  # untouched grey texture


def test_zone_turns_red_while_its_rule_is_active(kit: type, tmp_path: Path) -> None:
    """The rule's zone is learned from its event; the state is drawn on the right frames."""
    zone = ZoneDrawing("yard", np.array([[10, 30], [150, 30], [150, 90], [10, 90]]))
    config = record_config(tmp_path, continuous={"segment_s": 60.0})
    recorder = Recorder(config, zones={"cam": [zone]}, lossless_streams={"cam"})
    empty = kit.box_detections([])
    for i in range(30):
        if i == 10:
            recorder.on_rule_state("cam", "intrusion", True)
            recorder.on_event(kit.event("start", 10, track_ids=()))
            recorder.on_zone_count("cam", "yard", "person", 1)
        if i == 20:
            recorder.on_rule_state("cam", "intrusion", False)
        recorder.write(kit.frame(i, FPS), empty)
    recorder.close()
    (segment,) = (tmp_path / "continuous" / "cam").glob("*.mp4")
    decoded = kit.decode(segment, keep_images=True)
    assert len(decoded.images) == 30
    # A pixel on the zone's bottom edge (2 px outline), far from its label.
    edge = [img[89:91, 60:100].astype(int).mean(axis=(0, 1)) for img in decoded.images]
    red, amber = np.array(ZONE_ACTIVE.as_bgr()), np.array(ZONE_IDLE.as_bgr())
    states = ["red" if np.abs(c - red).sum() < np.abs(c - amber).sum() else "amber" for c in edge]
    assert states == ["amber"] * 10 + ["red"] * 10 + ["amber"] * 10


class SlowEncoder(VideoEncoder):
    """A real encoder that takes 30 ms per frame (a machine far too slow for its cameras)."""

    def encode(self, image: Any, pts_s: float, wall_time: float = 0.0) -> Any:
        time.sleep(0.03)
        return super().encode(image, pts_s, wall_time)


@pytest.mark.parametrize("lossless", [False, True])
def test_slow_encoder_never_blocks_a_live_stream(kit: type, tmp_path: Path, lossless: bool) -> None:
    config = record_config(tmp_path, continuous={"annotated": False})
    recorder = Recorder(
        config,
        encoder_factory=SlowEncoder,
        lossless_streams={"cam"} if lossless else (),
    )
    detections = kit.box_detections([TRACK_1_BOX], track_ids=[1])
    recorder.write(kit.frame(0, FPS), detections)  # opens the stream (thread start)
    waits = []
    for i in range(1, 30):
        start = time.perf_counter()
        recorder.write(kit.frame(i, FPS), detections)
        waits.append(time.perf_counter() - start)
    recorder.close()
    stats = recorder.stats()["cam"]
    assert stats.frames_received == 30
    assert stats.frames_encoded["clean"] + stats.frames_dropped == 30
    (segment,) = (tmp_path / "continuous" / "cam").glob("*.mp4")
    decoded = kit.decode(segment)
    assert len(decoded.indices) == stats.frames_encoded["clean"]
    assert decoded.indices == sorted(decoded.indices)
    if lossless:
        assert stats.frames_dropped == 0 and decoded.indices == list(range(30))
        assert sum(waits) > 0.3  # the file's analytics waited for the encoder instead
        assert sorted(waits)[3 * len(waits) // 4] > 0.015  # the measure below tells them apart
    else:
        assert stats.frames_dropped >= 15  # the encoder kept up with well under half
        # ... and the analytics thread never waited for it: three writes in four took well
        # under one encode's 30 ms (a writer that waited for room would wait that long on
        # most, once the small queue is full). Not the slowest write: a busy host can stall
        # any single call.
        assert sorted(waits)[3 * len(waits) // 4] < 0.015


def test_build_recorder_from_the_pipeline_file(tmp_path: Path) -> None:
    def config(record: str) -> Any:
        return load_pipeline_text(
            "sources:\n"
            "  - {id: a, type: file, path: a.mp4}\n"
            "  - {id: b, type: file, path: b.mp4, realtime: true}\n"
            "  - {id: c, type: rtsp, url: 'rtsp://127.0.0.1/x'}\n"
            f"outputs:\n{record}"
        )

    assert build_recorder(config("  jsonl: {path: x.jsonl}\n")) is None
    assert build_recorder(config("  record: {clips: {enabled: false}}\n")) is None
    recorder = build_recorder(
        config(f"  record:\n    clips:\n    continuous: {{dir: '{tmp_path}'}}\n"),
        nominal_fps=lambda stream_id: 12.5,
    )
    assert isinstance(recorder, Recorder)
    assert recorder.lossless_streams == {"a"}  # files read frame by frame; not b, not c
    assert recorder.config.clips is not None and recorder.config.clips.pre_s == 5.0
    assert recorder.start_lead_s == 0.0  # no rules
    recorder.close()
    zones = "zones:\n  - {id: z, type: polygon, points: [[0, 0], [9, 0], [9, 9]]}\nrules:\n"
    rules = (
        "  - {id: r1, type: inside, zone: z, min_duration_s: 3}\n"
        "  - {id: r2, type: count, zone: z, above: 2, min_duration_s: 1.5}\n"
    )
    recorder = build_recorder(
        load_pipeline_text(
            "sources:\n  - {id: a, type: file, path: a.mp4}\n"
            + zones
            + rules
            + f"outputs:\n  record:\n    clips: {{dir: '{tmp_path}'}}\n"
        )
    )
    assert recorder is not None and recorder.start_lead_s == 3.0
    recorder.close()


def test_clip_pre_roll_covers_a_start_dated_back_by_the_debounce(kit: type, tmp_path: Path) -> None:
    """Regression: the ring kept only pre_s before the newest frame, but a rule's start message
    comes min_duration_s after the start it is dated to: with min_duration_s 3 the clip began
    2 s late. The recorder is told how far starts are dated back (start_lead_s)."""
    config = record_config(tmp_path, clips={"pre_s": 1.0, "post_s": 0.5, "annotated": False})
    recorder = Recorder(config, lossless_streams={"cam"}, start_lead_s=3.0)
    start = kit.event("start", 100, started_index=40)  # dated 2.0 s, sent at 5.0 s
    end = kit.event("end", 110, started_index=40)
    detections = kit.box_detections([TRACK_1_BOX], track_ids=[1])
    play(kit, recorder, 140, detections, start, end)
    clip_path = recorder.clip_path(start)
    assert clip_path is not None
    clip = kit.decode(clip_path)
    assert clip.error is None
    # Asked from 2.0 - 1.0 = 1.0 s: the keyframe at or before it, not the ring's oldest.
    assert clip.indices[0] / FPS == 1.0
    assert clip.indices[-1] / FPS == pytest.approx(110 / FPS + 0.5)


def test_encoder_settings_follow_config_and_source_rate(kit: type, tmp_path: Path) -> None:
    """The stream's encoder is built with the rate its source reports once it delivers. The
    rule engine reports states and counts when it is built, before the sources start: they are
    kept for the stream's recorder, not made into one that would not know the rate yet."""
    seen: list[EncoderSettings] = []

    def factory(settings: EncoderSettings) -> VideoEncoder:
        seen.append(settings)
        return VideoEncoder(settings)

    config = RecordConfig.model_validate(
        {"encoder": {"preset": "ultrafast", "crf": 30}, "continuous": {"dir": str(tmp_path)}}
    )
    rates: dict[str, float] = {}  # no source started yet
    recorder = Recorder(config, nominal_fps=rates.get, encoder_factory=factory)
    recorder.on_rule_state("cam", "r", True)
    recorder.on_zone_count("cam", "pen", "cow", 2)
    assert seen == []  # nothing built before a frame
    rates["cam"] = 12.5  # the source is streaming
    recorder.write(kit.frame(0, FPS), kit.box_detections([]))
    overlay = recorder._streams["cam"].overlay_now()
    recorder.close()
    assert seen == [EncoderSettings("auto", 30, "ultrafast", 2.0, 12.5, 1)]
    assert overlay.counts == {"pen": {"cow": 2}}  # the early reports were applied


PIPELINE_WITH_ZONES = """
sources:
  - {id: a, type: file, path: a.mp4}
  - {id: b, type: file, path: b.mp4}
zones:
  - {id: pen, type: polygon, units: normalized,
     points: [[0.1, 0.5], [0.9, 0.5], [0.9, 1.0], [0.1, 1.0]]}
  - {id: gate, type: line, stream: b, points: [[10, 20], [100, 20]]}
rules:
  - {id: cow-in-pen, type: inside, zone: pen, classes: [cow]}
outputs:
  record: {continuous: {dir: '%s', annotated: true}, annotation: {traces: false}}
"""


def test_zones_and_rules_come_from_the_pipeline_file(kit: type, tmp_path: Path) -> None:
    config = load_pipeline_text(PIPELINE_WITH_ZONES % tmp_path)
    assert rule_zone_ids(config) == {"cow-in-pen": "pen"}
    on_a = zone_drawings(config.zones, "a", (kit.WIDTH, kit.HEIGHT))
    assert [(z.id, z.is_line) for z in on_a] == [("pen", False)]  # the line is b's only
    assert on_a[0].points_xy.tolist() == [[16, 48], [143, 48], [143, 95], [16, 95]]
    on_b = zone_drawings(config.zones, "b", (kit.WIDTH, kit.HEIGHT))
    assert [(z.id, z.is_line) for z in on_b] == [("pen", False), ("gate", True)]

    # The recorder draws them, red while the rule is active: no event needed to know its zone.
    recorder = build_recorder(config)
    assert recorder is not None
    for i in range(6):
        recorder.on_rule_state("a", "cow-in-pen", i >= 3)
        recorder.write(kit.frame(i, FPS, stream_id="a"), kit.box_detections([]))
    recorder.close()
    (segment,) = (tmp_path / "a").glob("*.mp4")
    images = kit.decode(segment, keep_images=True).images
    edge = [img[47:50, 90:130].astype(int).mean(axis=(0, 1)) for img in images]
    red, amber = np.array(ZONE_ACTIVE.as_bgr()), np.array(ZONE_IDLE.as_bgr())
    states = ["red" if np.abs(c - red).sum() < np.abs(c - amber).sum() else "amber" for c in edge]
    assert states == ["amber"] * 3 + ["red"] * 3


class Listener:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.fail = fail

    def on_event(self, event: Any) -> None:
        self.calls.append(("event", (event.type, event.snapshot, event.clip)))
        if self.fail:
            raise RuntimeError("broken listener")

    def on_rule_state(self, stream_id: str, rule_id: str, active: bool) -> None:
        self.calls.append(("state", (stream_id, rule_id, active)))

    def on_zone_count(self, stream_id: str, zone_id: str, class_name: str, count: int) -> None:
        self.calls.append(("count", (stream_id, zone_id, class_name, count)))


def test_listeners_get_events_with_the_recording_paths(kit: type, tmp_path: Path) -> None:
    config = record_config(tmp_path, clips={}, snapshots={})
    recorder = Recorder(config)
    broken, publisher = Listener(fail=True), Listener()
    fan = RecordingListeners(recorder, [broken, publisher])
    start, end = kit.event("start", 2), kit.event("end", 4, started_index=2)
    fan.on_event(start)
    fan.on_rule_state("cam", "intrusion", True)
    fan.on_zone_count("cam", "yard", "person", 1)
    fan.on_event(end)
    recorder.close()
    snapshot, clip = str(recorder.snapshot_path(start)), str(recorder.clip_path(start))
    expected = [
        ("event", ("start", snapshot, None)),
        ("state", ("cam", "intrusion", True)),
        ("count", ("cam", "yard", "person", 1)),
        ("event", ("end", snapshot, clip)),
    ]
    assert publisher.calls == expected  # told after a listener that raised
    assert broken.calls == expected


def test_a_new_frame_size_starts_new_files(kit: type, tmp_path: Path) -> None:
    """A camera reconfigured to another resolution: the open segment ends, a new one begins."""
    config = record_config(tmp_path, continuous={"segment_s": 60.0, "annotated": False})
    recorder = Recorder(config, lossless_streams={"cam"})
    empty = kit.box_detections([])
    for i in range(20):
        size = (kit.WIDTH, kit.HEIGHT) if i < 10 else (kit.WIDTH + 32, kit.HEIGHT + 16)
        image = kit.index_image(i, *size)
        recorder.write(Frame("cam", i, i / FPS, 1_763_800_000.0 + i / FPS, image), empty)
    recorder.close()
    segments = sorted((tmp_path / "continuous" / "cam").glob("*.mp4"))
    decoded = [kit.decode(p, keep_images=True) for p in segments]
    assert [d.indices for d in decoded] == [list(range(10)), list(range(10, 20))]
    assert [d.images[0].shape[:2] for d in decoded] == [(96, 160), (112, 192)]
    assert recorder.stats()["cam"].frames_encoded == {"clean": 20}


def test_a_clip_goes_on_in_a_new_file_after_a_frame_size_change(kit: type, tmp_path: Path) -> None:
    """Regression: the size change finished every open clip, so an event from frame 20 to 80
    with the change at 50 had a clip of 10..49 and nothing after."""
    config = record_config(tmp_path, clips={"pre_s": 0.5, "post_s": 0.5, "annotated": False})
    recorder = Recorder(config, lossless_streams={"cam"})
    start = kit.event("start", 20)
    end = kit.event("end", 80, started_index=20)
    empty = kit.box_detections([])
    for i in range(120):
        for message in (start, end):
            if message.frame_index == i:
                recorder.on_event(recorder.with_paths(message))
        size = (kit.WIDTH, kit.HEIGHT) if i < 50 else (kit.WIDTH + 32, kit.HEIGHT + 16)
        image = kit.index_image(i, *size)
        recorder.write(Frame("cam", i, i / FPS, 1_763_800_000.0 + i / FPS, image), empty)
    recorder.close()
    first = recorder.clip_path(start)
    assert first is not None
    following = first.with_name(f"{first.stem}_1{first.suffix}")
    assert sorted((tmp_path / "clips" / "cam").glob("*.mp4")) == sorted([first, following])
    assert kit.decode(first).indices == list(range(10, 50))
    assert kit.decode(following).indices == list(range(50, 91))
    assert recorder.stats()["cam"].clips == 2


def test_recorder_applies_retention_as_segments_finish(kit: type, tmp_path: Path) -> None:
    """A cap smaller than two segments: each finished segment pushes the oldest out."""
    config = record_config(
        tmp_path, continuous={"segment_s": 1.0, "annotated": False, "max_total_mb": 0.02}
    )
    recorder = Recorder(config, lossless_streams={"cam"})
    for i in range(100):  # five 1 s segments
        recorder.write(kit.frame(i, FPS), kit.box_detections([]))
    recorder.close()
    assert recorder.stats()["cam"].segments == 5
    left = sorted((tmp_path / "continuous" / "cam").glob("*.mp4"))
    assert sum(p.stat().st_size for p in left) <= 20_000 and 1 <= len(left) < 5
    assert [kit.decode(p).indices[0] for p in left] == [
        100 - 20 * len(left) + 20 * k for k in range(len(left))
    ]

"""The recorder: a Sink (frames) and an EventListener (clips, snapshots, zone state) in one.

Wiring (the pipeline does this; see :func:`build_recorder`)::

    recorder = build_recorder(config, nominal_fps)          # None when nothing is recorded
    sinks.append(recorder)                                  # write / close_stream / close
    # where the rule engine's events are dispatched, per stream, before the frame's sinks:
    event = recorder.with_paths(event)                      # snapshot / clip paths in the payload
    for listener in listeners:                              # the recorder is one of them
        listener.on_event(event)

:meth:`Recorder.with_paths` is pure: the paths follow from the event (stream, start time, rule,
event id), so calling it before every listener (MQTT included) puts the same paths in every
payload, in any order, without the recorder having to see the event first. The files appear
later, off the analytics thread: the snapshot within milliseconds, the clip ``post_s`` after the
event's end (playable meanwhile: fragmented MP4).

Per frame the order must be the pipeline's: the rule engine's calls for frame N
(``on_rule_state``, ``on_zone_count``, ``on_event``) before ``write`` of frame N. Then a clip
sees frame N, a snapshot is of frame N, and the zone drawn on frame N has frame N's state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import supervision as sv

from streamseg.config.pipeline import PipelineConfig
from streamseg.config.record import (
    ClipsConfig,
    ContinuousRecordConfig,
    RecordConfig,
    SnapshotsConfig,
)
from streamseg.config.sources import FileSourceConfig
from streamseg.outputs.annotate import FrameAnnotator, ZoneDrawing
from streamseg.record.clips import CLIP_SUFFIX, ClipRecorder, clip_file_name
from streamseg.record.encoder import EncoderSettings, VideoEncoder, pick_encoder
from streamseg.record.retention import RetentionKeeper, RetentionPolicy
from streamseg.record.segments import SEGMENT_SUFFIX, SegmentRecorder
from streamseg.record.snapshots import SNAPSHOT_SUFFIX
from streamseg.record.stream import (
    ClipEnd,
    ClipStart,
    EncoderFactory,
    RetentionJob,
    SnapshotJob,
    StreamPlan,
    StreamRecorder,
    StreamStats,
)
from streamseg.record.zones import (
    ZoneProvider,
    config_zone_provider,
    fixed_zone_provider,
    rule_zone_ids,
)
from streamseg.rules.events import Event
from streamseg.rules.lifecycle import max_start_lead_s
from streamseg.types import Frame

logger = logging.getLogger(__name__)

DEFAULT_FPS = 25.0
"""Rate declared in files when neither the config nor the source gives one."""
SNAPSHOT_RETENTION_EVERY = 20
"""Snapshot retention runs after this many snapshots (they are small and many), ..."""
SNAPSHOT_RETENTION_WAIT_S = 60.0
"""... or on the first snapshot this long after the last pass (and on the first snapshot of a
run, and at close), so a site with few events still ages its snapshots out. It runs on the
stream's worker, never on the analytics thread."""


def _keeper(
    section: ContinuousRecordConfig | ClipsConfig | SnapshotsConfig | None, suffix: str
) -> RetentionKeeper | None:
    """The retention of one section's folder, or None when it keeps everything."""
    if section is None:
        return None
    policy = RetentionPolicy.from_config(section.max_age_h, section.max_total_mb)
    return RetentionKeeper(Path(section.dir), policy, suffix) if policy.active else None


@dataclass(frozen=True)
class _PendingSnapshot:
    event: Event
    path: Path


class Recorder:
    """Continuous segments, event clips and snapshots for every stream of a pipeline.

    Thread-safe: each stream's analytics thread calls ``write`` and the listener methods for
    its own stream; each stream records on its own worker thread.

    Args:
        config: the ``outputs.record`` section.
        nominal_fps: ``nominal_fps(stream_id)``, the source's declared rate when known (used
            when ``encoder.fps`` is not set).
        zones: the zones and lines to draw (when ``annotation.zones``): a
            :data:`~streamseg.record.zones.ZoneProvider` (``config_zone_provider(config)``
            reads the pipeline's ``zones``), or stream id -> zones in frame pixels.
        rule_zones: rule id -> the zone it watches, so a zone turns red while its rule is
            active; also learned from events' ``zone_id``.
        lossless_streams: streams whose frames wait for the encoder rather than being dropped
            (file sources read frame by frame); others never wait.
        encoder_factory: builds each encoder (tests inject slow ones).
        close_timeout_s: how long ``close`` waits for each stream to finish its files.
        on_snapshot: called with ``(event, path)`` once an event's snapshot file exists, on the
            stream's recording thread (e.g. to publish the JPEG over MQTT: at ``on_event`` time
            of the ``start`` message the file cannot exist yet). Must not block for long.
        start_lead_s: how long before its ``start`` message an event can be dated
            (:func:`~streamseg.rules.lifecycle.max_start_lead_s`; ``build_recorder`` takes it
            from the rules): the clips' pre-event ring keeps that much more.
    """

    def __init__(
        self,
        config: RecordConfig,
        nominal_fps: Callable[[str], float | None] | None = None,
        zones: ZoneProvider | Mapping[str, Sequence[ZoneDrawing]] | None = None,
        rule_zones: Mapping[str, str] | None = None,
        lossless_streams: Collection[str] = (),
        encoder_factory: EncoderFactory = VideoEncoder,
        close_timeout_s: float = 60.0,
        on_snapshot: Callable[[Event, Path], None] | None = None,
        start_lead_s: float = 0.0,
    ) -> None:
        self.config = config
        self.start_lead_s = start_lead_s
        self.on_snapshot = on_snapshot
        self.nominal_fps = nominal_fps
        self.zones: ZoneProvider = zones if callable(zones) else fixed_zone_provider(zones or {})
        self.lossless_streams = frozenset(lossless_streams)
        self.encoder_factory = encoder_factory
        self.close_timeout_s = close_timeout_s
        self.encoder_name = pick_encoder(config.encoder.codec)  # fail at start-up
        self._rule_zones: dict[str, str] = dict(rule_zones or {})
        self._streams: dict[str, StreamRecorder] = {}
        # Rule states and zone counts told before a stream's first frame (the rule engine
        # reports them when it is built), applied when its recorder is made: made then, it
        # would not know the stream's frame rate yet.
        self._early: dict[str, list[Callable[[StreamRecorder], None]]] = {}
        self._pending: dict[str, list[_PendingSnapshot]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._segment_retention = _keeper(config.continuous, SEGMENT_SUFFIX)
        self._clip_retention = _keeper(config.clips, CLIP_SUFFIX)
        self._snapshot_retention = _keeper(config.snapshots, SNAPSHOT_SUFFIX)
        self._snapshots_since_retention = 0
        self._snapshot_retention_at: float | None = None

    # ------------------------------------------------------------------ paths
    def clip_path(self, event: Event) -> Path | None:
        """Where the clip of ``event`` is written (None when clips are off)."""
        clips = self.config.clips
        if clips is None or not clips.enabled:
            return None
        return Path(clips.dir) / event.stream_id / clip_file_name(event)

    def snapshot_path(self, event: Event) -> Path | None:
        """Where the snapshot of ``event`` is written (None when snapshots are off)."""
        snapshots = self.config.snapshots
        if snapshots is None or not snapshots.enabled:
            return None
        return Path(snapshots.dir) / event.stream_id / clip_file_name(event, SNAPSHOT_SUFFIX)

    def with_paths(self, event: Event) -> Event:
        """``event`` with its snapshot path (every message) and clip path (``update`` and
        ``end``) set; pure, so any listener may call it in any order."""
        snapshot = self.snapshot_path(event)
        clip = self.clip_path(event) if event.type != "start" else None
        return event.with_paths(
            snapshot=None if snapshot is None else str(snapshot),
            clip=None if clip is None else str(clip),
        )

    # ------------------------------------------------------------------ streams
    def _stream(self, stream_id: str) -> StreamRecorder | None:
        """The stream's recorder, made on first use; None once the recorder is closed."""
        with self._lock:
            stream = self._streams.get(stream_id)
            if stream is None:
                if self._closed:
                    logger.warning("recorder closed: %s is not recorded", stream_id)
                    return None
                stream = StreamRecorder(
                    stream_id, self._plan(stream_id), self.encoder_factory, self._zone_of_rule
                )
                self._streams[stream_id] = stream
                for apply in self._early.pop(stream_id, ()):
                    apply(stream)
            return stream

    def _overlay_update(self, stream_id: str, apply: Callable[[StreamRecorder], None]) -> None:
        """Apply an overlay update to the stream's recorder, or keep it for when it is made."""
        with self._lock:
            stream = self._streams.get(stream_id)
            if stream is None:
                self._early.setdefault(stream_id, []).append(apply)
                return
        apply(stream)

    def _plan(self, stream_id: str) -> StreamPlan:
        config = self.config
        enc = config.encoder
        declared = self.nominal_fps(stream_id) if self.nominal_fps else None
        settings = EncoderSettings(
            codec=enc.codec,
            crf=enc.crf,
            preset=enc.preset,
            keyframe_interval_s=enc.keyframe_interval_s,
            nominal_fps=enc.fps or declared or DEFAULT_FPS,
            threads=enc.threads,
        )
        plan = StreamPlan(
            settings=settings,
            queue_frames=enc.queue_frames,
            lossless=stream_id in self.lossless_streams,
        )
        continuous = config.continuous
        if continuous is not None and continuous.enabled:
            directory, segment_s = continuous.dir, continuous.segment_s
            keeper = self._segment_retention
            plan.segments = (
                continuous.annotated,
                lambda: SegmentRecorder(directory, stream_id, segment_s, keeper),
            )
        clips = config.clips
        if clips is not None and clips.enabled:
            pre, post, longest = clips.pre_s, clips.post_s, clips.max_s
            ring_bytes = int(clips.ring_max_mb * 1e6)
            clip_keeper, lead = self._clip_retention, self.start_lead_s
            plan.clips = (
                clips.annotated,
                lambda: ClipRecorder(pre, post, longest, ring_bytes, clip_keeper, lead),
            )
        annotated = (plan.segments is not None and plan.segments[0]) or (
            plan.clips is not None and plan.clips[0]
        )
        if annotated:
            draw, zones = config.annotation, self.zones

            def annotator(resolution_wh: tuple[int, int]) -> FrameAnnotator:
                return FrameAnnotator(
                    masks=draw.masks,
                    boxes=draw.boxes,
                    labels=draw.labels,
                    traces=draw.traces,
                    trace_length=draw.trace_length,
                    zones=zones(stream_id, resolution_wh) if draw.zones else (),
                )

            plan.annotator = annotator
        return plan

    def _zone_of_rule(self, rule_id: str) -> str | None:
        with self._lock:
            return self._rule_zones.get(rule_id)

    # ------------------------------------------------------------------ Sink
    def write(self, frame: Frame, detections: sv.Detections) -> None:
        """Queue one frame for recording, and the snapshots due on it (returns at once, or
        waits for room only on a lossless stream)."""
        stream = self._stream(frame.stream_id)
        if stream is None:
            return
        snapshots = self.config.snapshots
        with self._lock:
            pending = self._pending.get(frame.stream_id)
            due = [p for p in pending or () if p.event.frame_index <= frame.index]
            if pending and due:
                self._pending[frame.stream_id] = [p for p in pending if p not in due]
        for item in due:
            assert snapshots is not None
            stream.submit_control(
                SnapshotJob(
                    item.event,
                    item.path,
                    frame.image,
                    detections,
                    snapshots.jpeg_quality,
                    self.on_snapshot,
                )
            )
        if due and self._snapshot_retention is not None:
            now = time.monotonic()
            with self._lock:
                self._snapshots_since_retention += len(due)
                last = self._snapshot_retention_at
                run = (
                    last is None
                    or self._snapshots_since_retention >= SNAPSHOT_RETENTION_EVERY
                    or now - last >= SNAPSHOT_RETENTION_WAIT_S
                )
                if run:
                    self._snapshots_since_retention = 0
                    self._snapshot_retention_at = now
            if run:
                stream.submit_control(RetentionJob(self._snapshot_retention))
        stream.submit_frame(frame.image, detections, frame.pts_s, frame.wall_time)

    def close_stream(self, stream_id: str) -> None:
        """Record what is queued for the stream and finish its files."""
        with self._lock:
            stream = self._streams.get(stream_id)
            left = self._pending.pop(stream_id, [])
        if left:
            logger.warning("%s: %d snapshot(s) never got their frame", stream_id, len(left))
        if stream is not None:
            stream.close(self.close_timeout_s)

    def close(self) -> None:
        """Finish every stream's files (idempotent)."""
        with self._lock:
            self._closed = True
            streams = list(self._streams.values())
        for stream in streams:
            stream.close(self.close_timeout_s)
        if self._snapshot_retention is not None and streams:
            self._snapshot_retention.enforce()
        for stream_id, stats in self.stats().items():
            failed = f", {stats.frames_failed} not written" if stats.frames_failed else ""
            logger.log(
                logging.WARNING if stats.frames_failed else logging.INFO,
                "recorder %s: %d frames, %d dropped%s, %d segment(s), %d clip(s), %d snapshot(s)",
                stream_id,
                stats.frames_received,
                stats.frames_dropped,
                failed,
                stats.segments,
                stats.clips,
                stats.snapshots,
            )

    # ------------------------------------------------------------------ EventListener
    def on_event(self, event: Event) -> None:
        """Start or end the event's clip; queue its snapshot for the event's frame."""
        if event.zone_id is not None:
            with self._lock:
                self._rule_zones.setdefault(event.rule_id, event.zone_id)
        if event.type == "start":
            clip = self.clip_path(event)
            snapshot = self.snapshot_path(event)
            if clip is None and snapshot is None:
                return
            stream = self._stream(event.stream_id)
            if stream is None:
                return
            if clip is not None:
                stream.submit_control(ClipStart(event, clip))
            if snapshot is not None:
                with self._lock:
                    self._pending.setdefault(event.stream_id, []).append(
                        _PendingSnapshot(event, snapshot)
                    )
        elif event.type == "end" and self.clip_path(event) is not None:
            stream = self._stream(event.stream_id)
            if stream is not None:
                stream.submit_control(ClipEnd(event))

    def on_rule_state(self, stream_id: str, rule_id: str, active: bool) -> None:
        """Remember which rules are active (their zones are drawn red)."""
        self._overlay_update(stream_id, lambda stream: stream.set_rule_state(rule_id, active))

    def on_zone_count(self, stream_id: str, zone_id: str, class_name: str, count: int) -> None:
        """Remember a zone's count (drawn in its label)."""
        self._overlay_update(
            stream_id, lambda stream: stream.set_zone_count(zone_id, class_name, count)
        )

    # ------------------------------------------------------------------ figures
    def stats(self) -> dict[str, StreamStats]:
        """Per stream: frames received, dropped, encoded; files finished."""
        with self._lock:
            streams = dict(self._streams)
        return {stream_id: stream.stats() for stream_id, stream in streams.items()}

    @property
    def frames_dropped(self) -> dict[str, int]:
        """Frames per stream that are not in its recording: dropped because its recorder fell
        behind, or lost because writing failed (a full or unwritable disk)."""
        return {
            stream_id: stats.frames_dropped + stats.frames_failed
            for stream_id, stats in self.stats().items()
        }


def lossless_stream_ids(config: PipelineConfig) -> set[str]:
    """Streams read frame by frame (file sources without ``realtime``): their frames wait for
    the encoder instead of being dropped (DESIGN.md: on full, block for files)."""
    return {
        source.id
        for source in config.sources
        if isinstance(source, FileSourceConfig) and not source.realtime
    }


def build_recorder(
    config: PipelineConfig,
    nominal_fps: Callable[[str], float | None] | None = None,
    zones: ZoneProvider | Mapping[str, Sequence[ZoneDrawing]] | None = None,
    rule_zones: Mapping[str, str] | None = None,
    on_snapshot: Callable[[Event, Path], None] | None = None,
) -> Recorder | None:
    """The pipeline's recorder, or None when ``outputs.record`` records nothing.

    Args:
        config: the validated pipeline.
        nominal_fps: ``nominal_fps(stream_id)``, the source's declared rate when known
            (``Pipeline._nominal_fps``).
        zones: the zones to draw; None draws the pipeline's ``zones`` section.
        rule_zones: rule id -> the zone it watches (zones turn red while a rule is active);
            None takes it from the pipeline's ``rules`` section.
        on_snapshot: called with ``(event, path)`` once a snapshot file exists (see
            :class:`Recorder`).

    Returns:
        A :class:`Recorder` to add as a sink and as an event listener (see the module
        docstring for the order), or None.
    """
    record = config.outputs.record
    if record is None or not (record.continuous_on or record.clips_on or record.snapshots_on):
        return None
    return Recorder(
        record,
        nominal_fps=nominal_fps,
        zones=config_zone_provider(config) if zones is None else zones,
        rule_zones=rule_zone_ids(config) if rule_zones is None else rule_zones,
        lossless_streams=lossless_stream_ids(config),
        on_snapshot=on_snapshot,
        start_lead_s=max_start_lead_s(config.rules),
    )

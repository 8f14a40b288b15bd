"""Everything one stream records, run on that stream's worker thread.

A stream has one encoder per variant it needs (annotated and/or clean: usually one). Each
encoder's packets go to the variant's consumers: the continuous :class:`SegmentRecorder` and
the :class:`ClipRecorder` (which keeps the pre-event ring). Snapshots are JPEGs written on the
same thread. The analytics thread only queues work (:class:`FrameJob` and control items) and
keeps the zone overlay state, which it copies into each frame's job so the drawing matches the
frame even though it happens later.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import supervision as sv

from streamseg.outputs.annotate import FrameAnnotator, OverlayState
from streamseg.record.clips import ClipRecorder
from streamseg.record.encoder import EncodedPacket, EncoderSettings, VideoEncoder
from streamseg.record.retention import RetentionKeeper
from streamseg.record.segments import SegmentRecorder
from streamseg.record.snapshots import write_snapshot
from streamseg.record.worker import BackgroundWorker, WorkerStats
from streamseg.rules.events import Event

logger = logging.getLogger(__name__)

EncoderFactory = Callable[[EncoderSettings], VideoEncoder]
"""Builds a stream's encoder (tests pass slow or failing ones)."""


@dataclass(frozen=True)
class FrameJob:
    """One frame to record.

    Attributes:
        image: (H, W, 3) uint8 BGR, the clean frame (never modified).
        detections: its detections (frame pixels).
        pts_s: stream seconds.
        wall_time: UNIX seconds when it was decoded.
        overlay: zone state to draw; None when nothing is annotated.
    """

    image: npt.NDArray[np.uint8]
    detections: sv.Detections
    pts_s: float
    wall_time: float
    overlay: OverlayState | None


@dataclass(frozen=True)
class ClipStart:
    """Open the clip of an event (queued by the event's ``start``)."""

    event: Event
    path: Path


@dataclass(frozen=True)
class ClipEnd:
    """An event ended: its clip takes its post-roll and closes (queued by ``end``)."""

    event: Event


@dataclass(frozen=True)
class SnapshotJob:
    """Write the snapshot of an event from its frame.

    Attributes:
        event: the event (its ``track_ids`` are highlighted).
        path: the JPEG to write.
        image: (H, W, 3) uint8 BGR, the event's frame.
        detections: that frame's detections.
        jpeg_quality: 1-100.
        on_written: called with (event, path) once the file exists (worker thread).
    """

    event: Event
    path: Path
    image: npt.NDArray[np.uint8]
    detections: sv.Detections
    jpeg_quality: int
    on_written: Callable[[Event, Path], None] | None = None


@dataclass(frozen=True)
class RetentionJob:
    """Apply a folder's retention (queued after snapshots: globbing and statting a folder of
    many thousand files takes a while, which the analytics thread must not wait for)."""

    keeper: RetentionKeeper


WorkItem = FrameJob | ClipStart | ClipEnd | SnapshotJob | RetentionJob

MAX_SNAPSHOTS_WAITING = 32
"""Snapshot jobs (a frame each) allowed to wait for a stream's worker; more are dropped."""


@dataclass
class StreamPlan:
    """What one stream records.

    Attributes:
        settings: encoder settings (shared by both variants).
        segments: (annotated flag, segment recorder factory) for continuous recording, or
            None.
        clips: (annotated flag, clip recorder factory) for event clips, or None.
        annotator: builds the stream's annotator from its frame size (width, height) on the
            first frame (zones in normalized units need it); None when nothing is annotated.
        queue_frames: frames allowed to wait for the worker.
        lossless: frames wait for room instead of being dropped.
    """

    settings: EncoderSettings
    segments: tuple[bool, Callable[[], SegmentRecorder]] | None = None
    clips: tuple[bool, Callable[[], ClipRecorder]] | None = None
    annotator: Callable[[tuple[int, int]], FrameAnnotator] | None = None
    queue_frames: int = 16
    lossless: bool = False


@dataclass
class _Track:
    """One encoder of a stream and the consumers of its packets."""

    annotated: bool
    make_encoder: Callable[[], VideoEncoder]
    encoder: VideoEncoder = field(init=False)
    segments: SegmentRecorder | None = None
    clips: ClipRecorder | None = None
    encoded_before: int = 0

    def __post_init__(self) -> None:
        self.encoder = self.make_encoder()

    @property
    def frames_encoded(self) -> int:
        """Frames encoded over every encoder this track had."""
        return self.encoded_before + self.encoder.frames_encoded

    def push(self, image: npt.NDArray[np.uint8], pts_s: float, wall_time: float) -> None:
        fmt = self.encoder.format
        if fmt is not None and (image.shape[1] & ~1, image.shape[0] & ~1) != (
            fmt.width,
            fmt.height,
        ):
            # The camera changed resolution (e.g. reconfigured, then reconnected): a file
            # cannot, so finish the current ones and start afresh at the new size; the clips
            # of events still open go on in new files.
            logger.warning(
                "frame size changed from %dx%d to %dx%d: starting new files",
                fmt.width,
                fmt.height,
                image.shape[1],
                image.shape[0],
            )
            self.close(keep_clips=True)
            self.encoded_before += self.encoder.frames_encoded
            self.encoder = self.make_encoder()
        self._route(self.encoder.encode(image, pts_s, wall_time))

    def _route(self, packets: Iterable[EncodedPacket]) -> None:
        """Hand packets to every consumer: one that fails (its folder unwritable, say) must
        not keep them from the others; the first failure is raised after, to be reported."""
        failed: Exception | None = None
        for packet in packets:
            fmt = self.encoder.format
            assert fmt is not None  # set by the encode that made this packet
            for consumer in (self.segments, self.clips):
                if consumer is None:
                    continue
                try:
                    consumer.write(packet, fmt)
                except Exception as exc:
                    failed = failed or exc
        if failed is not None:
            raise failed

    def close(self, keep_clips: bool = False) -> None:
        """Drain the encoder and finish every file (the track can go on after, with new files);
        with ``keep_clips`` the open clips go on in new files (:meth:`ClipRecorder.new_files`).
        A failure is raised once everything that could be finished is."""
        steps: list[Callable[[], None]] = [lambda: self._route(self.encoder.flush())]
        if self.segments is not None:
            steps.append(self.segments.close)
        if self.clips is not None:
            steps.append(self.clips.new_files if keep_clips else self.clips.close)
        failed: Exception | None = None
        for step in steps:
            try:
                step()
            except Exception as exc:
                failed = failed or exc
        if failed is not None:
            raise failed


@dataclass(frozen=True)
class StreamStats:
    """Figures of one stream's recording.

    Attributes:
        frames_received: frames handed to the recorder.
        frames_dropped: frames dropped because the worker fell behind (or after close).
        frames_encoded: frames encoded, per variant (``annotated`` / ``clean``).
        segments: finished segment files.
        clips: finished clip files.
        snapshots: snapshot files written.
        errors: work items that failed (logged).
        snapshots_dropped: snapshots not taken because too many waited for the worker.
        frames_failed: frames not in the continuous recording because writing failed (a full
            or unwritable disk): the frame that failed and those up to the next keyframe that
            opened a segment again.
    """

    frames_received: int
    frames_dropped: int
    frames_encoded: dict[str, int]
    segments: int
    clips: int
    snapshots: int
    errors: int
    snapshots_dropped: int = 0
    frames_failed: int = 0


@dataclass
class _Overlay:
    """Zone state of one stream as the rule engine reports it (analytics thread side)."""

    active_rules: set[str] = field(default_factory=set)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


class StreamRecorder:
    """Records one stream: queues work from the analytics thread, does it on its own thread.

    Args:
        stream_id: the source id.
        plan: what to record.
        encoder_factory: builds each variant's encoder.
        zone_of_rule: the zone a rule watches (None when unknown), for drawing active zones.
    """

    def __init__(
        self,
        stream_id: str,
        plan: StreamPlan,
        encoder_factory: EncoderFactory = VideoEncoder,
        zone_of_rule: Callable[[str], str | None] = lambda rule_id: None,
    ) -> None:
        self.stream_id = stream_id
        self.plan = plan
        self._zone_of_rule = zone_of_rule
        self.frames_received = 0
        self.snapshots_written = 0
        self.snapshots_dropped = 0
        self._snapshots_waiting = 0
        self._snapshot_lock = threading.Lock()
        self._tracks: dict[bool, _Track] = {}
        if plan.segments is not None:
            annotated, make_segments = plan.segments
            track = self._track(annotated, encoder_factory)
            track.segments = make_segments()
        if plan.clips is not None:
            annotated, make_clips = plan.clips
            track = self._track(annotated, encoder_factory)
            track.clips = make_clips()
        self._overlay = _Overlay()
        self._overlay_lock = threading.Lock()
        self._annotator: FrameAnnotator | None = None
        self._annotator_wh = (0, 0)
        self.worker: BackgroundWorker[WorkItem] = BackgroundWorker(
            f"record-{stream_id}",
            self._handle,
            plan.queue_frames,
            on_close=self._close_tracks,
            on_idle=self._finish_stalled_clips if plan.clips is not None else None,
        )

    def _track(self, annotated: bool, encoder_factory: EncoderFactory) -> _Track:
        if annotated not in self._tracks:
            settings = self.plan.settings
            self._tracks[annotated] = _Track(annotated, lambda: encoder_factory(settings))
        return self._tracks[annotated]

    @property
    def annotates(self) -> bool:
        """Some variant is annotated."""
        return True in self._tracks

    # ------------------------------------------------------------ analytics thread
    def submit_frame(
        self, image: npt.NDArray[np.uint8], detections: sv.Detections, pts_s: float, wall: float
    ) -> bool:
        """Queue a frame; returns False if it was dropped."""
        self.frames_received += 1
        if not self._tracks:
            return True
        overlay = self.overlay_now() if self.annotates else None
        job = FrameJob(image, detections, pts_s, wall, overlay)
        return self.worker.put(job, wait=self.plan.lossless)

    def submit_control(self, item: ClipStart | ClipEnd | SnapshotJob | RetentionJob) -> None:
        """Queue a clip start/end, a snapshot or a retention pass (ignored after close).

        Clip starts and ends are never dropped. A snapshot is dropped (counted, logged) when
        :data:`MAX_SNAPSHOTS_WAITING` are waiting already: each holds a whole frame, and a
        worker stuck on a hung disk would otherwise gather them until the process ran out of
        memory, taking the alerts with it.
        """
        if isinstance(item, SnapshotJob):
            with self._snapshot_lock:
                if self._snapshots_waiting >= MAX_SNAPSHOTS_WAITING:
                    self.snapshots_dropped += 1
                    dropped = self.snapshots_dropped
                else:
                    self._snapshots_waiting += 1
                    dropped = 0
            if dropped:
                if dropped == 1 or dropped % 100 == 0:
                    logger.warning(
                        "%s: %d snapshots wait for the recording thread (is its disk stuck?); "
                        "snapshot %s dropped (%d so far)",
                        self.stream_id,
                        MAX_SNAPSHOTS_WAITING,
                        item.path,
                        dropped,
                    )
                return
        try:
            self.worker.put_control(item)
        except RuntimeError:
            if isinstance(item, SnapshotJob):
                self._snapshot_done()
            logger.warning("%s: recorder closed, %s ignored", self.stream_id, type(item).__name__)

    def _snapshot_done(self) -> None:
        with self._snapshot_lock:
            self._snapshots_waiting -= 1

    def set_rule_state(self, rule_id: str, active: bool) -> None:
        """A rule turned (in)active on this stream."""
        with self._overlay_lock:
            if active:
                self._overlay.active_rules.add(rule_id)
            else:
                self._overlay.active_rules.discard(rule_id)

    def set_zone_count(self, zone_id: str, class_name: str, count: int) -> None:
        """A zone's count of a class changed."""
        with self._overlay_lock:
            self._overlay.counts.setdefault(zone_id, {})[class_name] = count

    def overlay_now(self) -> OverlayState:
        """An immutable copy of the zone state, with the zones of active rules marked active."""
        with self._overlay_lock:
            rules = list(self._overlay.active_rules)
            counts = {zone: dict(by_class) for zone, by_class in self._overlay.counts.items()}
        zones = (self._zone_of_rule(rule) for rule in rules)
        return OverlayState(
            counts=counts, active_zones=frozenset(z for z in zones if z is not None)
        )

    # ------------------------------------------------------------ worker thread
    def _handle(self, item: WorkItem) -> None:
        if isinstance(item, FrameJob):
            self._record_frame(item)
        elif isinstance(item, ClipStart):
            clips = self._clips()
            if clips is not None:
                clips.start(item.event, item.path)
        elif isinstance(item, ClipEnd):
            clips = self._clips()
            if clips is not None:
                clips.end(item.event)
        elif isinstance(item, RetentionJob):
            item.keeper.enforce()
        else:
            try:
                write_snapshot(
                    item.path, item.image, item.detections, item.event.track_ids, item.jpeg_quality
                )
            finally:
                self._snapshot_done()
            self.snapshots_written += 1
            if item.on_written is not None:
                item.on_written(item.event, item.path)

    def _finish_stalled_clips(self) -> None:
        """The worker had nothing to do for a while: finish clips a stalled source left open."""
        clips = self._clips()
        if clips is not None:
            clips.finish_stalled()

    def _clips(self) -> ClipRecorder | None:
        if self.plan.clips is None:
            return None
        return self._tracks[self.plan.clips[0]].clips

    def _record_frame(self, job: FrameJob) -> None:
        annotated: npt.NDArray[np.uint8] | None = None
        if self.annotates:
            height, width = job.image.shape[:2]
            if self._annotator is None or self._annotator_wh != (width, height):
                # First frame, or a new resolution: normalized zones move with it.
                assert self.plan.annotator is not None  # planned with an annotated variant
                self._annotator = self.plan.annotator((width, height))
                self._annotator_wh = (width, height)
            annotated = self._annotator.annotate(job.image, job.detections, job.overlay)
        for track in self._tracks.values():
            image = annotated if track.annotated and annotated is not None else job.image
            track.push(image, job.pts_s, job.wall_time)

    def _close_tracks(self) -> None:
        for track in self._tracks.values():
            try:
                track.close()
            except Exception:
                logger.exception("%s: finishing the recording failed", self.stream_id)

    # ------------------------------------------------------------ any thread
    def close(self, timeout: float | None = None) -> bool:
        """Record what is queued, finish every file, stop the thread (idempotent)."""
        return self.worker.close(timeout)

    def stats(self) -> StreamStats:
        """The figures now (approximate while the worker runs)."""
        worker: WorkerStats = self.worker.stats()
        segments = sum(
            len(t.segments.finished) for t in self._tracks.values() if t.segments is not None
        )
        clips = sum(len(t.clips.finished) for t in self._tracks.values() if t.clips is not None)
        return StreamStats(
            frames_received=self.frames_received,
            frames_dropped=worker.dropped,
            frames_encoded={
                ("annotated" if a else "clean"): t.frames_encoded for a, t in self._tracks.items()
            },
            segments=segments,
            clips=clips,
            snapshots=self.snapshots_written,
            errors=worker.errors,
            snapshots_dropped=self.snapshots_dropped,
            # Each track records the same frames (annotated, clean): one count of them.
            frames_failed=max(
                (t.segments.frames_lost for t in self._tracks.values() if t.segments is not None),
                default=0,
            ),
        )

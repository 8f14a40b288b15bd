"""Event clips of one stream: pre-roll from the ring, then live packets until after the end.

A clip covers ``[start - pre_s, end + post_s]`` in stream time. It opens when the event starts,
with the ring's packets from the last keyframe at or before ``start - pre_s`` (so it begins up to
one keyframe interval early, or at the oldest keyframe the ring still holds), and takes every
live packet until the first one at or after ``end + post_s``. An event longer than ``max_s`` gets
a clip cut at ``max_s``. Clips are remuxed, never re-encoded, and written as fragmented MP4, so
a clip being written is already playable.

Names are decided from the event alone (see :func:`clip_file_name`), so the event's payload can
carry the path before the file is finished.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from streamseg.record.encoder import EncodedPacket, StreamFormat
from streamseg.record.mp4 import FragmentedMp4Writer
from streamseg.record.retention import RetentionKeeper
from streamseg.record.ring import PacketRing
from streamseg.record.segments import iso_utc, unique_path, utc_stamp
from streamseg.rules.events import Event

logger = logging.getLogger(__name__)

CLIP_SUFFIX = ".mp4"
_EPS_S = 1e-6

STALL_GRACE_S = 5.0
"""A clip whose post-roll should have ended this long ago in wall time, with no packet since,
is finished with what it has (:meth:`ClipRecorder.finish_stalled`)."""

START_LEAD_SLACK_S = 1.0
"""History the pre-event ring keeps beyond ``pre_s`` and the rules' start lead: the frame
interval by which a debounced start can exceed ``min_duration_s`` (a frame a second at least)."""


def clip_file_name(event: Event, suffix: str = CLIP_SUFFIX) -> str:
    """``<stream>_<UTC start>_<rule>_<event id><suffix>``: one name for every message of it."""
    stamp = utc_stamp(event.started_at)
    return f"{event.stream_id}_{stamp}_{event.rule_id}_{event.event_id}{suffix}"


@dataclass
class _Clip:
    event_id: str
    path: Path
    wanted_start_s: float
    metadata: dict[str, str]
    stop_s: float | None = None
    writer: FragmentedMp4Writer | None = field(default=None, repr=False)


class ClipRecorder:
    """Writes the clips of one stream from one encoder's packets.

    Call :meth:`start` / :meth:`end` in the order the events happened, interleaved with
    :meth:`write` for each packet (all on the stream's worker thread).

    Args:
        pre_s: seconds before the event's start.
        post_s: seconds after the event's end.
        max_s: longest clip in seconds.
        ring_max_bytes: memory cap of the pre-event ring.
        retention: applied after each finished clip.
        start_lead_s: how long before its ``start`` message an event's ``started_pts`` can be
            (:func:`streamseg.rules.lifecycle.max_start_lead_s`): the ring keeps ``pre_s`` plus
            this plus :data:`START_LEAD_SLACK_S`, so the pre-roll is whole when the message
            comes. With only ``pre_s``, an ``inside`` rule with ``min_duration_s: 3`` got clips
            starting 2 s late.
        clock: monotonic seconds (tests), to tell a stalled source (:meth:`finish_stalled`).
    """

    def __init__(
        self,
        pre_s: float,
        post_s: float,
        max_s: float,
        ring_max_bytes: int,
        retention: RetentionKeeper | None = None,
        start_lead_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pre_s = pre_s
        self.post_s = post_s
        self.max_s = max_s
        keep_s = pre_s + start_lead_s + START_LEAD_SLACK_S
        self.ring = PacketRing(keep_s=keep_s, max_bytes=ring_max_bytes)
        self.retention = retention
        self.finished: list[Path] = []
        self._open: dict[str, _Clip] = {}
        self._format: StreamFormat | None = None
        self._clock = clock
        self._last_pts_s = 0.0
        self._last_at: float | None = None

    @property
    def open_clips(self) -> list[Path]:
        """Paths of the clips being written."""
        return [clip.path for clip in self._open.values()]

    def start(self, event: Event, path: Path) -> None:
        """Open the clip of ``event`` (a ``start`` message) at ``path``."""
        if event.event_id in self._open:
            return
        clip = _Clip(
            event_id=event.event_id,
            path=path,
            wanted_start_s=event.started_pts - self.pre_s,
            metadata={
                "title": f"{event.stream_id} {event.rule_id}",
                "creation_time": iso_utc(event.started_at),
                "comment": (
                    f"streamseg event={event.event_id} rule={event.rule_id} "
                    f"zone={event.zone_id} started_pts_s={event.started_pts:.3f}"
                ),
            },
        )
        self._open[event.event_id] = clip
        if self.retention is not None:
            self.retention.opened(path)
        if self._format is not None:
            try:
                for packet in self.ring.since(clip.wanted_start_s):
                    self._write_one(clip, packet, self._format)
            except Exception:
                self._give_up(clip)
                raise
        logger.info("clip %s started (event %s)", path, event.event_id)

    def end(self, event: Event) -> None:
        """The event ended: its clip runs ``post_s`` more seconds."""
        clip = self._open.get(event.event_id)
        if clip is None:
            logger.debug("end of event %s without an open clip", event.event_id)
            return
        clip.stop_s = event.frame_pts + self.post_s

    def write(self, packet: EncodedPacket, stream_format: StreamFormat) -> None:
        """A live packet: into every open clip, then into the ring.

        A clip whose file cannot be written is given up (what it wrote stays); the other clips
        and the ring still get the packet, and the first such error is raised afterwards for
        the caller to report.
        """
        self._format = stream_format
        self._last_pts_s, self._last_at = packet.pts_s, self._clock()
        failed: Exception | None = None
        try:
            for clip in list(self._open.values()):
                try:
                    self._write_live(clip, packet, stream_format)
                except Exception as exc:
                    self._give_up(clip)
                    failed = failed or exc
        finally:
            self.ring.append(packet)
        if failed is not None:
            raise failed

    def finish_stalled(self) -> None:
        """Finish the clips whose post-roll has run out in wall time while no packet came.

        A clip ends on the first packet past its post-roll; a camera that stalls (or goes
        offline) sends none, and the clip would stay open, its last group of pictures unwritten,
        until the stream closed. The stream is taken to advance in real time from its last
        packet: a clip whose end is :data:`STALL_GRACE_S` past that is finished as it is.
        """
        if self._last_at is None:
            return
        now = self._clock()
        for clip in list(self._open.values()):
            if clip.stop_s is None:
                continue
            short_s = max(0.0, clip.stop_s - self._last_pts_s)  # post-roll not yet received
            if now >= self._last_at + short_s + STALL_GRACE_S:
                logger.warning(
                    "clip %s: no frame for %.1f s (source stalled?); finished at stream %.2f s, "
                    "%.2f s short of its post-roll",
                    clip.path,
                    now - self._last_at,
                    self._last_pts_s,
                    short_s,
                )
                self._finish(clip)

    def _write_live(self, clip: _Clip, packet: EncodedPacket, stream_format: StreamFormat) -> None:
        if clip.stop_s is not None and packet.pts_s > clip.stop_s + _EPS_S:
            self._finish(clip)
            return
        self._write_one(clip, packet, stream_format)
        writer = clip.writer
        if clip.stop_s is not None and packet.pts_s >= clip.stop_s - _EPS_S:
            self._finish(clip)
        elif writer is not None and writer.duration_s >= self.max_s:
            logger.warning("clip %s reached max_s=%.0f s: cut", clip.path, self.max_s)
            self._finish(clip)

    def _give_up(self, clip: _Clip) -> None:
        """Stop writing a clip whose file failed, keeping what it holds."""
        logger.warning(
            "clip %s (event %s): its file could not be written; the clip ends here",
            clip.path,
            clip.event_id,
        )
        try:
            self._finish(clip)
        except Exception as exc:
            logger.debug("clip %s: finishing after the failure: %s", clip.path, exc)
            self._open.pop(clip.event_id, None)

    def _write_one(self, clip: _Clip, packet: EncodedPacket, stream_format: StreamFormat) -> None:
        if clip.writer is None:
            if not packet.is_keyframe:
                return
            clip.writer = FragmentedMp4Writer(clip.path, stream_format, clip.metadata)
        clip.writer.write(packet)

    def _finish(self, clip: _Clip) -> None:
        self._open.pop(clip.event_id, None)
        if clip.writer is not None:
            self._finish_file(clip.path, clip.writer)
        elif self.retention is not None:
            self.retention.closed(clip.path)
            self.retention.enforce()

    def new_files(self) -> None:
        """The frame size changed (a file cannot): each open clip goes on in a new file,
        ``<name>_1.mp4`` (then ``_2`` ...), from the next keyframe; the ring's packets of the
        old size are dropped. The event's payload names the first file; the log names the
        next."""
        for clip in self._open.values():
            writer, clip.writer = clip.writer, None
            if writer is None:
                continue
            self._finish_file(clip.path, writer)
            clip.path = unique_path(clip.path)
            if self.retention is not None:
                self.retention.opened(clip.path)
            logger.warning(
                "clip of event %s: the frame size changed; it goes on in %s",
                clip.event_id,
                clip.path,
            )
        self.ring.clear()

    def _finish_file(self, path: Path, writer: FragmentedMp4Writer) -> None:
        try:
            writer.close()
        finally:  # a file whose close failed must not stay "in use" (kept from retention)
            if self.retention is not None:
                self.retention.closed(path)
        if writer.frames:
            self.finished.append(path)
            logger.info(
                "clip %s finished: %.1f s from stream %.2f s",
                path,
                writer.duration_s,
                writer.first_pts_s or 0.0,
            )
        if self.retention is not None:
            self.retention.enforce()

    def close(self) -> None:
        """Finish every open clip (the stream ended; post-roll may be short)."""
        for clip in list(self._open.values()):
            self._finish(clip)
        self.ring.clear()

"""Continuous recording of one stream, cut into segment files.

Layout: ``<dir>/<stream>/<stream>_<UTC start>.mp4``, e.g.
``out/record/gate/gate_20261122T071530.040Z.mp4``; the start is the wall-clock time of the
segment's first frame, so names sort in time order. A segment is cut at the first keyframe at or
after ``segment_s`` seconds of stream time (keyframes come every ``keyframe_interval_s``, so a
segment lasts ``segment_s`` rounded up to that interval). Each file starts at timestamp 0 and
carries its stream start in the ``comment`` metadata (``start_pts_s=...``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from streamseg.record.encoder import EncodedPacket, StreamFormat
from streamseg.record.mp4 import FragmentedMp4Writer
from streamseg.record.retention import RetentionKeeper

logger = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".mp4"


def utc_stamp(wall_time: float) -> str:
    """UNIX seconds as a compact UTC stamp for file names: ``20261122T071530.040Z``."""
    whole = int(wall_time)
    millis = min(999, round((wall_time - whole) * 1000))
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(whole)) + f".{millis:03d}Z"


def iso_utc(wall_time: float) -> str:
    """UNIX seconds as ISO 8601 UTC (MP4 ``creation_time``)."""
    whole = int(wall_time)
    micros = min(999_999, round((wall_time - whole) * 1e6))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{micros:06d}Z"


def unique_path(path: Path) -> Path:
    """``path``, or ``name_1.ext``, ``name_2.ext`` ... if it exists already."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")
    return candidate


class SegmentRecorder:
    """Writes one stream's packets into consecutive segment files.

    Not thread-safe: it lives on its stream's worker thread.

    Args:
        directory: the recording folder; this stream writes ``directory/<stream_id>/``.
        stream_id: the source id.
        segment_s: target segment length in stream seconds.
        retention: applied when a segment is finished (and when the first one opens).
    """

    def __init__(
        self,
        directory: str | Path,
        stream_id: str,
        segment_s: float,
        retention: RetentionKeeper | None = None,
    ) -> None:
        if segment_s <= 0:
            raise ValueError(f"segment_s must be > 0, got {segment_s}")
        self.directory = Path(directory) / stream_id
        self.stream_id = stream_id
        self.segment_s = segment_s
        self.retention = retention
        self.finished: list[Path] = []
        self.frames_lost = 0
        """Frames not in any segment: the one whose write (or whose segment's opening) failed,
        and those skipped after it up to the next keyframe that opens a segment."""
        self._writer: FragmentedMp4Writer | None = None

    @property
    def current_path(self) -> Path | None:
        """The segment being written, if any."""
        return None if self._writer is None else self._writer.path

    def write(self, packet: EncodedPacket, stream_format: StreamFormat) -> None:
        """Append a packet, starting a new segment at a keyframe when the current one is full.

        Packets before the first keyframe (nothing could decode them) are skipped, and so are
        those after a failed write up to the next keyframe, which opens a new segment.

        Raises:
            OSError: the segment could not be opened or written (the error is the caller's to
                report; the recorder stays usable).
        """
        writer = self._writer
        if writer is not None and writer.closed:
            # A write failed (disk full): that file is given up, and the next keyframe starts
            # a new one (if the disk has room again).
            self._finish()
            writer = None
        if writer is not None and packet.is_keyframe:
            assert writer.first_pts_s is not None
            if packet.pts_s - writer.first_pts_s >= self.segment_s - 1e-3:
                self._finish()
                writer = None
        if writer is None and not packet.is_keyframe:
            self.frames_lost += 1
            return
        try:
            if writer is None:
                writer = self._open(packet, stream_format)
            writer.write(packet)
        except OSError:
            self.frames_lost += 1
            raise

    def _open(self, packet: EncodedPacket, stream_format: StreamFormat) -> FragmentedMp4Writer:
        wall = packet.wall_time if packet.wall_time > 0 else time.time()
        path = unique_path(self.directory / f"{self.stream_id}_{utc_stamp(wall)}{SEGMENT_SUFFIX}")
        metadata = {
            "title": self.stream_id,
            "creation_time": iso_utc(wall),
            "comment": f"streamseg stream={self.stream_id} start_pts_s={packet.pts_s:.3f}",
        }
        self._writer = FragmentedMp4Writer(path, stream_format, metadata)
        if self.retention is not None:
            self.retention.opened(path)
            if not self.finished:
                self.retention.enforce()
        logger.info("recording segment %s", path)
        return self._writer

    def _finish(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
        finally:  # a file whose close failed must not stay "in use" (kept from retention)
            if self.retention is not None:
                self.retention.closed(writer.path)
        if writer.frames:
            self.finished.append(writer.path)
        if self.retention is not None:
            self.retention.enforce()

    def close(self) -> None:
        """Finish the current segment (safe to call twice)."""
        self._finish()

"""Fragmented MP4 files that stay playable while they are written.

``movflags=frag_keyframe+empty_moov+default_base_moof``: the header (``moov``) is written first
and holds no sample table; each group of pictures then goes out as one ``moof`` + ``mdat``
fragment when the next keyframe arrives. ``flush_packets=1`` makes libavformat hand its buffer
to the OS after every packet (by default it holds up to 32 KB, which can be several fragments of
a small picture). A process killed with SIGKILL therefore leaves a file that decodes up to its
last complete fragment: it loses at most one keyframe interval. A normal close writes the
trailer (``mfra`` index) so players can seek quickly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import av

from streamseg.record.encoder import TIME_BASE, EncodedPacket, StreamFormat

logger = logging.getLogger(__name__)

FRAGMENTED_MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
"""MP4 muxer flags: see the module docstring."""


class FragmentedMp4Writer:
    """Muxes :class:`EncodedPacket` records of one stream into a fragmented MP4 file.

    Timestamps are rebased so the file starts at 0; the first packet must be a keyframe.

    Args:
        path: the file; parent folders are created; an existing file is replaced.
        stream_format: codec, size and rate of the packets.
        metadata: container metadata (e.g. ``{"title": ...}``); values are strings.
    """

    def __init__(
        self,
        path: str | Path,
        stream_format: StreamFormat,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.stream_format = stream_format
        self.frames = 0
        self.bytes_written = 0
        self.first_pts_s: float | None = None
        self.last_pts_s: float | None = None
        self._origin: int | None = None
        self._last_dts: int | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container: av.container.OutputContainer | None = av.open(
            str(self.path),
            mode="w",
            format="mp4",
            options={"movflags": FRAGMENTED_MOVFLAGS, "flush_packets": "1"},
        )
        if metadata:
            self._container.metadata.update(metadata)
        self._stream = self._container.add_mux_stream(
            stream_format.codec,
            rate=stream_format.rate,
            width=stream_format.width,
            height=stream_format.height,
        )
        self._stream.time_base = TIME_BASE

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran, or once a write failed (the file is given up)."""
        return self._container is None

    def write(self, packet: EncodedPacket) -> None:
        """Append one packet.

        Raises:
            ValueError: the file's first packet is not a keyframe, or timestamps go backwards.
            RuntimeError: the writer is closed (by :meth:`close`, or by an earlier write that
                failed: the writer then gives the file up, see :attr:`closed`).
            OSError: the file could not be written (disk full...); the writer is closed.
        """
        if self._container is None:
            raise RuntimeError(f"FragmentedMp4Writer({self.path}) is closed")
        if self._origin is None:
            if not packet.is_keyframe:
                raise ValueError(f"{self.path}: the first packet must be a keyframe")
            self._origin = packet.dts
            self.first_pts_s = packet.pts_s
        if self._last_dts is not None and packet.dts <= self._last_dts:
            raise ValueError(
                f"{self.path}: decoding times must increase, got {packet.dts} after "
                f"{self._last_dts} (ms)"
            )
        self._last_dts = packet.dts
        out = av.Packet(packet.data)
        out.pts = packet.pts - self._origin
        out.dts = packet.dts - self._origin
        out.time_base = TIME_BASE
        out.duration = self.stream_format.frame_duration
        out.is_keyframe = packet.is_keyframe
        out.stream = self._stream
        try:
            self._container.mux(out)
        except Exception:
            # A file whose header (or a fragment) could not be written is done for: muxing into
            # it again crashes libavformat (a segfault, after a failed header on a full disk).
            self._abandon()
            raise
        self.frames += 1
        self.bytes_written += packet.size
        self.last_pts_s = packet.pts_s

    @property
    def duration_s(self) -> float:
        """Stream seconds covered so far (first packet to last, plus one nominal frame)."""
        if self.first_pts_s is None or self.last_pts_s is None:
            return 0.0
        frame_s = float(self.stream_format.frame_duration * TIME_BASE)
        return self.last_pts_s - self.first_pts_s + frame_s

    def _abandon(self) -> None:
        """Give the file up after a write failed: release the container without writing more
        (what was written before stays, playable up to its last whole fragment)."""
        container, self._container = self._container, None
        if container is None:
            return
        try:
            container.close()
        except Exception as exc:  # the disk that failed the write fails the trailer too
            logger.debug("%s: closing after a failed write: %s", self.path, exc)
        if self.frames == 0:
            self.path.unlink(missing_ok=True)

    def close(self) -> None:
        """Write the last fragment and the trailer (safe to call twice).

        A file that received no packet is removed: it would hold no video.
        """
        container, self._container = self._container, None
        if container is None:
            return
        if self.frames == 0:
            # Closing an output that never started writes nothing; drop the empty file.
            container.close()
            self.path.unlink(missing_ok=True)
            return
        container.close()
        logger.debug("closed %s: %d frames, %.1f s", self.path, self.frames, self.duration_s)

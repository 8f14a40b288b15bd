"""Annotated video per stream (``outputs.video``), drawn and encoded off the analytics thread.

Each stream gets a :class:`~streamseg.record.worker.BackgroundWorker`: the analytics thread
hands it the frame and its detections and returns; the worker draws, encodes (H.264 when the
PyAV build has it, else MPEG-4 part 2) and writes a fragmented MP4, so a crash loses at most the
last keyframe interval. Frames keep their stream timestamps (millisecond time base): a live
stream that dropped frames still plays at real speed. When the worker falls behind, frames of a
stream in ``lossless_streams`` wait for room (file sources: nothing is dropped); others are
dropped and counted (``frames_dropped``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import supervision as sv

from streamseg.models.preprocess import letterbox_geometry
from streamseg.outputs.annotate import FrameAnnotator
from streamseg.record.encoder import (
    CODEC_ENCODERS,
    TIME_BASE,
    EncodedPacket,
    EncoderSettings,
    VideoEncoder,
    pick_encoder,
)
from streamseg.record.mp4 import FragmentedMp4Writer
from streamseg.record.worker import BackgroundWorker
from streamseg.types import Frame

logger = logging.getLogger(__name__)

__all__ = [
    "CODEC_ENCODERS",
    "TIME_BASE",
    "AnnotatedVideoSink",
    "VideoFileWriter",
    "pick_encoder",
]

DEFAULT_QUEUE_FRAMES = 32
"""Frames waiting per stream before the sink drops (or, for lossless streams, waits)."""


class VideoFileWriter:
    """Encodes the images of one stream into one fragmented MP4 at ``path`` (synchronous).

    The file is created on the first image, with that image's size; a later image of another
    size (the stream changed resolution) is letterboxed into it, with a warning once per size.

    Args:
        path: output file (MP4); parent folders are created.
        codec: ``auto`` | ``h264`` | ``mpeg4`` | ``hevc`` | ``vp9``.
        crf: constant rate factor for x264/x265.
        nominal_fps: the rate declared to the container (players use it for seeking).
        annotator: kept for callers that pass one; drawing is the caller's job.
        keyframe_interval_s: seconds between keyframes (and between fragments).
    """

    def __init__(
        self,
        path: str | Path,
        codec: str = "auto",
        crf: int = 23,
        nominal_fps: float = 25.0,
        annotator: FrameAnnotator | None = None,
        keyframe_interval_s: float = 2.0,
    ) -> None:
        self.path = Path(path)
        self.annotator = annotator
        self._encoder = VideoEncoder(
            EncoderSettings(
                codec=codec,
                crf=crf,
                keyframe_interval_s=keyframe_interval_s,
                nominal_fps=nominal_fps,
            )
        )
        self.encoder = self._encoder.encoder_name
        self.crf = crf
        self.nominal_fps = nominal_fps
        self._writer: FragmentedMp4Writer | None = None
        self._closed = False
        self._sizes_warned: set[tuple[int, int]] = set()

    @property
    def frames_written(self) -> int:
        """Frames in the file so far."""
        return 0 if self._writer is None else self._writer.frames

    @property
    def frames_skipped(self) -> int:
        """Frames skipped because their timestamp did not increase."""
        return self._encoder.frames_skipped

    def write_image(self, image: npt.NDArray[np.uint8], pts_s: float) -> None:
        """Encode one (H, W, 3) uint8 BGR image at stream time ``pts_s`` (seconds).

        Raises:
            RuntimeError: the writer is closed.
        """
        if self._closed:
            raise RuntimeError(f"VideoFileWriter({self.path}) is closed")
        fmt = self._encoder.format
        if fmt is not None and (image.shape[1] & ~1, image.shape[0] & ~1) != (
            fmt.width,
            fmt.height,
        ):
            image = self._fit(image, fmt.width, fmt.height)
        for packet in self._encoder.encode(image, pts_s):
            self._mux(packet)

    def _fit(self, image: npt.NDArray[np.uint8], width: int, height: int) -> npt.NDArray[np.uint8]:
        """Letterbox an image of a new size into the file's (a file has one size; the stream
        changed resolution, e.g. a camera reconfigured), saying so once per size."""
        h, w = image.shape[:2]
        if (w, h) not in self._sizes_warned:
            self._sizes_warned.add((w, h))
            logger.warning(
                "%s: frame size changed from %dx%d to %dx%d; such frames are letterboxed into "
                "the file's size",
                self.path,
                width,
                height,
                w,
                h,
            )
        box = letterbox_geometry((h, w), (height, width))
        new_h, new_w = box.new_hw
        canvas = np.zeros((height, width, 3), dtype=np.uint8)
        canvas[box.top : box.top + new_h, box.left : box.left + new_w] = cv2.resize(
            image, (new_w, new_h), interpolation=cv2.INTER_AREA
        )
        return canvas

    def _mux(self, packet: EncodedPacket) -> None:
        if self._writer is None:
            fmt = self._encoder.format
            assert fmt is not None  # set by the encode that produced this packet
            self._writer = FragmentedMp4Writer(self.path, fmt)
            logger.info("recording %s (%s, %dx%d)", self.path, self.encoder, fmt.width, fmt.height)
        self._writer.write(packet)

    def close(self) -> None:
        """Flush the encoder and finalize the file (safe to call twice)."""
        if self._closed:
            return
        self._closed = True
        for packet in self._encoder.flush():
            self._mux(packet)
        if self._writer is not None:
            self._writer.close()
            logger.info("finalized %s (%d frames)", self.path, self._writer.frames)


@dataclass(frozen=True)
class _Item:
    image: npt.NDArray[np.uint8]
    detections: sv.Detections
    pts_s: float


class _StreamVideo:
    """One stream's annotator, file writer and worker thread."""

    def __init__(
        self, stream_id: str, writer: VideoFileWriter, annotator: FrameAnnotator, queue: int
    ) -> None:
        self.writer = writer
        self.annotator = annotator
        self.worker: BackgroundWorker[_Item] = BackgroundWorker(
            f"video-{stream_id}", self._handle, queue, on_close=writer.close
        )

    def _handle(self, item: _Item) -> None:
        self.writer.write_image(self.annotator.annotate(item.image, item.detections), item.pts_s)


class AnnotatedVideoSink:
    """One annotated MP4 per stream; ``path_template`` may contain ``{stream}``.

    Args:
        path_template: e.g. ``out/{stream}.mp4``.
        annotator: drawing options (each stream draws with its own copy: traces are per stream).
        codec: see :func:`pick_encoder`.
        crf: x264/x265 quality.
        fps: rate declared in the file; ``None`` asks ``nominal_fps`` (the source's declared
            rate), else 25.
        nominal_fps: ``nominal_fps(stream_id)``, the source's declared rate when known.
        lossless_streams: streams whose frames wait for the encoder instead of being dropped
            (file sources read frame by frame).
        queue_frames: frames waiting per stream.
    """

    def __init__(
        self,
        path_template: str,
        annotator: FrameAnnotator,
        codec: str = "auto",
        crf: int = 23,
        fps: float | None = None,
        nominal_fps: Callable[[str], float | None] | None = None,
        lossless_streams: Collection[str] = (),
        queue_frames: int = DEFAULT_QUEUE_FRAMES,
    ) -> None:
        self.path_template = path_template
        self.annotator = annotator
        self.codec = codec
        self.crf = crf
        self.fps = fps
        self.nominal_fps = nominal_fps
        self.lossless_streams = frozenset(lossless_streams)
        self.queue_frames = queue_frames
        pick_encoder(codec)  # fail at start-up, not on the first frame
        self._streams: dict[str, _StreamVideo] = {}
        self._lock = threading.Lock()

    def path_for(self, stream_id: str) -> Path:
        """The file a stream is recorded to."""
        return Path(self.path_template.format(stream=stream_id))

    def _stream(self, stream_id: str) -> _StreamVideo:
        with self._lock:
            stream = self._streams.get(stream_id)
            if stream is None:
                declared = self.nominal_fps(stream_id) if self.nominal_fps else None
                rate = self.fps or declared or 25.0
                writer = VideoFileWriter(self.path_for(stream_id), self.codec, self.crf, rate)
                stream = _StreamVideo(stream_id, writer, self.annotator.fresh(), self.queue_frames)
                self._streams[stream_id] = stream
            return stream

    def write(self, frame: Frame, detections: sv.Detections) -> None:
        """Hand one frame to its stream's worker (returns at once unless the stream is
        lossless and its queue is full)."""
        stream = self._stream(frame.stream_id)
        stream.worker.put(
            _Item(frame.image, detections, frame.pts_s),
            wait=frame.stream_id in self.lossless_streams,
        )

    def close_stream(self, stream_id: str) -> None:
        """Draw and encode what is queued, then finalize the stream's file."""
        with self._lock:
            stream = self._streams.get(stream_id)
        if stream is not None:
            stream.worker.close()

    def close(self) -> None:
        """Finalize every file."""
        with self._lock:
            streams = list(self._streams.values())
        for stream in streams:
            stream.worker.close()

    @property
    def frames_dropped(self) -> dict[str, int]:
        """Frames dropped per stream because its worker fell behind."""
        with self._lock:
            return {sid: s.worker.stats().dropped for sid, s in self._streams.items()}

    @property
    def paths(self) -> list[Path]:
        """Files written so far."""
        with self._lock:
            return [s.writer.path for s in self._streams.values()]

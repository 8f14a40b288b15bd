"""Annotated video per stream, encoded with PyAV.

Frames are written with their stream timestamps (millisecond time base), so a live stream that
dropped frames still plays at real speed. Files are MP4; the encoder is H.264 (libx264) when the
PyAV build has it, else MPEG-4 part 2.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import supervision as sv

from streamseg.outputs.annotate import FrameAnnotator
from streamseg.types import Frame

logger = logging.getLogger(__name__)

CODEC_ENCODERS: dict[str, tuple[str, ...]] = {
    "h264": ("libx264", "h264"),
    "hevc": ("libx265", "hevc"),
    "vp9": ("libvpx-vp9",),
    "mpeg4": ("mpeg4",),
}
TIME_BASE = Fraction(1, 1000)


def pick_encoder(codec: str) -> str:
    """Name of a PyAV encoder for ``codec`` (``auto`` = h264, else mpeg4).

    Raises:
        ValueError: the codec is unknown or this PyAV build has no encoder for it.
    """
    wanted = ("h264", "mpeg4") if codec == "auto" else (codec,)
    for name in wanted:
        if name not in CODEC_ENCODERS:
            raise ValueError(f"codec {name!r}: expected one of auto, {', '.join(CODEC_ENCODERS)}")
        for encoder in CODEC_ENCODERS[name]:
            try:
                av.codec.Codec(encoder, "w")
            except Exception:  # PyAV raises several types for a missing codec
                continue
            return encoder
    raise ValueError(f"this PyAV build has no encoder for {codec!r}")


class VideoFileWriter:
    """Writes annotated frames of one stream to ``path`` (opened on the first frame).

    Args:
        path: output file (MP4); parent folders are created.
        codec: ``auto`` | ``h264`` | ``mpeg4`` | ``hevc`` | ``vp9``.
        crf: constant rate factor for x264/x265 (ignored by other encoders).
        nominal_fps: the rate declared to the container (players use it for seeking).
        annotator: how to draw; ``None`` writes clean frames.
    """

    def __init__(
        self,
        path: str | Path,
        codec: str = "auto",
        crf: int = 23,
        nominal_fps: float = 25.0,
        annotator: FrameAnnotator | None = None,
    ) -> None:
        self.path = Path(path)
        self.encoder = pick_encoder(codec)
        self.crf = crf
        self.nominal_fps = nominal_fps
        self.annotator = annotator
        self.frames_written = 0
        self.frames_skipped = 0
        self._container: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._first_pts_s: float | None = None
        self._last_pts = -1
        self._closed = False

    def _open(self, width: int, height: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(str(self.path), mode="w")
        rate = Fraction(self.nominal_fps).limit_denominator(1001)
        stream = container.add_stream(self.encoder, rate=rate)
        assert isinstance(stream, av.VideoStream)
        # yuv420p needs even dimensions.
        stream.width = width - width % 2
        stream.height = height - height % 2
        stream.pix_fmt = "yuv420p"
        stream.time_base = TIME_BASE
        stream.codec_context.time_base = TIME_BASE
        if self.encoder in ("libx264", "libx265"):
            stream.options = {"crf": str(self.crf), "preset": "veryfast"}
        self._container, self._stream = container, stream
        logger.info("recording %s (%s, %dx%d)", self.path, self.encoder, width, height)

    def write_image(self, image: npt.NDArray[np.uint8], pts_s: float) -> None:
        """Encode one (H, W, 3) uint8 BGR image at stream time ``pts_s`` (seconds)."""
        if self._closed:
            raise RuntimeError(f"VideoFileWriter({self.path}) is closed")
        if self._stream is None:
            self._open(image.shape[1], image.shape[0])
            self._first_pts_s = pts_s
        assert self._stream is not None and self._container is not None
        pts = round((pts_s - (self._first_pts_s or 0.0)) / TIME_BASE)
        if pts <= self._last_pts:
            # Non-increasing timestamps would make the muxer fail; keep the file valid.
            self.frames_skipped += 1
            return
        self._last_pts = pts
        height, width = self._stream.height, self._stream.width
        frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(image[:height, :width]), format="bgr24"
        )
        frame.pts = pts
        frame.time_base = TIME_BASE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and finalize the file (safe to call twice)."""
        if self._closed:
            return
        self._closed = True
        if self._stream is not None and self._container is not None:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
            logger.info("finalized %s (%d frames)", self.path, self.frames_written)


class AnnotatedVideoSink:
    """One annotated MP4 per stream; ``path_template`` may contain ``{stream}``.

    Args:
        path_template: e.g. ``out/{stream}.mp4``.
        annotator: drawing options.
        codec: see :func:`pick_encoder`.
        crf: x264/x265 quality.
        fps: rate declared in the file; ``None`` asks ``nominal_fps`` (the source's declared
            rate), else 25.
        nominal_fps: ``nominal_fps(stream_id)``, the source's declared rate when known.
    """

    def __init__(
        self,
        path_template: str,
        annotator: FrameAnnotator,
        codec: str = "auto",
        crf: int = 23,
        fps: float | None = None,
        nominal_fps: Callable[[str], float | None] | None = None,
    ) -> None:
        self.path_template = path_template
        self.annotator = annotator
        self.codec = codec
        self.crf = crf
        self.fps = fps
        self.nominal_fps = nominal_fps
        pick_encoder(codec)  # fail at start-up, not on the first frame
        self._writers: dict[str, VideoFileWriter] = {}
        self._lock = threading.Lock()

    def path_for(self, stream_id: str) -> Path:
        """The file a stream is recorded to."""
        return Path(self.path_template.format(stream=stream_id))

    def _writer(self, stream_id: str) -> VideoFileWriter:
        with self._lock:
            if stream_id not in self._writers:
                declared = self.nominal_fps(stream_id) if self.nominal_fps else None
                rate = self.fps or declared or 25.0
                self._writers[stream_id] = VideoFileWriter(
                    self.path_for(stream_id), self.codec, self.crf, rate, self.annotator
                )
            return self._writers[stream_id]

    def write(self, frame: Frame, detections: sv.Detections) -> None:
        """Annotate and encode one frame of its stream's file."""
        self._writer(frame.stream_id).write_image(
            self.annotator.annotate(frame.image, detections), frame.pts_s
        )

    def close_stream(self, stream_id: str) -> None:
        """Finalize the stream's file."""
        with self._lock:
            writer = self._writers.get(stream_id)
        if writer is not None:
            writer.close()

    def close(self) -> None:
        """Finalize every file."""
        with self._lock:
            writers = list(self._writers.values())
        for writer in writers:
            writer.close()

    @property
    def paths(self) -> list[Path]:
        """Files written so far."""
        with self._lock:
            return [w.path for w in self._writers.values()]

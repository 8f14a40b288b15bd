"""Images -> compressed packets, with no container: one encoder feeds segments, ring and clips.

The encoder is a bare PyAV codec context. Its packets are copied out as immutable
:class:`EncodedPacket` records (bytes plus timestamps in milliseconds of stream time), so the
same packet can be muxed into the current segment, kept in the pre-event ring and muxed again
into any number of clips without encoding twice.

Choices, and why:

- ``tune=zerolatency`` (x264/x265): no B-frames and no lookahead, so the packet of frame ``i``
  comes out of ``encode`` for frame ``i``. The ring and the clips then stay in step with the
  frames (a clip's end is exact to the frame) and nothing sits inside the encoder when the
  process dies.
- Keyframes are forced on a time grid of ``keyframe_interval_s`` from the first frame, not every
  N frames: a live source's frame rate wanders and drops, and clip starts, segment cuts and the
  loss on SIGKILL are promised in seconds.
- Parameter sets travel in-band (no global header), so every keyframe is self-contained and the
  muxer learns them from the first packet of each file.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from fractions import Fraction

import av
import cv2
import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

CODEC_ENCODERS: dict[str, tuple[str, ...]] = {
    "h264": ("libx264", "h264"),
    "hevc": ("libx265", "hevc"),
    "vp9": ("libvpx-vp9",),
    "mpeg4": ("mpeg4",),
}
"""Codec names in configs -> PyAV encoder names, best first."""

MUX_CODEC: dict[str, str] = {
    "libx264": "h264",
    "h264": "h264",
    "libx265": "hevc",
    "hevc": "hevc",
    "libvpx-vp9": "vp9",
    "mpeg4": "mpeg4",
}
"""PyAV encoder name -> codec name of the container stream."""

TIME_BASE = Fraction(1, 1000)
"""Time base of every packet: milliseconds of stream time."""

X264_FAMILY = ("libx264", "libx265")


def pick_encoder(codec: str) -> str:
    """Name of a PyAV encoder for ``codec`` (``auto`` = h264, else mpeg4).

    Args:
        codec: ``auto``, ``h264``, ``hevc``, ``vp9`` or ``mpeg4``.

    Returns:
        An encoder this PyAV build has, e.g. ``libx264``.

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


@dataclass(frozen=True)
class EncoderSettings:
    """How to encode one stream.

    Attributes:
        codec: ``auto`` | ``h264`` | ``hevc`` | ``mpeg4`` | ``vp9`` (see :func:`pick_encoder`).
        crf: constant rate factor for x264/x265 (mpeg4 and vp9 map it to a quality scale).
        preset: x264/x265 speed preset.
        keyframe_interval_s: seconds between forced keyframes (stream time).
        nominal_fps: the rate declared to containers (players use it for seeking).
        threads: encoder threads; 0 lets the encoder pick one per core.
    """

    codec: str = "auto"
    crf: int = 23
    preset: str = "ultrafast"
    keyframe_interval_s: float = 2.0
    nominal_fps: float = 25.0
    threads: int = 1

    def __post_init__(self) -> None:
        if self.keyframe_interval_s <= 0:
            raise ValueError(f"keyframe_interval_s must be > 0, got {self.keyframe_interval_s}")
        if self.nominal_fps <= 0:
            raise ValueError(f"nominal_fps must be > 0, got {self.nominal_fps}")


@dataclass(frozen=True, slots=True)
class EncodedPacket:
    """One compressed frame, detached from any container.

    Attributes:
        data: the compressed bytes (Annex B for H.264/HEVC; keyframes carry parameter sets).
        pts: presentation time in :data:`TIME_BASE` units (stream milliseconds).
        dts: decoding time, same units (equal to ``pts`` without B-frames).
        is_keyframe: the packet starts a group of pictures (a file may start here).
        wall_time: ``time.time()`` of the source frame (for file names).
    """

    data: bytes
    pts: int
    dts: int
    is_keyframe: bool
    wall_time: float

    @property
    def pts_s(self) -> float:
        """Presentation time in stream seconds."""
        return float(self.pts * TIME_BASE)

    @property
    def size(self) -> int:
        """Compressed size in bytes."""
        return len(self.data)


@dataclass(frozen=True)
class StreamFormat:
    """What a container needs to know to hold an encoder's packets.

    Attributes:
        codec: container codec name (``h264``, ``hevc``, ``mpeg4``, ``vp9``).
        width: frame width in pixels (even).
        height: frame height in pixels (even).
        rate: nominal frame rate.
    """

    codec: str
    width: int
    height: int
    rate: Fraction

    @property
    def frame_duration(self) -> int:
        """One nominal frame in :data:`TIME_BASE` units (at least 1)."""
        return max(1, round(1 / (self.rate * TIME_BASE)))


class VideoEncoder:
    """Encodes (H, W, 3) uint8 BGR images of one stream into :class:`EncodedPacket` records.

    The codec opens on the first image, with that image's size (cropped to even dimensions:
    yuv420p needs them). Not thread-safe: one owner thread per encoder.

    Args:
        settings: codec, quality and keyframe interval.
    """

    def __init__(self, settings: EncoderSettings) -> None:
        self.settings = settings
        self.encoder_name = pick_encoder(settings.codec)
        self.frames_encoded = 0
        self.frames_skipped = 0
        self.format: StreamFormat | None = None
        self._ctx: av.VideoCodecContext | None = None
        self._last_pts: int | None = None
        self._next_keyframe_s: float | None = None
        self._wall_times: dict[int, float] = {}

    def _open(self, width: int, height: int) -> av.VideoCodecContext:
        settings = self.settings
        rate = Fraction(settings.nominal_fps).limit_denominator(1001)
        ctx = av.CodecContext.create(self.encoder_name, "w")
        assert isinstance(ctx, av.VideoCodecContext)
        ctx.width = width - width % 2
        ctx.height = height - height % 2
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = TIME_BASE
        ctx.framerate = rate
        # Natural keyframes only as a fallback far beyond the forced grid (a rate far above
        # nominal); the grid in encode() decides.
        ctx.gop_size = max(2, math.ceil(2 * settings.keyframe_interval_s * settings.nominal_fps))
        ctx.max_b_frames = 0
        options: dict[str, str] = {}
        if self.encoder_name in X264_FAMILY:
            options = {"crf": str(settings.crf), "preset": settings.preset, "tune": "zerolatency"}
            if self.encoder_name == "libx265":
                options["x265-params"] = "log-level=error"
            options["threads"] = str(settings.threads)
        else:
            ctx.thread_count = settings.threads
            # No CRF outside x264/x265: a bit rate that scales with the picture and the crf.
            bits_per_pixel = 0.25 * 2 ** ((23 - settings.crf) / 6)
            ctx.bit_rate = int(bits_per_pixel * ctx.width * ctx.height * float(rate))
        ctx.options = options
        ctx.open()
        self.format = StreamFormat(MUX_CODEC[self.encoder_name], ctx.width, ctx.height, rate)
        logger.debug(
            "encoder %s %dx%d at %s fps, options %s",
            self.encoder_name,
            ctx.width,
            ctx.height,
            rate,
            options,
        )
        return ctx

    def encode(
        self, image: npt.NDArray[np.uint8], pts_s: float, wall_time: float = 0.0
    ) -> list[EncodedPacket]:
        """Encode one image.

        Args:
            image: (H, W, 3) uint8 BGR, frame pixels; every image of a stream has one size.
            pts_s: stream time of the image in seconds; must increase (a repeated or earlier
                timestamp is skipped and counted in ``frames_skipped``).
            wall_time: ``time.time()`` of the source frame, carried to the packet.

        Returns:
            The packets that came out (with zerolatency: this image's packet).
        """
        pts = round(pts_s / TIME_BASE)
        if self._last_pts is not None and pts <= self._last_pts:
            self.frames_skipped += 1
            return []
        if self._ctx is None:
            self._ctx = self._open(image.shape[1], image.shape[0])
        ctx = self._ctx
        if image.shape[0] < ctx.height or image.shape[1] < ctx.width:
            raise ValueError(
                f"image is {image.shape[1]}x{image.shape[0]}, expected the stream's "
                f"{ctx.width}x{ctx.height}"
            )
        self._last_pts = pts
        # OpenCV's BGR -> I420 is several times cheaper than swscale's on this path.
        yuv: npt.NDArray[np.uint8] = cv2.cvtColor(
            np.ascontiguousarray(image[: ctx.height, : ctx.width]), cv2.COLOR_BGR2YUV_I420
        ).astype(np.uint8, copy=False)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = pts
        frame.time_base = TIME_BASE
        if self._next_keyframe_s is None or pts_s >= self._next_keyframe_s - 5e-4:
            frame.pict_type = av.video.frame.PictureType.I
            interval = self.settings.keyframe_interval_s
            if self._next_keyframe_s is None:
                self._next_keyframe_s = pts_s + interval
            else:
                steps = math.floor((pts_s - self._next_keyframe_s) / interval + 1e-9) + 1
                self._next_keyframe_s += steps * interval
        self._wall_times[pts] = wall_time
        self.frames_encoded += 1
        return self._collect(ctx.encode(frame))

    def flush(self) -> list[EncodedPacket]:
        """Drain the encoder (end of stream); the encoder accepts no more images."""
        if self._ctx is None:
            return []
        packets = self._collect(self._ctx.encode(None))
        self._ctx = None
        return packets

    def _collect(self, packets: list[av.Packet]) -> list[EncodedPacket]:
        out = []
        for packet in packets:
            if packet.pts is None:
                continue
            pts = int(packet.pts)
            dts = int(packet.dts) if packet.dts is not None else pts
            out.append(
                EncodedPacket(
                    data=bytes(packet),
                    pts=pts,
                    dts=dts,
                    is_keyframe=bool(packet.is_keyframe),
                    wall_time=self._wall_time(pts),
                )
            )
        return out

    def _wall_time(self, pts: int) -> float:
        # Entries older than this packet belong to frames the encoder dropped: forget them.
        while self._wall_times:
            oldest = next(iter(self._wall_times))
            if oldest >= pts:
                break
            del self._wall_times[oldest]
        return self._wall_times.pop(pts, 0.0)

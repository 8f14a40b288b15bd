"""H.264 files with damaged packets, for the tests of corrupt-input handling.

:func:`write_h264_mp4` encodes BGR pictures with libx264 at a fixed keyframe interval;
:func:`garble_packets` then overwrites the payload of chosen frames' packets with random bytes,
in place: the container's index stays intact, the H.264 data inside is damaged (what a flaky
disk or a truncated copy produces). The same technique as ``tests/sources/test_file.py``.
"""

from __future__ import annotations

import fractions
from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt


def write_h264_mp4(images: Iterable[npt.NDArray[np.uint8]], path: Path, fps: int, gop: int) -> int:
    """Encode (H, W, 3) uint8 BGR pictures into an MP4; frame i has pts i / fps.

    Args:
        images: pictures of one even size, in display order.
        path: the output file.
        fps: frame rate.
        gop: keyframe interval in frames (keyframes at 0, gop, 2 * gop, ...).

    Returns:
        Frames written.
    """
    count = 0
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.pix_fmt = "yuv420p"
        stream.options = {
            "preset": "ultrafast",
            "g": str(gop),
            "keyint_min": str(gop),
            "sc_threshold": "0",
        }
        for image in images:
            if count == 0:
                stream.height, stream.width = image.shape[:2]
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = count
            frame.time_base = fractions.Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
            count += 1
        for packet in stream.encode():
            container.mux(packet)
    return count


def garble_packets(path: Path, frame_numbers: set[int], seed: int = 1) -> None:
    """Overwrite the payload of the packets of the given frames with random bytes, in place.

    Args:
        path: an MP4 written by :func:`write_h264_mp4` (constant frame rate).
        frame_numbers: display indices of the frames whose packets to damage.
        seed: of the random bytes.

    Raises:
        AssertionError: a frame's packet was not found.
    """
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.time_base is not None and stream.average_rate is not None
        ticks_per_frame = int(1 / (stream.time_base * stream.average_rate))
        spans = [
            (packet.pos, packet.size)
            for packet in container.demux(stream)
            if packet.size
            and packet.pts is not None
            and packet.pts // ticks_per_frame in frame_numbers
        ]
    assert len(spans) == len(frame_numbers), "did not find every packet to damage"
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    for pos, size in spans:
        assert pos is not None
        data[pos : pos + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))

"""Helpers for the recording tests: frames that carry their own index, decoding, events.

Every test frame draws its index in binary as a row of 16x16 blocks along the top (bit k at
x = 16k: white for 1, black for 0), over a textured background, so a test can read back which
frame a decoded picture is, even after lossy encoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
import supervision as sv

from streamseg.rules.events import Event
from streamseg.types import Frame

WIDTH, HEIGHT = 160, 96
BLOCK = 16
BITS = 9


def index_image(index: int, width: int = WIDTH, height: int = HEIGHT) -> npt.NDArray[np.uint8]:
    """(H, W, 3) uint8 BGR frame ``index``: index bits on top, a moving textured background."""
    yy, xx = np.mgrid[0:height, 0:width]
    background = ((xx * 3 + yy * 2 + index * 5) % 96 + 60).astype(np.uint8)
    image = np.repeat(background[:, :, None], 3, axis=2)
    for bit in range(BITS):
        value = 235 if (index >> bit) & 1 else 20
        image[0:BLOCK, bit * BLOCK : (bit + 1) * BLOCK] = value
    return image


def read_index(image: npt.NDArray[np.uint8]) -> int:
    """The index drawn by :func:`index_image` (block centres, threshold at mid-grey)."""
    index = 0
    for bit in range(BITS):
        centre = image[4:12, bit * BLOCK + 4 : bit * BLOCK + 12].astype(np.float32).mean()
        if centre > 128:
            index |= 1 << bit
    return index


@dataclass(frozen=True)
class Decoded:
    """What PyAV read back from a file.

    Attributes:
        pts_s: timestamp of each decoded frame (seconds, the file's own clock).
        indices: the index drawn in each frame.
        images: the decoded BGR images.
        duration_s: the container's duration (None when it declares none).
        error: the error that ended decoding early, if any.
    """

    pts_s: list[float]
    indices: list[int]
    images: list[npt.NDArray[np.uint8]]
    duration_s: float | None
    error: str | None


def decode(path: Path, keep_images: bool = False) -> Decoded:
    """Decode every frame PyAV can read from ``path`` (stopping at the first error)."""
    pts, indices, images = [], [], []
    error = None
    duration = None
    try:
        with av.open(str(path)) as container:
            if container.duration is not None:
                duration = container.duration / av.time_base
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                image = frame.to_ndarray(format="bgr24")
                pts.append(float(frame.pts * frame.time_base))
                indices.append(read_index(image))
                if keep_images:
                    images.append(image)
    except av.error.FFmpegError as exc:
        error = f"{type(exc).__name__}: {exc}"
    return Decoded(pts, indices, images, duration, error)


def frame(index: int, fps: float = 20.0, stream_id: str = "cam") -> Frame:
    """The analysed frame ``index`` of a stream at ``fps`` (pts = index / fps)."""
    return Frame(stream_id, index, index / fps, 1_763_800_000.0 + index / fps, index_image(index))


def box_detections(
    boxes: list[tuple[int, int, int, int]],
    track_ids: list[int] | None = None,
    image_hw: tuple[int, int] = (HEIGHT, WIDTH),
) -> sv.Detections:
    """Detections whose masks fill their boxes (xyxy inclusive, frame pixels), as CompactMask."""
    xyxy = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    dense = np.zeros((len(boxes), *image_hw), dtype=bool)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        dense[i, y1 : y2 + 1, x1 : x2 + 1] = True
    return sv.Detections(
        xyxy=xyxy,
        confidence=np.full(len(boxes), 0.9, np.float32),
        class_id=np.zeros(len(boxes), dtype=int),
        tracker_id=None if track_ids is None else np.array(track_ids),
        mask=sv.CompactMask.from_dense(dense, xyxy, image_shape=image_hw),
        data={"class_name": np.array(["person"] * len(boxes))},
    )


def event(
    kind: str,
    frame_index: int,
    *,
    fps: float = 20.0,
    started_index: int | None = None,
    event_id: str = "0d9b7d1e-8f6a-4c1e-9b7a-6f1f2d3c4b5a",
    track_ids: tuple[int, ...] = (1,),
    stream_id: str = "cam",
    zone_id: str | None = "yard",
) -> Event:
    """An event message of rule ``intrusion`` on ``zone_id`` at ``frame_index``."""
    start = frame_index if started_index is None else started_index
    return Event(
        event_id=event_id,
        type=kind,  # type: ignore[arg-type]
        rule_id="intrusion",
        rule_kind="inside",
        stream_id=stream_id,
        started_at=1_763_800_000.0 + start / fps,
        started_pts=start / fps,
        frame_pts=frame_index / fps,
        frame_index=frame_index,
        zone_id=zone_id,
        track_ids=track_ids,
        class_names=("person",) * len(track_ids),
        ended_at=1_763_800_000.0 + frame_index / fps if kind == "end" else None,
    )


class Kit:
    """The helpers above, for tests (conftest functions are not importable)."""

    WIDTH = WIDTH
    HEIGHT = HEIGHT
    BITS = BITS
    BLOCK = BLOCK
    index_image = staticmethod(index_image)
    read_index = staticmethod(read_index)
    decode = staticmethod(decode)
    frame = staticmethod(frame)
    box_detections = staticmethod(box_detections)
    event = staticmethod(event)


@pytest.fixture
def kit() -> type[Kit]:
    """The recording test helpers (see the module docstring)."""
    return Kit

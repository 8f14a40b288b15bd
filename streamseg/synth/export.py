"""Exporters: H.264 video, MOTS text ground truth (TrackEval) and COCO instance segmentation.

MOTS text, one row per object and frame::

    <frame> <object_id> <class_id> <height> <width> <rle>

as TrackEval's ``MOTSChallenge`` and ``KittiMOTS`` loaders read it:

- ``frame``: position of the frame in the written sequence plus ``first_frame``. MOTSChallenge
  counts from 1 (the default), KITTI MOTS from 0 (pass ``first_frame=0``). The video written from
  the same frames holds frame ``k`` (0-based) at MOTS frame ``k + first_frame``.
- ``class_id``: :data:`MOTS_CLASS_IDS`. ``person`` is 2, TrackEval's ``pedestrian`` in both
  loaders, so the stock loaders evaluate people as they are; the other classes get 3..7 (1 is
  KITTI's ``car`` and 10 TrackEval's ignore region, both left unused). To evaluate another class,
  point a loader's ``class_name_to_class_id`` at its id here.
- ``object_id``: ``class_id * 1000 + track_id``, the MOTS convention; ``track_id`` must be below
  1000 (``object_id % 1000`` gives it back).
- ``rle``: the compressed COCO RLE string (pycocotools) of the visible mask; masks of one frame
  are disjoint, as TrackEval requires.

COCO: categories ``1..6`` are :data:`CLASS_NAMES` in order (``category_id = class_id + 1``),
segmentations are compressed RLE with the string ``counts`` pycocotools writes, ``bbox`` is
``[x, y, width, height]`` of the visible mask, and every annotation also carries its
``track_id``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from streamseg.synth.frame import CLASS_NAMES, SynthFrame
from streamseg.synth.scene import SceneRenderer

logger = logging.getLogger(__name__)

MOTS_CLASS_IDS: dict[str, int] = {
    "person": 2,
    "excavator": 3,
    "truck": 4,
    "cow": 5,
    "sheep": 6,
    "ball": 7,
}
"""Class id column of the MOTS text files, by class name (see the module docstring)."""

MOTS_ID_STRIDE = 1000
"""MOTS object id = class id * 1000 + track id."""

_CODECS = {"h264": "libx264", "hevc": "libx265", "h265": "libx265"}

IMAGE_NAME_PATTERN = "[0-9][0-9][0-9][0-9][0-9][0-9].jpg"
"""The frame images the COCO exporter writes (``000001.jpg`` ...)."""


FPS_TOLERANCE = 1e-4
"""Largest relative difference allowed between an fps and the video rate that stands for it (a
fraction with a denominator up to 1001: 30000/1001 for 29.97)."""


def _fps_fraction(fps: float) -> Fraction:
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    rate = Fraction(fps).limit_denominator(1001)
    if rate == 0 or abs(float(rate) - fps) > FPS_TOLERANCE * fps:
        raise ValueError(
            f"fps {fps:g} has no video rate close enough (a fraction with a denominator up to "
            "1001): the video's timestamps would drift from the ground truth's"
        )
    return rate


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """Compressed COCO RLE of a (H, W) bool mask, ``counts`` as an ASCII string."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    counts = rle["counts"]
    return {
        "size": [int(rle["size"][0]), int(rle["size"][1])],
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else str(counts),
    }


class VideoWriter:
    """Streams frames into a video file with PyAV (libx264 and yuv420p for ``h264``).

    Args:
        path: file to write; the container follows its suffix (``.mp4``, ``.mkv``).
        fps: frame rate.
        codec: ``h264`` (libx264), ``hevc`` (libx265) or any PyAV encoder name.
        crf: constant rate factor passed to x264/x265 (lower is better quality).
    """

    def __init__(
        self, path: str | os.PathLike[str], fps: float, codec: str = "h264", crf: int = 18
    ) -> None:
        self.path = Path(path)
        self.rate = _fps_fraction(fps)
        self.codec = _CODECS.get(codec, codec)
        try:
            import av  # only the video exporter needs PyAV (training does not)

            av.codec.Codec(self.codec, "w")
            self._av = av
        except Exception as exc:  # PyAV raises its own error types for unknown codecs
            raise ValueError(
                f"codec must be an encoder PyAV has (e.g. 'h264', 'hevc', 'mpeg4'), got {codec!r}"
            ) from exc
        self.crf = crf
        self.count = 0
        self._container: Any = None
        self._stream: Any = None

    def add(self, image: np.ndarray) -> None:
        """Encode one (H, W, 3) uint8 BGR image; the first one fixes the size."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"image must be (H, W, 3) uint8 BGR, got shape {image.shape} dtype {image.dtype}"
            )
        height, width = image.shape[:2]
        if self._stream is None:
            if width % 2 or height % 2:
                raise ValueError(f"yuv420p needs an even width and height, got {width}x{height}")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = self._av.open(str(self.path), mode="w")
            stream = self._container.add_stream(self.codec, rate=self.rate)
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv420p"
            if self.codec in ("libx264", "libx265"):
                stream.options = {"crf": str(self.crf), "preset": "veryfast"}
            self._stream = stream
        elif (width, height) != (self._stream.width, self._stream.height):
            raise ValueError(
                f"every frame must be {self._stream.width}x{self._stream.height}, "
                f"got {width}x{height} at frame {self.count}"
            )
        frame = self._av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = self.count
        frame.time_base = 1 / self.rate
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.count += 1

    def close(self) -> None:
        """Flush the encoder and close the file."""
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def write_video(
    frames: Iterable[SynthFrame],
    path: str | os.PathLike[str],
    fps: float,
    codec: str = "h264",
) -> int:
    """Encode the images of ``frames`` into a video file.

    Args:
        frames: frames in display order, all the same even size.
        path: output file (``.mp4`` recommended).
        fps: frame rate of the file.
        codec: ``h264`` (libx264, yuv420p), ``hevc`` or another PyAV encoder name.

    Returns:
        Number of frames written. Zero frames write no file.
    """
    with VideoWriter(path, fps, codec) as writer:
        for frame in frames:
            writer.add(frame.image)
    return writer.count


def _mots_object_id(track_id: int, class_name: str) -> int:
    if not 0 <= track_id < MOTS_ID_STRIDE:
        raise ValueError(
            f"MOTS object ids are class*{MOTS_ID_STRIDE} + track id, so track ids must be in "
            f"0..{MOTS_ID_STRIDE - 1}; got track id {track_id}"
        )
    return MOTS_CLASS_IDS[class_name] * MOTS_ID_STRIDE + track_id


def _mots_lines(frame: SynthFrame, number: int, rles: list[dict[str, Any]]) -> list[str]:
    lines = []
    for obj, rle in zip(frame.objects, rles, strict=True):
        object_id = _mots_object_id(obj.track_id, obj.class_name)
        height, width = rle["size"]
        class_id = MOTS_CLASS_IDS[obj.class_name]
        lines.append(f"{number} {object_id} {class_id} {height} {width} {rle['counts']}\n")
    return lines


def write_mots(
    frames: Iterable[SynthFrame], path: str | os.PathLike[str], first_frame: int = 1
) -> None:
    """Write the ground truth of ``frames`` as a MOTS text file (see the module docstring).

    Args:
        frames: frames in order; the k-th (0-based) is written as frame ``k + first_frame``.
        path: output text file (``<seq>/gt/gt.txt`` for MOTSChallenge, ``<seq>.txt`` for KITTI).
        first_frame: 1 for TrackEval's MOTSChallenge loader, 0 for KittiMOTS.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="ascii") as fh:
        for k, frame in enumerate(frames):
            rles = [encode_rle(obj.mask) for obj in frame.objects]
            fh.writelines(_mots_lines(frame, k + first_frame, rles))


class _CocoBuilder:
    def __init__(self, image_dir: Path | None, image_ext: str) -> None:
        self.image_dir = image_dir
        self.image_ext = image_ext
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        if image_dir is not None:
            image_dir.mkdir(parents=True, exist_ok=True)

    def add(self, frame: SynthFrame, rles: list[dict[str, Any]]) -> None:
        image_id = len(self.images) + 1
        width, height = frame.resolution_wh
        file_name = f"{image_id:06d}{self.image_ext}"
        if self.image_dir is not None:
            target = self.image_dir / file_name
            if not cv2.imwrite(str(target), frame.image):
                raise OSError(f"could not write image {target}")
        self.images.append(
            {
                "id": image_id,
                "file_name": file_name,
                "width": width,
                "height": height,
                "frame_index": frame.index,
                "pts_s": frame.pts_s,
            }
        )
        for obj, rle in zip(frame.objects, rles, strict=True):
            x1, y1, x2, y2 = (float(v) for v in obj.xyxy)
            self.annotations.append(
                {
                    "id": len(self.annotations) + 1,
                    "image_id": image_id,
                    "category_id": obj.class_id + 1,
                    "segmentation": rle,
                    "area": int(np.count_nonzero(obj.mask)),
                    "bbox": [x1, y1, x2 - x1 + 1.0, y2 - y1 + 1.0],
                    "iscrowd": 0,
                    "track_id": obj.track_id,
                    "attributes": dict(obj.attributes),
                }
            )

    def dump(self, path: Path) -> None:
        data = {
            "info": {"description": "streamseg synthetic scenes", "version": "1"},
            "licenses": [],
            "categories": [
                {"id": i + 1, "name": name, "supercategory": "object"}
                for i, name in enumerate(CLASS_NAMES)
            ],
            "images": self.images,
            "annotations": self.annotations,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as fh:
            json.dump(data, fh)


def write_coco(
    frames: Iterable[SynthFrame],
    path: str | os.PathLike[str],
    image_dir: str | os.PathLike[str] | None = None,
    image_ext: str = ".jpg",
) -> None:
    """Write the ground truth of ``frames`` as COCO instance segmentation JSON.

    Args:
        frames: frames in order; the k-th (0-based) becomes image id ``k + 1`` named
            ``f"{k + 1:06d}{image_ext}"``.
        path: output JSON file.
        image_dir: when given, the images are written there as well.
        image_ext: ``.jpg`` or ``.png``.
    """
    if image_ext not in (".jpg", ".png"):
        raise ValueError(f"image_ext must be '.jpg' or '.png', got {image_ext!r}")
    builder = _CocoBuilder(None if image_dir is None else Path(image_dir), image_ext)
    for frame in frames:
        builder.add(frame, [encode_rle(obj.mask) for obj in frame.objects])
    builder.dump(Path(path))


def write_seqinfo(
    path: str | os.PathLike[str],
    name: str,
    num_frames: int,
    fps: float,
    resolution_wh: tuple[int, int],
    image_dir: str = "images",
    image_ext: str = ".jpg",
) -> None:
    """Write the MOTChallenge ``seqinfo.ini`` that TrackEval reads a sequence's length from."""
    width, height = resolution_wh
    text = (
        "[Sequence]\n"
        f"name={name}\n"
        f"imDir={image_dir}\n"
        f"frameRate={fps:g}\n"
        f"seqLength={num_frames}\n"
        f"imWidth={width}\n"
        f"imHeight={height}\n"
        f"imExt={image_ext}\n"
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")


def render_scene_video(
    kind: str,
    seed: int,
    out_dir: str | os.PathLike[str],
    num_frames: int,
    resolution_wh: tuple[int, int] = (640, 360),
    fps: float = 15.0,
    difficulty: str = "easy",
    num_objects: int | None = None,
    write_images: bool = True,
) -> dict[str, Path]:
    """Render one scene and write its video and ground truth in one pass.

    Layout of ``out_dir`` (a MOTSChallenge-style sequence folder)::

        video.mp4          H.264, yuv420p
        gt/gt.txt          MOTS text, frames from 1
        seqinfo.ini        sequence length, rate and size for TrackEval
        annotations.json   COCO instance segmentation
        images/            000001.jpg ... (when write_images)

    Args:
        kind: one of ``yard``, ``field``, ``pitch``.
        seed: non-negative integer that fixes the scene.
        out_dir: folder to write into (created).
        num_frames: number of frames, >= 1.
        resolution_wh: (width, height), both even.
        fps: frame rate.
        difficulty: ``easy`` or ``occlusion``.
        num_objects: exact number of objects, or None for the kind's default.
        write_images: also write every frame as a JPEG for the COCO file.

    Returns:
        Paths by name: ``video``, ``mots``, ``seqinfo``, ``coco`` and ``images`` (the folder,
        present only when ``write_images``).
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    # Checked before anything is written: a rejected size used to leave an empty gt.txt beside
    # the previous render's video and COCO file.
    width, height = resolution_wh
    if width % 2 or height % 2:
        raise ValueError(
            f"the video (yuv420p) needs an even width and height, got {width}x{height}"
        )
    _fps_fraction(fps)
    renderer = SceneRenderer(
        kind, seed, resolution_wh, fps=fps, difficulty=difficulty, num_objects=num_objects
    )
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    paths = {
        "video": root / "video.mp4",
        "mots": root / "gt" / "gt.txt",
        "seqinfo": root / "seqinfo.ini",
        "coco": root / "annotations.json",
    }
    if write_images:
        paths["images"] = root / "images"
    # A previous render's frames would stay beside this one's (its COCO file names the same
    # 000001.jpg ...): remove them, with or without new images.
    stale = sorted((root / "images").glob(IMAGE_NAME_PATTERN))
    for path in stale:
        path.unlink()
    if stale:
        logger.info("removed %d frame image(s) of a previous render in %s", len(stale), root)
    if not write_images:
        with contextlib.suppress(OSError):  # not there, or holding files of the user's
            (root / "images").rmdir()
    coco = _CocoBuilder(paths.get("images"), ".jpg")
    paths["mots"].parent.mkdir(parents=True, exist_ok=True)
    with (
        VideoWriter(paths["video"], fps) as video,
        paths["mots"].open("w", encoding="ascii") as mots,
    ):
        for k, frame in enumerate(renderer.frames(num_frames)):
            rles = [encode_rle(obj.mask) for obj in frame.objects]
            video.add(frame.image)
            mots.writelines(_mots_lines(frame, k + 1, rles))
            coco.add(frame, rles)
    coco.dump(paths["coco"])
    write_seqinfo(paths["seqinfo"], root.name or "synth", num_frames, fps, renderer.resolution_wh)
    logger.info("rendered %s seed %d: %d frames into %s", kind, seed, num_frames, root)
    return paths

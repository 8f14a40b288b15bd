"""Event snapshots: a JPEG of the event's frame with the event's objects highlighted.

The objects of the event (its ``track_ids``) get a red mask, a thick red box and a label; every
other object only a thin grey box, so the eye goes to what raised the event. Files are written
to a temporary name and renamed, so a reader never sees half a JPEG.

Names are decided from the event alone (``<stream>_<UTC start>_<rule>_<event id>.jpg``), so the
payload can carry the path before the file exists (it appears a few milliseconds later, written
off the analytics thread).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import supervision as sv

from streamseg.outputs.annotate import detection_labels

logger = logging.getLogger(__name__)

SNAPSHOT_SUFFIX = ".jpg"
HIGHLIGHT = sv.Color(r=230, g=20, b=20)
"""Colour of the event's objects (red)."""
OTHERS = sv.Color(r=170, g=170, b=170)
"""Colour of the frame's other objects (grey)."""


def event_mask(detections: sv.Detections, track_ids: Collection[int]) -> npt.NDArray[np.bool_]:
    """(N,) bool: which detections belong to the event (``tracker_id`` in ``track_ids``)."""
    if detections.tracker_id is None or not track_ids:
        return np.zeros(len(detections), dtype=bool)
    return np.isin(np.asarray(detections.tracker_id), np.fromiter(track_ids, dtype=np.int64))


def render_snapshot(
    image: npt.NDArray[np.uint8], detections: sv.Detections, track_ids: Collection[int]
) -> npt.NDArray[np.uint8]:
    """Draw the highlight on a copy of ``image``.

    Args:
        image: (H, W, 3) uint8 BGR, the event's frame.
        detections: that frame's detections (frame pixels; masks as CompactMask or dense).
        track_ids: the event's tracks.

    Returns:
        A new (H, W, 3) uint8 BGR image.
    """
    scene = image.copy()
    if len(detections) == 0:
        return scene
    chosen = event_mask(detections, track_ids)
    others = _subset(detections, ~chosen)
    if len(others):
        scene = sv.BoxAnnotator(color=OTHERS, thickness=1).annotate(scene, others)
    ours = _subset(detections, chosen)
    if len(ours):
        if ours.mask is not None:
            scene = sv.MaskAnnotator(color=HIGHLIGHT, opacity=0.5).annotate(scene, ours)
        scene = sv.BoxAnnotator(color=HIGHLIGHT, thickness=3).annotate(scene, ours)
        scene = sv.LabelAnnotator(
            color=HIGHLIGHT, text_color=sv.Color.WHITE, text_scale=0.5, text_padding=3
        ).annotate(scene, ours, labels=detection_labels(ours))
    return scene


def _subset(detections: sv.Detections, keep: npt.NDArray[np.bool_]) -> sv.Detections:
    subset = detections[keep]
    assert isinstance(subset, sv.Detections)  # a boolean index gives Detections
    return subset


def write_jpeg(path: Path, image: npt.NDArray[np.uint8], jpeg_quality: int) -> None:
    """Encode ``image`` ((H, W, 3) uint8 BGR) as JPEG at ``path``, atomically.

    Raises:
        OSError: the file could not be written.
        ValueError: OpenCV could not encode the image.
    """
    ok, data = cv2.imencode(SNAPSHOT_SUFFIX, image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data.tobytes())
    os.replace(tmp, path)


def write_snapshot(
    path: Path,
    image: npt.NDArray[np.uint8],
    detections: sv.Detections,
    track_ids: Collection[int],
    jpeg_quality: int = 90,
) -> None:
    """Render the highlight (:func:`render_snapshot`) and write it as a JPEG at ``path``."""
    write_jpeg(path, render_snapshot(image, detections, track_ids), jpeg_quality)
    logger.debug("snapshot %s", path)

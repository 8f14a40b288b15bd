"""What the synthetic world yields: frames with their ground truth.

The class list here is the built-in model's class list: global class ids 0..5 index
:data:`CLASS_NAMES` everywhere (``SynthObject.class_id``, ``Detections.class_id``). The exporters
map them to the ids their formats expect (COCO category ids 1..6, MOTS ids in
:mod:`streamseg.synth.export`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import supervision as sv

logger = logging.getLogger(__name__)

CLASS_NAMES: tuple[str, ...] = ("person", "excavator", "truck", "cow", "sheep", "ball")
"""Global class ids 0..5 of the built-in model, in order."""

SCENE_KINDS: tuple[str, ...] = ("yard", "field", "pitch")
"""Scenes the renderer knows: construction yard, farm field, sports pitch."""

DIFFICULTIES: tuple[str, ...] = ("easy", "occlusion")
"""``easy``: loose groups, few crossings. ``occlusion``: herds bunch and cross, players contest
the ball, workers pass behind machines."""

KIND_CLASSES: dict[str, tuple[str, ...]] = {
    "yard": ("person", "excavator", "truck"),
    "field": ("cow", "sheep"),
    "pitch": ("person", "ball"),
}
"""The classes each scene kind contains."""


@dataclass(frozen=True)
class SynthObject:
    """Ground truth of one visible object in one frame.

    Attributes:
        track_id: identity of the object, stable across the frames of one scene, >= 1.
        class_id: global class id, an index into :data:`CLASS_NAMES`.
        class_name: ``CLASS_NAMES[class_id]``.
        mask: (H, W) bool, frame pixels: the VISIBLE pixels of the object after occlusion by
            nearer objects. Masks of the objects of one frame are disjoint.
        xyxy: (4,) float32, frame pixels: box of ``mask`` with inclusive max coordinates (the
            supervision convention: ``x2`` is the last column that holds a mask pixel).
        attributes: free-form facts about the object, e.g. ``{"team": "red"}`` on the pitch.
    """

    track_id: int
    class_id: int
    class_name: str
    mask: npt.NDArray[np.bool_]
    xyxy: npt.NDArray[np.float32]
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SynthFrame:
    """One rendered frame and its ground truth.

    Attributes:
        index: 0-based frame number within the scene.
        pts_s: presentation time in seconds, ``index / fps``.
        image: (H, W, 3) uint8, BGR.
        objects: objects with at least ``min_visible_px`` visible pixels, sorted by track id.
    """

    index: int
    pts_s: float
    image: npt.NDArray[np.uint8]
    objects: list[SynthObject]

    @property
    def resolution_wh(self) -> tuple[int, int]:
        """(width, height) of the image in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])

    def to_detections(self) -> sv.Detections:
        """The ground truth as the pipeline's currency.

        Returns:
            ``supervision.Detections`` with ``xyxy`` (N, 4) float32 frame pixels, ``mask`` as a
            ``supervision.CompactMask`` in frame coordinates, ``class_id`` (N,) int, ``tracker_id``
            (N,) int, ``confidence`` all 1.0 and ``data["class_name"]``.
        """
        height, width = self.image.shape[:2]
        if not self.objects:
            return sv.Detections.empty()
        xyxy = np.stack([obj.xyxy for obj in self.objects]).astype(np.float32)
        dense = np.stack([obj.mask for obj in self.objects])
        mask = sv.CompactMask.from_dense(dense, xyxy, image_shape=(height, width))
        return sv.Detections(
            xyxy=xyxy,
            mask=mask,
            confidence=np.ones(len(self.objects), dtype=np.float32),
            class_id=np.array([obj.class_id for obj in self.objects], dtype=int),
            tracker_id=np.array([obj.track_id for obj in self.objects], dtype=int),
            data={"class_name": np.array([obj.class_name for obj in self.objects])},
        )

"""Drawing detections on frames with supervision annotators (the only place masks are upsampled)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import supervision as sv


class FrameAnnotator:
    """Draws masks, boxes and labels; colours follow the track id once a tracker runs.

    Args:
        masks: draw instance masks (semi-transparent).
        boxes: draw bounding boxes.
        labels: draw "class #track confidence" labels.
    """

    def __init__(self, masks: bool = True, boxes: bool = True, labels: bool = True) -> None:
        self.masks = masks
        self.boxes = boxes
        self.labels = labels
        self._annotators: dict[sv.ColorLookup, tuple[sv.MaskAnnotator, sv.BoxAnnotator]] = {}
        self._label_annotators: dict[sv.ColorLookup, sv.LabelAnnotator] = {}

    def _for(self, lookup: sv.ColorLookup) -> tuple[sv.MaskAnnotator, sv.BoxAnnotator]:
        if lookup not in self._annotators:
            self._annotators[lookup] = (
                sv.MaskAnnotator(opacity=0.45, color_lookup=lookup),
                sv.BoxAnnotator(thickness=2, color_lookup=lookup),
            )
            self._label_annotators[lookup] = sv.LabelAnnotator(
                text_scale=0.45, text_padding=3, color_lookup=lookup
            )
        return self._annotators[lookup]

    def annotate(
        self, image: npt.NDArray[np.uint8], detections: sv.Detections
    ) -> npt.NDArray[np.uint8]:
        """Return a new annotated copy of ``image`` ((H, W, 3) uint8 BGR, frame pixels)."""
        scene = image.copy()
        if len(detections) == 0:
            return scene
        lookup = sv.ColorLookup.TRACK if detections.tracker_id is not None else sv.ColorLookup.CLASS
        mask_annotator, box_annotator = self._for(lookup)
        if self.masks and detections.mask is not None:
            scene = mask_annotator.annotate(scene, detections)
        if self.boxes:
            scene = box_annotator.annotate(scene, detections)
        if self.labels:
            scene = self._label_annotators[lookup].annotate(
                scene, detections, labels=detection_labels(detections)
            )
        return scene


def detection_labels(detections: sv.Detections) -> list[str]:
    """One label per detection: ``"person #7 0.91"`` (track id only when tracked)."""
    names = detections.data.get("class_name")
    labels = []
    for i in range(len(detections)):
        if names is not None:
            parts = [str(names[i])]
        else:
            parts = ["object" if detections.class_id is None else str(detections.class_id[i])]
        if detections.tracker_id is not None and detections.tracker_id[i] >= 0:
            parts.append(f"#{int(detections.tracker_id[i])}")
        if detections.confidence is not None:
            parts.append(f"{float(detections.confidence[i]):.2f}")
        labels.append(" ".join(parts))
    return labels

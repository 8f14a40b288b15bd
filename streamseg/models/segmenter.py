"""The inference stage: frames in, ``supervision.Detections`` with masks out."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import supervision as sv
import torch

from streamseg.models.backend import Backend
from streamseg.models.decode import DEFAULT_MASK_THRESHOLD, DecodeSettings, decode_batch
from streamseg.models.metadata import ModelInfo
from streamseg.models.preprocess import letterbox_batch
from streamseg.models.refine import refine_detections

__all__ = ["MaskRefine", "ModelInfo", "Segmenter"]

logger = logging.getLogger(__name__)


FIT_SHRINK = 2
"""The mask refinement fits its coefficients at 1 / FIT_SHRINK of the model's input resolution
(the fast guided filter). Against a fit at the input's resolution, on 100 held-out frames per
kind: mask mAP@0.5 yard 0.988 -> 0.984, field 0.856 -> 0.857, pitch 0.687 -> 0.686, and about
half the time (640x360: 2.5 instead of 6 ms with 9 objects, 3.9 instead of 8.6 with 21)."""


@dataclass(frozen=True)
class MaskRefine:
    """Edge-aware mask refinement (:mod:`streamseg.models.refine`) after decoding.

    Attributes:
        radius: guided filter window half-size in model input pixels, >= 1, the same for
            every frame size relative to its objects (:meth:`for_frame`).
        eps: guided filter regularization, > 0 (colours in 0..1).
    """

    radius: int = 4
    eps: float = 0.001

    def for_frame(self, gain: float) -> tuple[int, int]:
        """``(radius, subsample)`` for a frame letterboxed with ``gain`` (input / frame pixels).

        The filter's coefficients are fitted on the frame shrunk ``subsample = round(
        FIT_SHRINK / gain)`` times (at least 1): at about half the model's input resolution,
        still about twice as fine as its prototypes, whatever the frame's size (a 640x360 frame
        in a 704x384 input is shrunk twice, not fitted whole at 1.9 times the cost). The window
        is scaled to match (``radius`` input pixels), and the masks come out at the frame's
        resolution.
        """
        scale = 1.0 / gain
        subsample = max(1, round(FIT_SHRINK * scale))
        return max(1, round(self.radius * scale / subsample)), subsample


class Segmenter:
    """Instance segmentation with a YOLO-seg model; one verb, :meth:`segment`.

    Build it with :func:`streamseg.models.load_segmenter`. Preprocessing, the forward pass and
    decoding all run on the model's device. :meth:`segment` keeps no per-call state, so several
    threads may call it at once (the pipeline's inference workers do; TorchScript modules and ONNX
    Runtime sessions allow concurrent runs).

    Attributes:
        info: what the model is and where it runs.
    """

    def __init__(
        self,
        backend: Backend,
        info: ModelInfo,
        *,
        confidence: float = 0.25,
        iou: float = 0.45,
        max_detections: int = 100,
        classes: Sequence[str] | None = None,
        masks: bool = True,
        max_batch: int | None = None,
        max_candidates: int = 3000,
        mask_threshold: float = DEFAULT_MASK_THRESHOLD,
        refine: MaskRefine | None = None,
    ) -> None:
        """Wrap a loaded backend.

        Args:
            backend: the loaded network.
            info: facts about it (input size, class names, ...).
            confidence: keep candidates whose best class score is strictly above this, in [0, 1).
            iou: NMS IoU threshold within a class, in (0, 1].
            max_detections: at most this many detections per frame, >= 1.
            classes: keep only these class names (checked against ``info.class_names``);
                None keeps all.
            masks: decode masks; when False ``Detections.mask`` is None.
            max_batch: frames per forward; larger inputs to :meth:`segment` are split.
                None sends them all at once.
            max_candidates: at most this many top-scored candidates per frame enter NMS.
            mask_threshold: mask probability threshold, in (0, 1).
            refine: snap each mask to the frame's edges after decoding (``model.mask_refine``);
                None leaves the decoded masks as they are.

        Raises:
            ValueError: A threshold is out of range or ``classes`` names an unknown class (the
                message lists the valid names).
        """
        if not 0.0 <= confidence < 1.0:
            raise ValueError(f"confidence: expected a value in [0, 1), got {confidence}")
        if not 0.0 < iou <= 1.0:
            raise ValueError(f"iou: expected a value in (0, 1], got {iou}")
        if max_detections < 1:
            raise ValueError(f"max_detections: expected >= 1, got {max_detections}")
        if max_candidates < 1:
            raise ValueError(f"max_candidates: expected >= 1, got {max_candidates}")
        if max_batch is not None and max_batch < 1:
            raise ValueError(f"max_batch: expected >= 1 or None, got {max_batch}")
        if not 0.0 < mask_threshold < 1.0:
            raise ValueError(f"mask_threshold: expected a value in (0, 1), got {mask_threshold}")
        if refine is not None and (refine.radius < 1 or not refine.eps > 0):
            raise ValueError(f"refine: expected radius >= 1 and eps > 0, got {refine}")
        allowed: torch.Tensor | None = None
        if classes is not None:
            unknown = [c for c in classes if c not in info.class_names]
            if unknown:
                raise ValueError(
                    f"classes: {unknown} are not classes of {info.path}; valid names: "
                    f"{info.class_names}"
                )
            wanted = set(classes)
            allowed = torch.tensor(
                [name in wanted for name in info.class_names], device=backend.device
            )
        self.info = info
        self.refine = refine if masks else None
        self._backend = backend
        self._max_batch = max_batch
        self._settings = DecodeSettings(
            confidence=confidence,
            iou=iou,
            max_detections=max_detections,
            max_candidates=max_candidates,
            mask_threshold=mask_threshold,
            masks=masks,
            allowed_classes=allowed,
        )

    @property
    def backend(self) -> Backend:
        """The loaded network: ``backend(images)`` -> (output0, output1), for tools."""
        return self._backend

    @property
    def mask_threshold(self) -> float:
        """The mask probability threshold in use (see ``ModelConfig.mask_threshold``)."""
        return self._settings.mask_threshold

    def segment(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[sv.Detections]:
        """Segment a batch of frames.

        Args:
            images: frames, each (h, w, 3) uint8 BGR; sizes may differ.

        Returns:
            One ``Detections`` per frame, in order: xyxy (N, 4) float32 in that frame's pixels
            (clipped), confidence (N,) float32, class_id (N,) int, ``data["class_name"]`` (N,)
            str, mask a ``supervision.CompactMask`` with image_shape (h, w) whose crops are the
            masks inside their boxes, or with :attr:`refine` the refined masks, which may reach
            a few pixels past them (None when masks are off). Rows are sorted by confidence,
            highest first; a frame without detections gets zero rows with the same fields.

        Raises:
            ValueError: An image is not an (h, w, 3) uint8 array.
        """
        for i, image in enumerate(images):
            if (
                not isinstance(image, np.ndarray)
                or image.dtype != np.uint8
                or image.ndim != 3
                or image.shape[2] != 3
                or image.shape[0] < 1
                or image.shape[1] < 1
            ):
                found = (
                    f"{image.dtype} array of shape {image.shape}"
                    if isinstance(image, np.ndarray)
                    else type(image).__name__
                )
                raise ValueError(f"images[{i}]: expected an (h, w, 3) uint8 BGR array, got {found}")
        step = self._max_batch or max(len(images), 1)
        results: list[sv.Detections] = []
        for start in range(0, len(images), step):
            results.extend(self._segment_batch(images[start : start + step]))
        return results

    def _segment_batch(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[sv.Detections]:
        backend = self._backend
        with torch.inference_mode():
            batch, letterboxes = letterbox_batch(
                images,
                self.info.input_hw,
                device=backend.device,
                dtype=backend.input_dtype,
                channels_last=backend.channels_last,
            )
            output0, output1 = backend(batch)
            if output0.shape[0] != len(images) or output1.shape[0] != len(images):
                raise RuntimeError(
                    f"{self.info.path}: the model answered a batch of {len(images)} frames with "
                    f"outputs of batch {output0.shape[0]} and {output1.shape[0]}"
                )
            decoded = decode_batch(
                output0.float(),
                output1.float(),
                letterboxes,
                self.info.class_names,
                self._settings,
            )
        refine = self.refine
        if refine is None:
            return decoded
        out = []
        for image, dets, lb in zip(images, decoded, letterboxes, strict=True):
            radius, subsample = refine.for_frame(lb.gain)
            out.append(refine_detections(image, dets, radius, refine.eps, subsample))
        return out

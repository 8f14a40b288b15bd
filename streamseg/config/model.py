"""The ``model`` section: which segmentation model runs, where, and how its output is filtered."""

from __future__ import annotations

import logging
import re
from pathlib import PurePath
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from streamseg.config._base import ConfigModel, Float, Int, NonEmptyStr

logger = logging.getLogger(__name__)

BUILTIN_WEIGHTS = "builtin"
"""``weights`` value that selects the model shipped with the package."""

FORMAT_BY_SUFFIX: dict[str, Literal["torchscript", "onnx"]] = {
    ".torchscript": "torchscript",
    ".pt": "torchscript",
    ".pth": "torchscript",
    ".jit": "torchscript",
    ".ts": "torchscript",
    ".onnx": "onnx",
}
"""File extension (lower case) -> model format, used by ``format: auto``; the same endings
``streamseg.models.loader`` (and so ``streamseg info``) accepts."""

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def infer_format(weights: str) -> Literal["torchscript", "onnx"] | None:
    """The model format implied by ``weights``: builtin -> torchscript, else by extension.

    Args:
        weights: ``"builtin"`` or a file path.

    Returns:
        ``"torchscript"`` or ``"onnx"``; ``None`` when the extension is not one of
        :data:`FORMAT_BY_SUFFIX`.
    """
    if weights == BUILTIN_WEIGHTS:
        return "torchscript"
    return FORMAT_BY_SUFFIX.get(PurePath(weights).suffix.lower())


class MaskRefineConfig(ConfigModel):
    """``model.mask_refine``: edge-aware refinement of each mask on the frame's pixels.

    The model's masks come from prototypes at a quarter of its input resolution; a colour
    guided filter (:mod:`streamseg.models.refine`) snaps each one to the object's outline in
    the frame. On by default: it raises the built-in model's held-out mask mAP@0.5 where masks
    are coarse (``bench/model.py``: field 0.839 -> 0.856, pitch 0.740 -> 0.764; yard 0.979 ->
    0.982) and mAP@[.5:.95] on every kind by 0.07-0.15, for 2.5-4 ms per 640x360 frame on a
    2-core CPU. Turn it off to save that time when masks only need to be rough.

    Example::

        model:
          mask_refine: {enabled: false}
    """

    enabled: bool = Field(default=True, description="refine every mask on the frame's pixels")
    radius: Int = Field(
        default=4,
        ge=1,
        le=32,
        description="filter window half-size in model input pixels (scaled to the frame)",
    )
    eps: Float = Field(
        default=0.001,
        gt=0,
        le=1,
        description="guided filter regularization (colours in 0..1): larger smooths more, "
        "smaller follows fainter edges",
    )


class ModelConfig(ConfigModel):
    """The instance-segmentation model (YOLO-seg output layout) and its post-processing."""

    weights: NonEmptyStr = Field(
        default=BUILTIN_WEIGHTS,
        description="'builtin' or a path to a .torchscript/.pt/.pth/.jit/.ts (TorchScript) or "
        ".onnx file",
    )
    format: Literal["auto", "torchscript", "onnx"] = Field(
        default="auto",
        validate_default=True,
        description="model file format; auto infers it from the extension (builtin: torchscript)",
    )
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:<index>")
    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        default="auto", description="inference precision; auto = fp16 on CUDA, fp32 on CPU"
    )
    confidence: Float = Field(
        default=0.25,
        ge=0,
        lt=1,
        description="minimum detection score (kept: above it); with a tracker the model keeps "
        "detections down to tracker.low_threshold for it, and the weaker ones are shown only "
        "while a confirmed track holds them",
    )
    iou: Float = Field(default=0.45, gt=0, le=1, description="IoU above which NMS suppresses a box")
    max_detections: Int = Field(default=100, ge=1, description="most detections kept per frame")
    mask_threshold: Float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="mask probability above which a pixel belongs to the object (null: the "
        "threshold the model file was calibrated for, 0.4 for the built-in model; 0.5 for a "
        "file that records none, as ultralytics thresholds)",
    )
    mask_refine: MaskRefineConfig = Field(
        default_factory=MaskRefineConfig,
        description="edge-aware refinement of the masks on the frame (see MaskRefineConfig)",
    )
    class_names: list[NonEmptyStr] | None = Field(
        default=None,
        min_length=1,
        description="class names that replace the ones in the model file",
    )
    classes: list[NonEmptyStr] | None = Field(
        default=None, min_length=1, description="keep only detections of these class names"
    )
    batch_size: Int = Field(
        default=4, ge=1, description="frames (from several streams) per forward pass"
    )
    batch_timeout_ms: Float = Field(
        default=5.0, ge=0, description="how long to wait to fill a batch, milliseconds"
    )
    threads: Int | None = Field(
        default=None,
        ge=1,
        description="CPU inference threads; null = half the CPUs (the rest decode video)",
    )
    workers: Int | None = Field(
        default=None,
        ge=1,
        description="batches in the model at once, each on its own thread (results keep each "
        "stream's frame order); null = as many as fit the CPUs at `threads` each on a CPU "
        "(2 with the default threads), 1 on a GPU",
    )

    @field_validator("format")
    @classmethod
    def _format_matches_weights(cls, value: str, info: ValidationInfo) -> str:
        weights = info.data.get("weights")
        if weights is None:  # weights itself was invalid; that error is reported already
            return value
        if weights == BUILTIN_WEIGHTS and value == "onnx":
            raise ValueError("expected auto or torchscript: the builtin model is TorchScript")
        if value == "auto" and infer_format(weights) is None:
            suffixes = ", ".join(FORMAT_BY_SUFFIX)
            raise ValueError(
                f"cannot infer the format of weights {weights!r}: expected an extension among "
                f"{suffixes}, or set format: torchscript or onnx"
            )
        return value

    @field_validator("device")
    @classmethod
    def _device_spelling(cls, value: str) -> str:
        # Spelling only: whether CUDA exists is decided when the model loads.
        if not _DEVICE.match(value):
            raise ValueError("expected one of 'auto', 'cpu', 'cuda', 'cuda:<index>'")
        return value

    @field_validator("classes")
    @classmethod
    def _classes_known(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        names = info.data.get("class_names")
        if value is None or not names:
            return value
        unknown = [name for name in value if name not in names]
        if unknown:
            raise ValueError(
                f"expected names from class_names ({', '.join(names)}); "
                f"not among them: {', '.join(unknown)}"
            )
        return value

    @property
    def resolved_format(self) -> Literal["torchscript", "onnx"]:
        """The format to load: ``format`` when explicit, else inferred from ``weights``."""
        if self.format != "auto":
            return self.format
        inferred = infer_format(self.weights)
        if inferred is None:  # unreachable after validation; kept for model_construct()
            raise ValueError(f"weights {self.weights!r}: cannot infer the model format")
        return inferred

"""What a model file says about itself, and the facts the loader establishes about a model.

Ultralytics exports carry metadata: TorchScript files hold JSON in the extra file ``config.txt``;
ONNX files hold string ``metadata_props`` where ``names`` is a Python dict literal such as
``"{0: 'person', 1: 'car'}"`` and ``imgsz`` a list literal such as ``"[640, 640]"``.
"""

from __future__ import annotations

import ast
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamseg.models.errors import ModelLoadError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """Facts about a loaded YOLO-seg model.

    Attributes:
        path: file the model was loaded from.
        format: ``"torchscript"`` or ``"onnx"``.
        input_hw: (height, width) of the network input in pixels, fixed at export.
        class_names: one name per class id.
        num_masks: number of mask coefficients / prototypes (nm).
        num_anchors: number of candidate boxes per image (A).
        proto_hw: (height, width) of the prototype grid.
        device: torch device the model runs on, e.g. ``"cpu"`` or ``"cuda:0"``.
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"``.
        mask_threshold: the mask probability threshold the file was calibrated for (metadata
            ``mask_threshold``), or ``None`` when it records none.
    """

    path: str
    format: str
    input_hw: tuple[int, int]
    class_names: list[str]
    num_masks: int
    num_anchors: int
    proto_hw: tuple[int, int]
    device: str
    precision: str
    mask_threshold: float | None = None

    @property
    def num_classes(self) -> int:
        """Number of classes (nc)."""
        return len(self.class_names)


@dataclass(frozen=True)
class FileMetadata:
    """Metadata read from a model file; every field is ``None`` when the file does not carry it.

    Attributes:
        names: class names by class id.
        imgsz: (height, width) the model was exported for.
        stride: largest stride of the network.
        task: ultralytics task name, ``"segment"`` for YOLO-seg.
        mask_threshold: mask probability threshold calibrated for these weights (our exports
            write it, see ``streamseg train --export --mask-threshold``; ultralytics files do
            not, and are thresholded at 0.5 as ultralytics does).
    """

    names: list[str] | None = None
    imgsz: tuple[int, int] | None = None
    stride: int | None = None
    task: str | None = None
    mask_threshold: float | None = None


def _parse_literal(value: Any, key: str, source: str) -> Any:
    """Parse a metadata value that may be JSON or a Python literal (ultralytics ONNX)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError) as exc:
        raise ModelLoadError(
            f"{source}: metadata {key!r} should be JSON or a Python literal, got {value!r}"
        ) from exc


def parse_names(value: Any, source: str) -> list[str]:
    """Turn stored class names into a list indexed by class id.

    Args:
        value: a dict ``{id: name}`` (ids may be strings, as JSON stores them), a list of names,
            or a string holding either as JSON or as a Python literal.
        source: file the value came from, for error messages.

    Returns:
        Names by class id; ids missing from a dict are named ``class_<id>``.

    Raises:
        ModelLoadError: The value is neither a dict nor a list, or a key is not an integer.
    """
    parsed = _parse_literal(value, "names", source)
    if isinstance(parsed, Mapping):
        try:
            by_id = {int(k): str(v) for k, v in parsed.items()}
        except (TypeError, ValueError) as exc:
            raise ModelLoadError(
                f"{source}: metadata 'names' should map integer class ids to names, "
                f"got keys {list(parsed)[:5]}"
            ) from exc
        if not by_id:
            return []
        if min(by_id) < 0:
            raise ModelLoadError(f"{source}: metadata 'names' has a negative class id {min(by_id)}")
        return [by_id.get(i, f"class_{i}") for i in range(max(by_id) + 1)]
    if isinstance(parsed, (list, tuple)):
        return [str(v) for v in parsed]
    raise ModelLoadError(
        f"{source}: metadata 'names' should be a dict {{id: name}} or a list of names, "
        f"got {type(parsed).__name__} {parsed!r}"
    )


def parse_imgsz(value: Any, source: str) -> tuple[int, int]:
    """Turn a stored input size into (height, width).

    Args:
        value: an int (square), a list ``[h, w]``, or a string holding either.
        source: file the value came from, for error messages.

    Returns:
        (height, width) in pixels.

    Raises:
        ModelLoadError: The value is not one or two positive integers.
    """
    parsed = _parse_literal(value, "imgsz", source)
    if isinstance(parsed, int) and not isinstance(parsed, bool):
        parsed = [parsed, parsed]
    if (
        isinstance(parsed, (list, tuple))
        and len(parsed) in (1, 2)
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in parsed)
    ):
        return (int(parsed[0]), int(parsed[-1]))
    raise ModelLoadError(
        f"{source}: metadata 'imgsz' should be a positive int or [height, width], got {value!r}"
    )


def parse_mask_threshold(value: Any, source: str) -> float:
    """Turn a stored mask threshold into a float in (0, 1).

    Args:
        value: a number, or a string holding one.
        source: file the value came from, for error messages.

    Raises:
        ModelLoadError: The value is not a number strictly between 0 and 1.
    """
    parsed = _parse_literal(value, "mask_threshold", source)
    if isinstance(parsed, (int, float)) and not isinstance(parsed, bool) and 0 < parsed < 1:
        return float(parsed)
    raise ModelLoadError(
        f"{source}: metadata 'mask_threshold' should be a number in (0, 1), got {value!r}"
    )


def parse_metadata(raw: Mapping[str, Any], source: str) -> FileMetadata:
    """Build :class:`FileMetadata` from a dict of stored values (keys other than ours ignored).

    Args:
        raw: decoded ``config.txt`` (TorchScript) or ``metadata_props`` (ONNX).
        source: file the values came from, for error messages.

    Returns:
        The metadata, with ``None`` for what is absent.
    """
    names = parse_names(raw["names"], source) if raw.get("names") is not None else None
    imgsz = parse_imgsz(raw["imgsz"], source) if raw.get("imgsz") is not None else None
    stride: int | None = None
    if raw.get("stride") is not None:
        parsed_stride = _parse_literal(raw["stride"], "stride", source)
        if isinstance(parsed_stride, (int, float)):
            stride = int(parsed_stride)
    task = str(raw["task"]) if raw.get("task") is not None else None
    mask_threshold = (
        parse_mask_threshold(raw["mask_threshold"], source)
        if raw.get("mask_threshold") is not None
        else None
    )
    return FileMetadata(
        names=names, imgsz=imgsz, stride=stride, task=task, mask_threshold=mask_threshold
    )

"""``streamseg info MODEL``: what a model file is, without building a pipeline."""

from __future__ import annotations

import logging
from pathlib import Path

from streamseg.models.decode import DEFAULT_MASK_THRESHOLD
from streamseg.models.device import resolve_device
from streamseg.models.loader import open_model, resolve_weights
from streamseg.models.metadata import ModelInfo

__all__ = ["ModelInfo", "describe_model", "format_info"]

logger = logging.getLogger(__name__)


def describe_model(path: str | Path, device: str = "cpu") -> ModelInfo:
    """Load a model file, run one test forward, and report what it is.

    Args:
        path: a TorchScript or ONNX YOLO-seg export, or ``"builtin"``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Returns:
        The model's facts.

    Raises:
        ModelLoadError: The file cannot be loaded or is not the YOLO-seg layout.
    """
    resolved = resolve_device(device)
    loaded = open_model(
        resolve_weights(str(path)),
        device=resolved,
        require_device=device.strip().lower() != "auto",
    )
    return loaded.info


def format_info(info: ModelInfo) -> str:
    """Render model facts as aligned ``key: value`` lines for a terminal.

    Args:
        info: the model's facts.

    Returns:
        Multi-line text without a trailing newline.
    """
    names = ", ".join(f"{i}={name}" for i, name in enumerate(info.class_names))
    rows = [
        ("path", info.path),
        ("format", info.format),
        ("input", f"{info.input_hw[0]}x{info.input_hw[1]} (height x width)"),
        ("classes", f"{len(info.class_names)}: {names}"),
        ("masks", f"{info.num_masks} prototypes of {info.proto_hw[0]}x{info.proto_hw[1]}"),
        (
            "mask threshold",
            f"{DEFAULT_MASK_THRESHOLD:g} (none recorded)"
            if info.mask_threshold is None
            else f"{info.mask_threshold:g}",
        ),
        ("anchors", str(info.num_anchors)),
        ("device", info.device),
        ("precision", info.precision),
    ]
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{key + ':':<{width + 1}} {value}" for key, value in rows)

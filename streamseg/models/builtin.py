"""Where the built-in weights live inside the installed package."""

from __future__ import annotations

import logging
from pathlib import Path

from streamseg.models.errors import ModelLoadError

logger = logging.getLogger(__name__)

BUILTIN_WEIGHTS_NAME = "builtin.torchscript"
"""File name of the built-in model inside :data:`WEIGHTS_DIR`."""

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
"""Package folder that holds the built-in weights (``streamseg/models/weights/``)."""


def builtin_weights_path() -> Path:
    """Return the path of the built-in TorchScript weights shipped with the package.

    Returns:
        Path to ``streamseg/models/weights/builtin.torchscript`` (:data:`WEIGHTS_DIR`).

    Raises:
        ModelLoadError: The file is not in this install.
    """
    path = WEIGHTS_DIR / BUILTIN_WEIGHTS_NAME
    if not path.is_file():
        raise ModelLoadError(
            f"the built-in weights are not in this install (expected {path}); they ship with "
            "issue #3 (streamseg's own model trained on the synthetic world). Until then, pass a "
            "YOLO-seg export instead: set `model.weights` to a TorchScript or ONNX file exported "
            "from a YOLOv8/YOLO11 segmentation model, e.g. "
            "`yolo export model=yolov8n-seg.pt format=onnx imgsz=640`."
        )
    return path

"""The one error type the model loader raises."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


class ModelLoadError(Exception):
    """A model could not be loaded or does not have the expected layout.

    Raised for a missing weights file, an unknown or unreadable format, an output layout that is
    not the YOLO-seg layout, a device that is not available, and a missing optional extra
    (``onnxruntime``). The message says what was expected and what was found.
    """

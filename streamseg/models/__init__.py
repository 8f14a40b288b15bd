"""Instance segmentation with YOLO-seg models (TorchScript or ONNX), on GPU or CPU.

``load_segmenter(cfg)`` opens the model named by the ``model`` section of a pipeline and returns
a :class:`Segmenter` whose ``segment(frames)`` gives one ``supervision.Detections`` per frame,
with masks as ``supervision.CompactMask`` crops in frame pixels.
"""

from streamseg.models.builtin import builtin_weights_path
from streamseg.models.device import resolve_device
from streamseg.models.errors import ModelLoadError
from streamseg.models.info import describe_model, format_info
from streamseg.models.loader import ModelSettings, load_segmenter
from streamseg.models.metadata import ModelInfo
from streamseg.models.segmenter import Segmenter

__all__ = [
    "ModelInfo",
    "ModelLoadError",
    "ModelSettings",
    "Segmenter",
    "builtin_weights_path",
    "describe_model",
    "format_info",
    "load_segmenter",
    "resolve_device",
]

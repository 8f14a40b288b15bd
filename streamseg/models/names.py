"""A model's class names from the file's metadata alone, without loading the network.

``streamseg validate`` and ``streamseg run`` use them to check, before anything starts, that
every class a pipeline filters on is one the model outputs: a rule watching ``persn`` would
never fire, silently. Reading them costs a zip directory lookup (TorchScript) or a protobuf
parse (ONNX), not a model load.

When they cannot be known this way (the file is missing or unreadable, records no names, or is
ONNX without the ``onnx`` package), the answer is None: the check is then left to the runtime,
which knows the names once the model is loaded (:meth:`streamseg.runtime.pipeline.Pipeline.
start_model`), and a missing or broken file is reported by the loader as usual.
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

from streamseg.models.loader import ModelSettings, detect_format, resolve_weights
from streamseg.models.metadata import parse_names
from streamseg.models.torchscript_backend import METADATA_FILE

logger = logging.getLogger(__name__)

_EXTRA_SUFFIX = f"/extra/{METADATA_FILE}"
"""Where ``torch.jit.save`` puts an extra file inside the archive (under its top folder)."""


def _torchscript_names(path: Path) -> list[str] | None:
    with zipfile.ZipFile(path) as archive:
        member = next((n for n in archive.namelist() if n.endswith(_EXTRA_SUFFIX)), None)
        if member is None:
            return None
        text = archive.read(member).decode("utf-8", errors="replace")
    if not text.strip():
        return None
    raw = json.loads(text)
    names = raw.get("names") if isinstance(raw, dict) else None
    return parse_names(names, str(path)) if names is not None else None


def _onnx_names(path: Path) -> list[str] | None:
    try:
        import onnx
    except ImportError:
        return None
    proto = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    return parse_names(props["names"], str(path)) if "names" in props else None


def model_class_names(cfg: ModelSettings) -> list[str] | None:
    """The class names a pipeline's model will have: ``class_names`` if set, else the file's.

    Args:
        cfg: the ``model`` section (``weights``, ``format``, ``class_names`` are read).

    Returns:
        One name per class id, or None when they cannot be known without loading the model
        (see the module docstring). Never raises for a bad file.
    """
    if cfg.class_names is not None:
        return list(cfg.class_names)
    try:
        path = resolve_weights(cfg.weights)
        if detect_format(path, cfg.format) == "onnx":
            return _onnx_names(path)
        return _torchscript_names(path)
    except Exception as exc:  # missing file, bad zip, JSON or protobuf alike: the loader
        # reports those properly when the model loads; a peek must not stop validation.
        logger.debug("class names of %s not read: %s: %s", cfg.weights, type(exc).__name__, exc)
        return None

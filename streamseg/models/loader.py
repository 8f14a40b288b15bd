"""Open a YOLO-seg model file, check its layout, and build a :class:`Segmenter`."""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from streamseg.models.backend import Backend, check_layout, resolve_class_names
from streamseg.models.builtin import builtin_weights_path
from streamseg.models.decode import DEFAULT_MASK_THRESHOLD
from streamseg.models.device import default_cpu_threads, resolve_device, resolve_precision
from streamseg.models.errors import ModelLoadError
from streamseg.models.metadata import ModelInfo
from streamseg.models.onnx_backend import OnnxBackend
from streamseg.models.preprocess import PAD_VALUE
from streamseg.models.segmenter import MaskRefine, Segmenter
from streamseg.models.torchscript_backend import TorchScriptBackend

logger = logging.getLogger(__name__)

FORMATS = ("auto", "torchscript", "onnx")
"""Accepted values of ``ModelConfig.format``."""

BUILTIN = "builtin"
"""``ModelConfig.weights`` value that selects the built-in model."""

_ONNX_SUFFIXES = (".onnx",)
_TORCHSCRIPT_SUFFIXES = (".torchscript", ".pt", ".pth", ".jit", ".ts")


class MaskRefineSettings(Protocol):
    """The fields of ``streamseg.config.model.MaskRefineConfig`` the loader reads."""

    @property
    def enabled(self) -> bool:
        """Refine the masks on the frame's pixels."""
        ...

    @property
    def radius(self) -> int:
        """Filter window half-size, model input pixels."""
        ...

    @property
    def eps(self) -> float:
        """Guided filter regularization."""
        ...


class ModelSettings(Protocol):
    """The fields of ``streamseg.config.ModelConfig`` the loader reads.

    Any object with these attributes works (the pydantic ``ModelConfig`` in particular).
    """

    @property
    def weights(self) -> str:
        """``"builtin"`` or a path to a ``.torchscript`` / ``.onnx`` YOLO-seg export."""
        ...

    @property
    def format(self) -> str:
        """``"auto"``, ``"torchscript"`` or ``"onnx"``."""
        ...

    @property
    def device(self) -> str:
        """``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``."""
        ...

    @property
    def precision(self) -> str:
        """``"auto"``, ``"fp32"``, ``"fp16"`` or ``"bf16"``."""
        ...

    @property
    def confidence(self) -> float:
        """Minimum best-class score."""
        ...

    @property
    def iou(self) -> float:
        """NMS IoU threshold."""
        ...

    @property
    def max_detections(self) -> int:
        """Most detections per frame."""
        ...

    @property
    def mask_threshold(self) -> float | None:
        """Mask probability threshold, or None for the file's calibrated one (else 0.5)."""
        ...

    @property
    def classes(self) -> Sequence[str] | None:
        """Class names to keep, or None for all."""
        ...

    @property
    def class_names(self) -> Sequence[str] | None:
        """Names overriding the file's, or None."""
        ...

    @property
    def batch_size(self) -> int:
        """Most frames per forward."""
        ...

    @property
    def threads(self) -> int | None:
        """torch / onnxruntime CPU threads, or None for the default."""
        ...

    @property
    def mask_refine(self) -> MaskRefineSettings:
        """Edge-aware refinement of the masks (``streamseg.models.refine``)."""
        ...


def resolve_weights(weights: str) -> Path:
    """Turn ``ModelConfig.weights`` into an existing file.

    Args:
        weights: ``"builtin"`` or a path.

    Returns:
        The file.

    Raises:
        ModelLoadError: The file does not exist (or the built-in weights are not installed).
    """
    if weights == BUILTIN:
        return builtin_weights_path()
    path = Path(weights).expanduser()
    if not path.is_file():
        what = "a directory" if path.is_dir() else "no such file"
        raise ModelLoadError(
            f"model.weights: expected a TorchScript or ONNX YOLO-seg export, or 'builtin', "
            f"got {weights!r} ({what})"
        )
    return path


def detect_format(path: Path, requested: str = "auto") -> str:
    """Decide whether ``path`` is TorchScript or ONNX.

    Args:
        path: an existing model file.
        requested: ``"auto"`` (by suffix, then by content: TorchScript files are zip
            archives), ``"torchscript"`` or ``"onnx"``.

    Returns:
        ``"torchscript"`` or ``"onnx"``.

    Raises:
        ModelLoadError: ``requested`` is not a known format, or ``auto`` cannot tell.
    """
    if requested not in FORMATS:
        raise ModelLoadError(f"model.format: expected one of {list(FORMATS)}, got {requested!r}")
    if requested != "auto":
        return requested
    suffix = path.suffix.lower()
    if suffix in _ONNX_SUFFIXES:
        return "onnx"
    if suffix in _TORCHSCRIPT_SUFFIXES or zipfile.is_zipfile(path):
        return "torchscript"
    raise ModelLoadError(
        f"{path}: cannot tell the model format from the name or content; expected a "
        f"TorchScript archive ({', '.join(_TORCHSCRIPT_SUFFIXES)}) or an ONNX file (.onnx), "
        "or set model.format"
    )


@dataclass(frozen=True)
class LoadedModel:
    """A backend whose layout has been checked, and what is known about it.

    Attributes:
        backend: the network.
        info: its facts.
    """

    backend: Backend
    info: ModelInfo


def _open_backend(
    path: Path,
    fmt: str,
    device: torch.device,
    precision: str,
    threads: int | None,
    require_device: bool,
) -> Backend:
    if fmt == "torchscript":
        return TorchScriptBackend.load(path, device=device, precision=precision)
    # an ONNX file runs at the precision it was exported with
    return OnnxBackend.load(path, device=device, threads=threads, require_device=require_device)


def _short_error(exc: BaseException) -> str:
    """The line of an exception that says what went wrong.

    TorchScript errors start with a generic header and a TorchScript traceback; the cause is on
    the last line.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(exc).__name__


def _probe(
    backend: Backend, source: str, batch: int = 1
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """One forward of ``batch`` padding-grey images; returns the outputs and the input size."""
    if backend.input_hw is None:
        raise ModelLoadError(
            f"{source}: the file does not say its input size (no 'imgsz' in its metadata and no "
            "static input shape); export it with ultralytics, which records imgsz"
        )
    h, w = backend.input_hw
    dummy = torch.full(
        (batch, 3, h, w), PAD_VALUE / 255.0, dtype=backend.input_dtype, device=backend.device
    )
    if backend.channels_last:
        dummy = dummy.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        output0, output1 = backend(dummy)
    return output0, output1, (h, w)


def open_model(
    path: Path,
    *,
    fmt: str = "auto",
    device: torch.device,
    precision: str = "auto",
    class_names: Sequence[str] | None = None,
    threads: int | None = None,
    require_device: bool = False,
) -> LoadedModel:
    """Load a YOLO-seg file and validate its output layout with one forward of batch 1.

    Args:
        path: the model file.
        fmt: ``"auto"``, ``"torchscript"`` or ``"onnx"``.
        device: resolved device.
        precision: ``"auto"``, ``"fp32"``, ``"fp16"`` or ``"bf16"``.
        class_names: names overriding the file's, or None.
        threads: onnxruntime intra-op threads, or None.
        require_device: the device was named explicitly (no silent CPU fallback for ONNX).

    Returns:
        The checked backend and its :class:`ModelInfo`.

    Raises:
        ModelLoadError: The file cannot be loaded or its outputs are not the YOLO-seg layout.
    """
    source = str(path)
    fmt = detect_format(path, fmt)
    resolved = resolve_precision(precision, device)
    backend = _open_backend(path, fmt, device, resolved, threads, require_device)
    try:
        output0, output1, input_hw = _probe(backend, source)
    except ModelLoadError:
        raise
    except Exception as exc:
        if backend.precision == "fp32":
            raise ModelLoadError(
                f"{source}: a test forward of batch 1 at its input size "
                f"{backend.input_hw} failed: {_short_error(exc)}"
            ) from exc
        logger.warning(
            "%s: a %s forward failed (%s); falling back to fp32. Exports that must run in "
            "half need to be exported with half=True.",
            source,
            backend.precision,
            _short_error(exc),
        )
        backend = _open_backend(path, fmt, device, "fp32", threads, require_device)
        try:
            output0, output1, input_hw = _probe(backend, source)
        except ModelLoadError:
            raise
        except Exception as fp32_exc:
            raise ModelLoadError(
                f"{source}: a test forward of batch 1 at its input size {backend.input_hw} "
                f"failed in {resolved} ({_short_error(exc)}) and in fp32 "
                f"({_short_error(fp32_exc)})"
            ) from fp32_exc
    if isinstance(backend, TorchScriptBackend):
        _find_fixed_batch(backend, source)
    if precision != "auto" and backend.precision != resolved:
        logger.warning(
            "%s: precision %s requested, but the %s model runs in %s",
            source,
            precision,
            fmt,
            backend.precision,
        )
    layout = check_layout(output0, output1, input_hw, 1, source)
    names = resolve_class_names(layout, backend.metadata.names, class_names, source)
    if backend.metadata.task not in (None, "segment"):
        logger.warning("%s: metadata task is %r, expected 'segment'", source, backend.metadata.task)
    info = ModelInfo(
        path=source,
        format=fmt,
        input_hw=input_hw,
        class_names=names,
        num_masks=layout.num_masks,
        num_anchors=layout.num_anchors,
        proto_hw=layout.proto_hw,
        device=str(backend.device),
        precision=backend.precision,
        mask_threshold=backend.metadata.mask_threshold,
    )
    logger.info(
        "loaded %s model %s: input %dx%d (WxH), %d classes, %d masks, %d anchors, %s %s",
        fmt,
        source,
        input_hw[1],
        input_hw[0],
        layout.num_classes,
        layout.num_masks,
        layout.num_anchors,
        info.device,
        info.precision,
    )
    return LoadedModel(backend=backend, info=info)


def _find_fixed_batch(backend: TorchScriptBackend, source: str) -> None:
    """Try a forward of batch 2: a traced export often keeps the batch size it was traced with
    (1), failing on, or answering one frame for, a larger batch. Such a module then gets its
    frames one at a time (:attr:`TorchScriptBackend.fixed_batch`)."""
    try:
        output0, output1, _ = _probe(backend, source, batch=2)
        problem = (
            None
            if output0.shape[0] == 2 and output1.shape[0] == 2
            else f"it answered batch {output0.shape[0]}"
        )
    except Exception as exc:
        problem = _short_error(exc)
    if problem is not None:
        backend.fixed_batch = 1
        logger.warning(
            "%s: a test forward of batch 2 failed (%s): the module runs at batch 1 only (a traced "
            "export keeps the batch it was traced with), so frames go through one at a time; "
            "export with dynamic=True to batch them",
            source,
            problem,
        )


def load_segmenter(cfg: ModelSettings, *, masks: bool = True) -> Segmenter:
    """Build the inference stage from the ``model`` section of a pipeline.

    Args:
        cfg: a ``streamseg.config.ModelConfig`` (or anything with its fields).
        masks: decode masks (True) or boxes only.

    Returns:
        A ready :class:`Segmenter`; the model has run one forward already.

    Raises:
        ModelLoadError: Missing file, unknown format, unavailable device, missing onnxruntime,
            or outputs that are not the YOLO-seg layout; also a ``classes`` entry that is not a
            class of the model.
    """
    if cfg.threads is not None and cfg.threads < 1:
        raise ModelLoadError(f"model.threads: expected >= 1 or null, got {cfg.threads}")
    device = resolve_device(cfg.device)
    threads = cfg.threads
    if threads is None and device.type == "cpu":
        threads = default_cpu_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    path = resolve_weights(cfg.weights)
    loaded = open_model(
        path,
        fmt=cfg.format,
        device=device,
        precision=cfg.precision,
        class_names=list(cfg.class_names) if cfg.class_names is not None else None,
        threads=threads,
        require_device=cfg.device.strip().lower() != "auto",
    )
    mask_threshold = cfg.mask_threshold
    if mask_threshold is None:
        mask_threshold = loaded.info.mask_threshold or DEFAULT_MASK_THRESHOLD
    refine = cfg.mask_refine
    try:
        return Segmenter(
            loaded.backend,
            loaded.info,
            confidence=cfg.confidence,
            iou=cfg.iou,
            max_detections=cfg.max_detections,
            mask_threshold=mask_threshold,
            classes=list(cfg.classes) if cfg.classes is not None else None,
            masks=masks,
            max_batch=cfg.batch_size,
            refine=MaskRefine(refine.radius, refine.eps) if refine.enabled else None,
        )
    except ValueError as exc:
        raise ModelLoadError(f"model: {exc}") from exc

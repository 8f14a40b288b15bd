"""ONNX backend for YOLO-seg exports, through onnxruntime (optional extra ``streamseg[onnx]``).

An ONNX file is data: onnxruntime executes a fixed set of operators and runs no code from the
file, so ONNX is the format to prefer for model files you did not make yourself.

The model runs at the precision it was exported with (an fp16 export takes fp16 input).
Exports with a fixed batch size (ultralytics' default without ``dynamic=True``) are run in
chunks of that size.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamseg.models.backend import as_output_pair, run_in_chunks
from streamseg.models.errors import ModelLoadError
from streamseg.models.metadata import FileMetadata, parse_metadata

logger = logging.getLogger(__name__)

_ORT_ERROR_LEVEL = 3
"""onnxruntime log severity: errors only (its warnings about unused initializers are noise)."""


def _import_onnxruntime() -> Any:
    """Import onnxruntime or say how to install it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelLoadError(
            "ONNX models need onnxruntime, which is not installed: "
            "pip install 'streamseg[onnx]' (or onnxruntime-gpu for CUDA)"
        ) from exc
    return onnxruntime


def _static_dim(value: object) -> int | None:
    """An ONNX input dimension as an int, or None when it is symbolic."""
    return value if isinstance(value, int) and value > 0 else None


class OnnxBackend:
    """Runs a YOLO-seg ONNX model with onnxruntime.

    Attributes:
        device: where inputs are prepared and outputs are returned.
        input_dtype: float16 for an fp16 export, else float32.
        channels_last: always False (onnxruntime takes contiguous NCHW).
        precision: ``"fp16"`` or ``"fp32"``, as exported.
        metadata: what the file's ``metadata_props`` say.
        input_hw: from the input's static shape, else from ``metadata.imgsz``.
        fixed_batch: batch size fixed at export, or None when the batch dimension is free.
    """

    def __init__(
        self,
        session: Any,
        *,
        device: torch.device,
        metadata: FileMetadata,
        source: str,
    ) -> None:
        """Wrap an onnxruntime session.

        Args:
            session: an ``onnxruntime.InferenceSession``.
            device: where inputs come from and outputs go.
            metadata: the file's metadata.
            source: path of the file, for error messages.

        Raises:
            ModelLoadError: The model does not have one image input and two outputs.
        """
        self.device = device
        self.metadata = metadata
        self.channels_last = False
        self._session = session
        self._source = source
        inputs = session.get_inputs()
        outputs = session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            found = ", ".join(f"{i.name} {i.shape}" for i in inputs)
            raise ModelLoadError(
                f"{source}: expected one input [B, 3, H, W], found {len(inputs)}: {found}"
            )
        if len(outputs) != 2:
            found = ", ".join(f"{o.name} {o.shape}" for o in outputs)
            raise ModelLoadError(
                f"{source}: expected the YOLO-seg outputs (output0 [B, 4+nc+nm, A], "
                f"output1 [B, nm, H/4, W/4]), found {len(outputs)} outputs: {found}"
            )
        names = [o.name for o in outputs]
        self._output_names = (
            ["output0", "output1"] if set(names) == {"output0", "output1"} else names
        )
        self._input_name = inputs[0].name
        half = inputs[0].type == "tensor(float16)"
        self.input_dtype = torch.float16 if half else torch.float32
        self._np_dtype = np.float16 if half else np.float32
        self.precision = "fp16" if half else "fp32"
        shape = inputs[0].shape
        self.fixed_batch = _static_dim(shape[0])
        h, w = _static_dim(shape[2]), _static_dim(shape[3])
        self.input_hw = (h, w) if h is not None and w is not None else metadata.imgsz
        if h is not None and w is not None and metadata.imgsz not in (None, (h, w)):
            logger.warning(
                "%s: metadata imgsz %s differs from the input shape %s; using the input shape",
                source,
                metadata.imgsz,
                shape,
            )

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        device: torch.device,
        threads: int | None = None,
        require_device: bool = False,
    ) -> OnnxBackend:
        """Open an ONNX file with onnxruntime.

        Args:
            path: the ``.onnx`` file.
            device: resolved device; CUDA uses ``CUDAExecutionProvider`` when onnxruntime has it.
            threads: onnxruntime intra-op threads, or None for its default.
            require_device: True when the config named the device explicitly; then a CUDA
                device without ``CUDAExecutionProvider`` is an error instead of a CPU fallback.

        Returns:
            The backend.

        Raises:
            ModelLoadError: onnxruntime is missing, lacks CUDA when required, or cannot read
                the file.
        """
        ort = _import_onnxruntime()
        providers: list[str | tuple[str, dict[str, int]]] = ["CPUExecutionProvider"]
        run_device = torch.device("cpu")
        if device.type == "cuda":
            available = ort.get_available_providers()
            if "CUDAExecutionProvider" in available:
                index = device.index if device.index is not None else 0
                providers = [("CUDAExecutionProvider", {"device_id": index}), *providers]
                run_device = device
            elif require_device:
                raise ModelLoadError(
                    f"{path}: device {device} asks for CUDA, but onnxruntime has no "
                    f"CUDAExecutionProvider (available: {available}); install onnxruntime-gpu "
                    "or set `device: cpu`"
                )
            else:
                logger.warning(
                    "%s: onnxruntime has no CUDAExecutionProvider (available: %s); running "
                    "the ONNX model on CPU (install onnxruntime-gpu for CUDA)",
                    path,
                    available,
                )
        options = ort.SessionOptions()
        options.log_severity_level = _ORT_ERROR_LEVEL
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped pybind errors
            raise ModelLoadError(
                f"{path}: expected an ONNX model, but onnxruntime could not load it: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
            ) from exc
        metadata = parse_metadata(session.get_modelmeta().custom_metadata_map, str(path))
        return cls(session, device=run_device, metadata=metadata, source=str(path))

    def _run(self, images: torch.Tensor) -> list[torch.Tensor]:
        array = np.ascontiguousarray(images.detach().to("cpu").numpy(), dtype=self._np_dtype)
        raw = self._session.run(self._output_names, {self._input_name: array})
        return [torch.from_numpy(np.asarray(r)).to(self.device) for r in raw]

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the model.

        Args:
            images: (B, 3, H, W) float RGB 0..1, letterboxed, dtype :attr:`input_dtype`.

        Returns:
            ``(output0, output1)`` on :attr:`device`.
        """
        return run_in_chunks(
            lambda chunk: as_output_pair(self._run(chunk), self._source), images, self.fixed_batch
        )

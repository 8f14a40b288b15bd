"""TorchScript backend for YOLO-seg exports.

Trust: a TorchScript file is a program. Loading it runs code from the file (its serialized
graph and methods run with this process's rights), so only load TorchScript files you trust,
such as the built-in weights or exports you made yourself. Prefer ONNX for files you did not
make: onnxruntime executes a fixed set of operators and runs no code from the file.

fp16: on CUDA with ``precision: fp16`` the module is converted with ``module.half()``. Some
exports contain constants created at trace time in fp32 and fail in half; those need to be
exported with ``half=True`` (``yolo export ... half=True device=0``). The loader tries a half
forward at load and falls back to fp32 with a warning when it fails.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from pathlib import Path

import torch

from streamseg.models.backend import as_output_pair, run_in_chunks
from streamseg.models.errors import ModelLoadError
from streamseg.models.metadata import FileMetadata, parse_metadata

logger = logging.getLogger(__name__)

METADATA_FILE = "config.txt"
"""Extra file in which ultralytics stores its metadata as JSON."""


class TorchScriptBackend:
    """Runs a TorchScript YOLO-seg module.

    Attributes:
        device: the module's device.
        input_dtype: float16 for fp16, else float32 (bf16 runs under autocast from fp32 input).
        channels_last: True on CPU, where it speeds up convolutions.
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"``.
        metadata: what ``config.txt`` says.
        input_hw: ``metadata.imgsz``.
    """

    def __init__(
        self,
        module: torch.jit.ScriptModule,
        *,
        device: torch.device,
        precision: str,
        metadata: FileMetadata,
        source: str,
    ) -> None:
        """Wrap a loaded module and convert it to ``precision``.

        Args:
            module: the loaded TorchScript module, already on ``device``.
            device: device the module is on.
            precision: ``"fp32"``, ``"fp16"`` or ``"bf16"`` (already resolved for the device).
            metadata: the file's metadata.
            source: path of the file, for error messages.
        """
        self.device = device
        self.precision = precision
        self.metadata = metadata
        self.input_hw = metadata.imgsz
        self.channels_last = device.type == "cpu"
        self._source = source
        module.eval()
        if precision == "fp16":
            module.half()
            self.input_dtype = torch.float16
        else:
            # An export made with half=True holds fp16 weights: at fp32 (on CPU, say) they must
            # match the fp32 input (bf16 runs under autocast from fp32 weights too).
            module.float()
            self.input_dtype = torch.float32
        self._module = module
        self.fixed_batch: int | None = None
        """Batch size the module only runs at (a traced export keeps the one it was traced
        with); None: any. Set by the loader's test forwards; larger batches run in chunks."""

    @classmethod
    def load(cls, path: Path, *, device: torch.device, precision: str) -> TorchScriptBackend:
        """Load a TorchScript file and its ``config.txt`` metadata.

        Args:
            path: the ``.torchscript`` file.
            device: device to map the module to.
            precision: resolved precision.

        Returns:
            The backend.

        Raises:
            ModelLoadError: The file is not a TorchScript archive or its metadata is malformed.
        """
        extra = {METADATA_FILE: ""}
        try:
            with warnings.catch_warnings():
                # torch 2.10+ marks torch.jit as deprecated in favour of torch.export, but
                # TorchScript is still the format YOLO-seg models are exported in.
                warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.*deprecated")
                module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
        except (RuntimeError, ValueError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(
                f"{path}: expected a TorchScript archive (torch.jit.save / yolo export "
                f"format=torchscript), but torch.jit.load failed: {reason}"
            ) from exc
        text = extra[METADATA_FILE]
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        raw: dict[str, object] = {}
        if text.strip():
            try:
                decoded = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ModelLoadError(
                    f"{path}: expected JSON in the extra file {METADATA_FILE}, got "
                    f"{text[:80]!r}: {exc}"
                ) from exc
            if not isinstance(decoded, dict):
                raise ModelLoadError(
                    f"{path}: expected a JSON object in {METADATA_FILE}, got "
                    f"{type(decoded).__name__}"
                )
            raw = decoded
        metadata = parse_metadata(raw, str(path))
        return cls(module, device=device, precision=precision, metadata=metadata, source=str(path))

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the module.

        Args:
            images: (B, 3, H, W) float RGB 0..1, letterboxed, dtype :attr:`input_dtype`.

        Returns:
            ``(output0, output1)`` on :attr:`device`, in the module's dtype.
        """
        return run_in_chunks(self._forward, images, self.fixed_batch)

    def _forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        autocast: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
        if self.precision == "bf16":
            autocast = torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        with autocast:
            raw = self._module(images)
        return as_output_pair(raw, self._source)

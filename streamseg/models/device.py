"""Resolve the configured device and precision into what torch runs on."""

from __future__ import annotations

import logging
import os
import re

import torch

from streamseg.models.errors import ModelLoadError

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
"""Accepted values of ``ModelConfig.precision``."""

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


def resolve_device(name: str) -> torch.device:
    """Turn a configured device name into a ``torch.device`` that exists on this machine.

    Args:
        name: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Returns:
        The device to load the model on.

    Raises:
        ModelLoadError: The name is not one of the accepted forms, or it names a CUDA device
            that this machine does not have.
    """
    match = _DEVICE_PATTERN.match(name.strip().lower())
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise ModelLoadError(f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {name!r}")
    kind, index = match.group(1), match.group(2)
    if kind == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ModelLoadError(
            f"device: {name!r} asks for CUDA, but torch {torch.__version__} sees no CUDA device "
            "on this machine (torch.cuda.is_available() is False); set `device: auto` or "
            "`device: cpu`, or install a CUDA build of torch"
        )
    if index is not None and int(index) >= torch.cuda.device_count():
        raise ModelLoadError(
            f"device: {name!r} asks for CUDA device {index}, but this machine has "
            f"{torch.cuda.device_count()} (valid: cuda:0 .. cuda:{torch.cuda.device_count() - 1})"
        )
    return torch.device(f"cuda:{index}") if index is not None else torch.device("cuda")


def resolve_precision(requested: str, device: torch.device) -> str:
    """Pick the precision the model runs at on ``device``.

    ``auto`` means fp16 on CUDA and fp32 on CPU. fp16 on CPU is not supported by torch's CPU
    kernels at useful speed, so it falls back to fp32 with a warning (bf16 is the fast reduced
    precision on CPU).

    Args:
        requested: One of :data:`PRECISIONS`.
        device: The resolved device.

    Returns:
        ``"fp32"``, ``"fp16"`` or ``"bf16"``.

    Raises:
        ModelLoadError: ``requested`` is not one of :data:`PRECISIONS`.
    """
    if requested not in PRECISIONS:
        raise ModelLoadError(f"precision: expected one of {list(PRECISIONS)}, got {requested!r}")
    if requested == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if requested == "fp16" and device.type != "cuda":
        logger.warning(
            "precision fp16 needs CUDA but the model runs on %s; using fp32 (bf16 is the "
            "reduced precision that is fast on CPU)",
            device,
        )
        return "fp32"
    return requested


def default_cpu_threads() -> int:
    """Intra-op threads for CPU inference when the pipeline does not set ``model.threads``.

    Half the CPUs this process may use, at least one. The rest decode video and run the
    analytics: readers run beside the forward, and on a small machine a forward that takes every
    core is slowed by them more than it gains (bench/throughput.py on 2 cores, 672x384 weights:
    one file at 20.0-21.9 fps with 1 thread against 16.0-17.6 with 2; four files gain from 2,
    17-19 against 23-24 fps total). The other half is not idle: the pipeline runs
    :func:`default_inference_workers` forwards at once, one thread each by default.
    """
    return max(1, _available_cpus() // 2)


def default_inference_workers(device_type: str, threads: int) -> int:
    """Concurrent forward passes when the pipeline does not set ``model.workers``.

    On a CPU, as many as fit the CPUs this process may use at ``threads`` intra-op threads
    each, at least one: two forwards side by side at one thread each use two cores far better
    than one forward at two threads (2 cores, built-in weights: 43-45 frames/s against 33; an
    intra-op parallel region waits for its slowest thread, two independent forwards do not).
    On a GPU, one: the device already runs a batch in parallel.
    """
    if device_type != "cpu":
        return 1
    return max(1, _available_cpus() // max(1, threads))


def _available_cpus() -> int:
    """CPUs this process may run on (its affinity mask on Linux), at least one."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1

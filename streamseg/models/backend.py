"""What every inference backend provides, and the check that its outputs have the YOLO-seg layout.

The layout (DESIGN.md, "Model"): ``output0`` is ``[B, 4 + nc + nm, A]`` (cx, cy, w, h in input
pixels, nc sigmoid class scores, nm mask coefficients) and ``output1`` is ``[B, nm, H/r, W/r]``
prototypes, where r is 4 for every ultralytics export.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from streamseg.models.errors import ModelLoadError
from streamseg.models.metadata import FileMetadata

logger = logging.getLogger(__name__)

EXPECTED_PROTO_RATIO = 4
"""Input size / prototype size of every ultralytics YOLO-seg export."""


class Backend(Protocol):
    """A loaded network that maps a letterboxed batch to the two YOLO-seg outputs.

    Attributes:
        device: where inputs are prepared and outputs are returned (decoding runs there too).
        input_dtype: dtype the input batch must have.
        channels_last: whether the input batch should be in ``torch.channels_last`` layout.
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"``.
        metadata: what the file says about itself.
        input_hw: (height, width) fixed at export, or ``None`` when the file does not say.
    """

    device: torch.device
    input_dtype: torch.dtype
    channels_last: bool
    precision: str
    metadata: FileMetadata
    input_hw: tuple[int, int] | None

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the network.

        Args:
            images: (B, 3, H, W) float RGB 0..1, letterboxed, dtype :attr:`input_dtype`.

        Returns:
            ``(output0, output1)`` on :attr:`device`.
        """
        ...


def run_in_chunks(
    run: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    images: torch.Tensor,
    step: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a network whose batch size is fixed at ``step`` on a batch of any size.

    The batch goes through in chunks of ``step`` frames, the last one padded with copies of its
    first frame (whose outputs are dropped). ``step`` None: the batch dimension is free, one run.
    """
    n = int(images.shape[0])
    if step is None or n == step:
        return run(images)
    parts0: list[torch.Tensor] = []
    parts1: list[torch.Tensor] = []
    for start in range(0, n, step):
        chunk = images[start : start + step]
        real = int(chunk.shape[0])
        if real < step:
            pad = chunk[:1].expand(step - real, -1, -1, -1)
            chunk = torch.cat([chunk, pad])
        out0, out1 = run(chunk)
        parts0.append(out0[:real])
        parts1.append(out1[:real])
    return torch.cat(parts0), torch.cat(parts1)


def _describe(value: object) -> str:
    """Say what a forward returned, with shapes, for error messages."""
    if isinstance(value, torch.Tensor):
        return f"a single tensor of shape {list(value.shape)}"
    if isinstance(value, (tuple, list)):
        parts = [
            str(list(v.shape)) if isinstance(v, torch.Tensor) else type(v).__name__ for v in value
        ]
        return f"a {type(value).__name__} of {len(value)} items: {', '.join(parts) or 'nothing'}"
    return f"a {type(value).__name__}"


def as_output_pair(raw: object, source: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Take ``(output0, output1)`` out of what a forward returned.

    Args:
        raw: the forward's return value.
        source: the model file, for error messages.

    Returns:
        The two tensors.

    Raises:
        ModelLoadError: ``raw`` is not a tuple/list of exactly two tensors.
    """
    if (
        isinstance(raw, (tuple, list))
        and len(raw) == 2
        and isinstance(raw[0], torch.Tensor)
        and isinstance(raw[1], torch.Tensor)
    ):
        return raw[0], raw[1]
    raise ModelLoadError(
        f"{source}: expected the YOLO-seg outputs (output0 [B, 4+nc+nm, A], "
        f"output1 [B, nm, H/4, W/4]) as a tuple of 2 tensors, but the forward returned "
        f"{_describe(raw)}; is this a segmentation export (task=segment)?"
    )


@dataclass(frozen=True)
class Layout:
    """Sizes read from one validated forward.

    Attributes:
        num_classes: nc.
        num_masks: nm.
        num_anchors: A.
        proto_hw: (height, width) of the prototypes.
    """

    num_classes: int
    num_masks: int
    num_anchors: int
    proto_hw: tuple[int, int]


def check_layout(
    output0: torch.Tensor,
    output1: torch.Tensor,
    input_hw: tuple[int, int],
    batch: int,
    source: str,
) -> Layout:
    """Check that two output tensors have the YOLO-seg layout for an input of ``input_hw``.

    Args:
        output0: predictions, expected ``[batch, 4 + nc + nm, A]``.
        output1: prototypes, expected ``[batch, nm, H/r, W/r]`` with an integer r.
        input_hw: (H, W) of the input that produced them.
        batch: batch size of that input.
        source: the model file, for error messages.

    Returns:
        The sizes found.

    Raises:
        ModelLoadError: A rank, batch size, channel count or prototype size does not fit.
    """
    shapes = f"output0 {list(output0.shape)}, output1 {list(output1.shape)}"
    expected = "output0 [B, 4+nc+nm, A] and output1 [B, nm, H/4, W/4]"
    if output0.dim() != 3 or output1.dim() != 4:
        raise ModelLoadError(
            f"{source}: expected {expected} (ranks 3 and 4), found {shapes} "
            f"(ranks {output0.dim()} and {output1.dim()})"
        )
    if output0.shape[0] != batch or output1.shape[0] != batch:
        raise ModelLoadError(
            f"{source}: expected batch size {batch} in both outputs for an input of batch "
            f"{batch}, found {shapes}"
        )
    nm = int(output1.shape[1])
    channels = int(output0.shape[1])
    nc = channels - 4 - nm
    if nc < 1:
        hint = ""
        if int(output0.shape[2]) - 4 - nm >= 1:
            hint = " (output0 looks transposed: [B, A, C] instead of [B, C, A])"
        raise ModelLoadError(
            f"{source}: expected output0 to have 4 + nc + nm channels with nm = "
            f"output1.shape[1] = {nm} and nc >= 1, i.e. at least {5 + nm}, found {shapes}{hint}"
        )
    in_h, in_w = input_hw
    ph, pw = int(output1.shape[2]), int(output1.shape[3])
    if ph < 1 or pw < 1 or in_h % ph != 0 or in_w % pw != 0 or in_h // ph != in_w // pw:
        raise ModelLoadError(
            f"{source}: expected prototypes of size input/r with one integer r for an input of "
            f"{in_h}x{in_w} (e.g. {in_h // EXPECTED_PROTO_RATIO}x{in_w // EXPECTED_PROTO_RATIO}), "
            f"found {shapes}"
        )
    ratio = in_h // ph
    if ratio != EXPECTED_PROTO_RATIO:
        logger.warning(
            "%s: prototypes are input/%d (%dx%d for %dx%d); YOLO-seg exports use input/%d",
            source,
            ratio,
            ph,
            pw,
            in_h,
            in_w,
            EXPECTED_PROTO_RATIO,
        )
    return Layout(
        num_classes=nc, num_masks=nm, num_anchors=int(output0.shape[2]), proto_hw=(ph, pw)
    )


def resolve_class_names(
    layout: Layout,
    file_names: Sequence[str] | None,
    configured: Sequence[str] | None,
    source: str,
) -> list[str]:
    """Decide the class names: configured ones, else the file's, else ``class_<i>``.

    Args:
        layout: sizes from the validated forward.
        file_names: names stored in the file, if any.
        configured: ``ModelConfig.class_names``, if given.
        source: the model file, for error messages.

    Returns:
        One name per class id.

    Raises:
        ModelLoadError: A list of names has a different length than the model's nc.
    """
    nc = layout.num_classes
    if configured is not None:
        if len(configured) != nc:
            raise ModelLoadError(
                f"{source}: model.class_names has {len(configured)} names but the model "
                f"outputs {nc} classes (output0 channels = 4 + {nc} + {layout.num_masks})"
            )
        return [str(n) for n in configured]
    if file_names is not None:
        if len(file_names) != nc:
            hint = "the file's names do not belong to this network"
            if layout.num_anchors - 4 - layout.num_masks == len(file_names):
                hint = "output0 looks transposed: [B, A, C] instead of [B, C, A]"
            raise ModelLoadError(
                f"{source}: the file's metadata names {len(file_names)} classes but the model "
                f"outputs {nc} (output0 channels = 4 + {nc} + nm {layout.num_masks}); {hint}"
            )
        return list(file_names)
    return [f"class_{i}" for i in range(nc)]

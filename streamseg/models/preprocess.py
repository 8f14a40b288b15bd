"""Letterbox a batch of BGR frames into the network input, on the model's device.

The geometry is ultralytics' ``LetterBox(auto=False, center=True)``: scale by
``gain = min(H / h, W / w)``, resize to ``(round(w * gain), round(h * gain))`` with bilinear
interpolation (no antialias, like ``cv2.INTER_LINEAR``), and pad with 114 split half/half,
``top = round(dh - 0.1)``, ``left = round(dw - 0.1)``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

PAD_VALUE = 114
"""Letterbox padding, in 0..255 pixel units (ultralytics)."""


@dataclass(frozen=True)
class Letterbox:
    """How one frame was placed into the network input.

    Attributes:
        src_hw: (height, width) of the original frame.
        dst_hw: (height, width) of the network input.
        gain: scale from frame pixels to input pixels.
        new_hw: (height, width) of the resized frame inside the input.
        top: rows of padding above it.
        left: columns of padding left of it.
    """

    src_hw: tuple[int, int]
    dst_hw: tuple[int, int]
    gain: float
    new_hw: tuple[int, int]
    top: int
    left: int

    @property
    def scale_xy(self) -> tuple[float, float]:
        """The scale the resize actually applied along x and along y (``new / src``).

        Both are ``gain`` up to the rounding of the resized size, which makes them differ by up
        to half an input pixel over the frame (641x359 into 704x384: x 1.0983, y 1.0696 against
        a gain of 1.0696 for both). Mapping back must use these, as ultralytics' ``scale_boxes``
        does, or boxes and masks drift by up to half an input pixel towards the frame's far
        edges.
        """
        (h, w), (new_h, new_w) = self.src_hw, self.new_hw
        return new_w / w, new_h / h

    def to_frame(self, xyxy: torch.Tensor) -> torch.Tensor:
        """Map boxes from input pixels back to frame pixels, clipped to the frame.

        Args:
            xyxy: (N, 4) float, input pixels.

        Returns:
            (N, 4) float, frame pixels, x in [0, w], y in [0, h].
        """
        h, w = self.src_hw
        sx, sy = self.scale_xy
        out = xyxy.clone()
        out[:, [0, 2]] = ((out[:, [0, 2]] - self.left) / sx).clamp_(0.0, float(w))
        out[:, [1, 3]] = ((out[:, [1, 3]] - self.top) / sy).clamp_(0.0, float(h))
        return out


def letterbox_geometry(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> Letterbox:
    """Compute the letterbox of a frame of ``src_hw`` into an input of ``dst_hw``.

    Args:
        src_hw: (height, width) of the frame, both >= 1.
        dst_hw: (height, width) of the network input.

    Returns:
        The placement, with ultralytics' rounding.
    """
    h, w = src_hw
    dh_in, dw_in = dst_hw
    gain = min(dh_in / h, dw_in / w)
    # At least one pixel: a 1x200 frame in a 384x704 input would round to no rows at all.
    new_w, new_h = max(1, round(w * gain)), max(1, round(h * gain))
    dw, dh = (dw_in - new_w) / 2, (dh_in - new_h) / 2
    top, left = round(dh - 0.1), round(dw - 0.1)
    return Letterbox(
        src_hw=(h, w), dst_hw=(dh_in, dw_in), gain=gain, new_hw=(new_h, new_w), top=top, left=left
    )


def _to_device(images: Sequence[npt.NDArray[np.uint8]], device: torch.device) -> torch.Tensor:
    """Stack same-sized frames into one (N, H, W, 3) uint8 tensor on ``device``."""
    stacked = torch.from_numpy(np.ascontiguousarray(np.stack(images)))
    if device.type == "cuda":
        return stacked.pin_memory().to(device, non_blocking=True)
    return stacked.to(device)


def letterbox_batch(
    images: Sequence[npt.NDArray[np.uint8]],
    dst_hw: tuple[int, int],
    *,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
) -> tuple[torch.Tensor, list[Letterbox]]:
    """Letterbox frames of any sizes into one network input batch.

    Frames of the same size are moved and resized together; nothing runs per pixel in Python.

    Args:
        images: B frames, each (h, w, 3) uint8 BGR; sizes may differ.
        dst_hw: (H, W) of the network input.
        device: device to build the batch on.
        dtype: dtype of the batch (float32, or float16 on CUDA).
        channels_last: return the batch in ``torch.channels_last`` memory format.

    Returns:
        ``(batch, letterboxes)``: batch (B, 3, H, W) RGB in 0..1 with padding 114/255, and the
        placement of each frame.
    """
    height, width = dst_hw
    batch = torch.full(
        (len(images), 3, height, width), float(PAD_VALUE), dtype=dtype, device=device
    )
    boxes = [letterbox_geometry((int(im.shape[0]), int(im.shape[1])), dst_hw) for im in images]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault((int(im.shape[0]), int(im.shape[1])), []).append(i)
    for size, indices in groups.items():
        lb = boxes[indices[0]]
        pixels = _to_device([images[i] for i in indices], device)
        # (N, h, w, BGR) viewed as (N, BGR, h, w) in channels_last memory order
        x = pixels.permute(0, 3, 1, 2)
        if device.type != "cpu":
            x = x.to(dtype)  # CUDA's bilinear kernels take floating point only
        if lb.new_hw != size:
            # On CPU, uint8 channels_last bilinear has a fast path (~4x float); like cv2 it
            # rounds to uint8.
            x = F.interpolate(
                x, size=lb.new_hw, mode="bilinear", align_corners=False, antialias=False
            )
        x = x.flip(1).to(dtype)  # BGR -> RGB
        new_h, new_w = lb.new_hw
        index = torch.tensor(indices, device=device)
        region = batch[:, :, lb.top : lb.top + new_h, lb.left : lb.left + new_w]
        region.index_copy_(0, index, x)
    batch.div_(255.0)
    if channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    return batch, boxes

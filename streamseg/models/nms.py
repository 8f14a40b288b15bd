"""Box operations and class-aware non-maximum suppression in plain torch (no torchvision)."""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)

IOU_EPS = 1e-7
"""Added to IoU denominators so that zero-area boxes do not divide by zero."""


def xywh_to_xyxy(xywh: torch.Tensor) -> torch.Tensor:
    """Convert centre boxes to corner boxes.

    Args:
        xywh: (N, 4) cx, cy, w, h.

    Returns:
        (N, 4) x1, y1, x2, y2 in the same units.
    """
    cxcy, wh = xywh[:, :2], xywh[:, 2:4] / 2
    return torch.cat([cxcy - wh, cxcy + wh], dim=1)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of two sets of corner boxes.

    Args:
        a: (N, 4) xyxy.
        b: (M, 4) xyxy.

    Returns:
        (N, M) IoU in [0, 1].
    """
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area_a[:, None] + area_b[None, :] - inter + IOU_EPS)


def nms(
    xyxy: torch.Tensor,
    scores: torch.Tensor,
    class_id: torch.Tensor,
    iou_threshold: float,
) -> torch.Tensor:
    """Class-aware greedy NMS, exactly the result of the classic sequential loop.

    Boxes of different classes never suppress each other: each class is shifted to its own
    region of the plane. The greedy result is computed with the Cluster-NMS fixed point
    (Zheng et al., 2020): starting from "everything kept", a box is kept when no kept box
    before it in score order overlaps it more than ``iou_threshold``. This reaches the same set
    as the sequential loop in at most N rounds (a handful in practice), each one a vectorized
    operation on an (N, N) matrix on the boxes' device.

    Args:
        xyxy: (N, 4) float boxes.
        scores: (N,) float scores.
        class_id: (N,) int class ids.
        iou_threshold: a box is suppressed by a higher-scored box of its class with IoU
            strictly above this.

    Returns:
        (K,) int64 indices into the inputs of the kept boxes, highest score first.
    """
    n = int(xyxy.shape[0])
    if n == 0:
        return torch.empty(0, dtype=torch.long, device=xyxy.device)
    order = torch.argsort(scores, descending=True, stable=True)
    boxes = xyxy[order].float()
    span = (boxes.max() - boxes.min() + 1.0).clamp(min=1.0)
    boxes = boxes + (class_id[order].to(boxes.dtype) * span)[:, None]
    # suppresses[i, j]: i is before j in score order and overlaps it too much
    suppresses = torch.triu(box_iou(boxes, boxes) > iou_threshold, diagonal=1)
    keep = torch.ones(n, dtype=torch.bool, device=xyxy.device)
    for _ in range(n):
        new_keep = ~(suppresses & keep[:, None]).any(dim=0)
        if torch.equal(new_keep, keep):
            break
        keep = new_keep
    return order[keep]

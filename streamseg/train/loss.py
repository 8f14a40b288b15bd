"""Training loss of :class:`~streamseg.train.net.SegLite`: task-aligned assignment + four terms.

* assignment: TAL (task-aligned learning, TOOD / YOLOv8): for every ground-truth object, the
  ``topk`` anchors whose centres lie inside its box with the best ``score**alpha * iou**beta``;
  an anchor claimed by several objects goes to the smallest of them. Fully vectorized over
  the batch.
* class: binary cross-entropy against the normalized alignment metric (soft targets);
* box: CIoU on positives + DFL (distribution focal loss) on the ltrb bins, each positive
  weighted by its class target, floored (``min_box_weight``);
* mask: per positive anchor, ``sigmoid(coef @ protos)`` against the assigned object's mask at
  prototype resolution, binary cross-entropy summed inside the object's box and divided by the
  box area (so small and large objects weigh alike);
* mask at input resolution ("roi"): the same mask logits interpolated bilinearly from the
  prototypes (as the runtime does) at a fixed grid of input pixels over the object's box, against
  the object's exact visible mask there. The stride-4 term alone lets an object a few prototype
  cells wide come out blurred and too large (predicted masks of objects under 100 px were 1.7x
  their true area), since it never sees the pixels the runtime thresholds.

Targets (:class:`Targets`) are padded per image: ``labels`` [B, M], ``boxes_xyxy`` [B, M, 4] in
input pixels, ``masks`` [B, M, H/4, W/4] float in 0..1 (area-downsampled), ``valid`` [B, M] bool,
and optionally the full-resolution points ``roi_xy`` [B, M, 2, S] and their mask ``roi``
[B, M, S, S].
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from streamseg.train.net import PROTO_STRIDE, RawOutput, dfl_decode, dist_to_xyxy

logger = logging.getLogger(__name__)


class Targets(NamedTuple):
    """Ground truth for one batch, padded to M objects per image.

    Attributes:
        labels: [B, M] int64 class ids (anything where ``valid`` is False).
        boxes_xyxy: [B, M, 4] float32, input pixels.
        masks: [B, M, Hp, Wp] float32 in 0..1 at prototype resolution.
        valid: [B, M] bool, False for padding rows.
        roi_xy: [B, M, 2, S] int16 input-pixel columns and rows of each object's
            full-resolution mask points, or None (no input-resolution mask term).
        roi: [B, M, S, S] bool, the object's mask at those points (row i, column j is pixel
            ``(roi_xy[.., 0, j], roi_xy[.., 1, i])``), or None.
    """

    labels: torch.Tensor
    boxes_xyxy: torch.Tensor
    masks: torch.Tensor
    valid: torch.Tensor
    roi_xy: torch.Tensor | None = None
    roi: torch.Tensor | None = None


class Assignment(NamedTuple):
    """Result of :func:`tal_assign` for every anchor of every image.

    Attributes:
        fg: [B, A] bool, positive anchors.
        gt_index: [B, A] int64, index into the M objects (meaningful where ``fg``).
        scores: [B, A, nc] float32 soft class targets (zero for negatives).
        boxes_xyxy: [B, A, 4] float32 assigned object boxes.
    """

    fg: torch.Tensor
    gt_index: torch.Tensor
    scores: torch.Tensor
    boxes_xyxy: torch.Tensor


def box_iou_pairwise(a: torch.Tensor, b: torch.Tensor, ciou: bool = False) -> torch.Tensor:
    """IoU (or CIoU) of aligned box pairs.

    Args:
        a: [..., 4] xyxy.
        b: [..., 4] xyxy, broadcastable to ``a``.
        ciou: return complete-IoU (IoU minus centre-distance and aspect terms).

    Returns:
        [...] IoU or CIoU.
    """
    eps = 1e-7
    ax1, ay1, ax2, ay2 = a.unbind(-1)
    bx1, by1, bx2, by2 = b.unbind(-1)
    w1, h1 = (ax2 - ax1).clamp(min=0), (ay2 - ay1).clamp(min=0) + eps
    w2, h2 = (bx2 - bx1).clamp(min=0), (by2 - by1).clamp(min=0) + eps
    inter = (torch.minimum(ax2, bx2) - torch.maximum(ax1, bx1)).clamp(min=0) * (
        torch.minimum(ay2, by2) - torch.maximum(ay1, by1)
    ).clamp(min=0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    if not ciou:
        return iou
    cw = torch.maximum(ax2, bx2) - torch.minimum(ax1, bx1)
    ch = torch.maximum(ay2, by2) - torch.minimum(ay1, by1)
    c2 = cw**2 + ch**2 + eps
    rho2 = ((bx1 + bx2 - ax1 - ax2) ** 2 + (by1 + by2 - ay1 - ay2) ** 2) / 4
    v = (4 / math.pi**2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


@torch.no_grad()
def tal_assign(
    pd_scores: torch.Tensor,
    pd_xyxy: torch.Tensor,
    anchors: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_xyxy: torch.Tensor,
    gt_valid: torch.Tensor,
    topk: int = 10,
    alpha: float = 0.5,
    beta: float = 6.0,
    min_box_px: float = 8.0,
) -> Assignment:
    """Task-aligned assignment of anchors to ground-truth objects (vectorized).

    Args:
        pd_scores: [B, A, nc] predicted class probabilities (after sigmoid).
        pd_xyxy: [B, A, 4] predicted boxes, input pixels.
        anchors: [A, 2] anchor centres (x, y), input pixels.
        gt_labels: [B, M] int64 class ids.
        gt_xyxy: [B, M, 4] object boxes, input pixels.
        gt_valid: [B, M] bool.
        topk: candidate anchors per object.
        alpha: exponent of the class score in the alignment metric.
        beta: exponent of the IoU in the alignment metric.
        min_box_px: for the "centre inside the box" test, boxes smaller than this are grown
            around their centre to this size, so an object smaller than the finest stride (a
            distant ball) still has a candidate anchor.

    Returns:
        The :class:`Assignment`. An anchor is positive only if its centre lies inside the box
        (grown to ``min_box_px``) of the object it is assigned to.
    """
    bsz, n_anchor, nc = pd_scores.shape
    m = gt_xyxy.shape[1]
    device = pd_scores.device
    if m == 0 or not bool(gt_valid.any()):
        return Assignment(
            fg=torch.zeros(bsz, n_anchor, dtype=torch.bool, device=device),
            gt_index=torch.zeros(bsz, n_anchor, dtype=torch.long, device=device),
            scores=torch.zeros_like(pd_scores),
            boxes_xyxy=torch.zeros(bsz, n_anchor, 4, device=device),
        )
    # [B, M, A]: anchor centre strictly inside the object's box.
    ax, ay = anchors[:, 0].view(1, 1, -1), anchors[:, 1].view(1, 1, -1)
    ctr = (gt_xyxy[..., :2] + gt_xyxy[..., 2:]) / 2
    half = ((gt_xyxy[..., 2:] - gt_xyxy[..., :2]).clamp(min=min_box_px)) / 2
    grown = torch.cat((ctr - half, ctr + half), -1)
    x1, y1, x2, y2 = (grown[..., i : i + 1] for i in range(4))
    eps = 1e-9
    inside = (ax - x1 > eps) & (ay - y1 > eps) & (x2 - ax > eps) & (y2 - ay > eps)
    cand = inside & gt_valid.unsqueeze(-1)

    # Alignment metric on candidates only.
    labels = gt_labels.clamp(0, nc - 1)
    score = pd_scores.gather(2, labels.unsqueeze(1).expand(-1, n_anchor, -1)).transpose(1, 2)
    iou = box_iou_pairwise(gt_xyxy.unsqueeze(2), pd_xyxy.unsqueeze(1), ciou=True).clamp(min=0)
    iou = iou * cand
    # The tiny constant keeps candidates ranked above non-candidates when every IoU is 0.
    metric = (score.pow(alpha) * iou.pow(beta) + 1e-12) * cand

    # Top-k candidates per object.
    k = min(topk, n_anchor)
    top_idx = metric.topk(k, dim=-1).indices  # [B, M, k]
    top = torch.zeros_like(cand)
    top.scatter_(-1, top_idx, True)
    pos = top & cand  # [B, M, A]

    # An anchor claimed by several objects goes to the smallest of them (FCOS's rule). The
    # highest-IoU rule of YOLOv8 hands it to the large object whose box the anchor's prediction
    # already fits, which strips a ball at a player's feet of its only anchor (30 % of the
    # training balls had none) and teaches "background" there.
    # An anchor with one claimant keeps it (it is the smallest); one with none stays negative.
    wh = (gt_xyxy[..., 2:] - gt_xyxy[..., :2]).clamp(min=0)
    area = (wh[..., 0] * wh[..., 1]).unsqueeze(-1)  # [B, M, 1]
    smallest = torch.where(pos, area, torch.inf).argmin(1)  # [B, A]
    pos = pos & F.one_hot(smallest, m).transpose(1, 2).bool()
    fg = pos.any(1)
    gt_index = pos.float().argmax(1)  # [B, A]

    tgt_labels = labels.gather(1, gt_index)
    tgt_boxes = gt_xyxy.gather(1, gt_index.unsqueeze(-1).expand(-1, -1, 4))

    # Normalize the metric per object so its best anchor gets that anchor's IoU.
    metric = metric * pos
    max_metric = metric.amax(-1, keepdim=True)
    max_iou = (iou * pos).amax(-1, keepdim=True)
    norm = (metric * max_iou / (max_metric + eps)).amax(1)  # [B, A]
    scores = F.one_hot(tgt_labels, nc).float() * (norm * fg).unsqueeze(-1)
    return Assignment(fg=fg, gt_index=gt_index, scores=scores, boxes_xyxy=tgt_boxes)


@dataclass(frozen=True)
class LossWeights:
    """Gains of the loss terms (YOLOv8-seg defaults; ``mask_roi`` is off by default, as in the
    runs behind the first shipped weights)."""

    box: float = 7.5
    cls: float = 0.5
    dfl: float = 1.5
    mask: float = 7.5
    mask_roi: float = 0.0


class LossParts(NamedTuple):
    """Total loss (what to backpropagate) and its detached parts for logging."""

    total: torch.Tensor
    box: float
    cls: float
    dfl: float
    mask: float
    num_pos: int
    mask_roi: float = 0.0


def dfl_loss(pred: torch.Tensor, target: torch.Tensor, reg_max: int) -> torch.Tensor:
    """Distribution focal loss.

    Args:
        pred: [P, 4 * reg_max] logits.
        target: [P, 4] ltrb distances in strides, clamped to [0, reg_max - 1 - 0.01].
        reg_max: bins per side.

    Returns:
        [P] loss per positive (mean over the four sides).
    """
    logits = pred.view(-1, reg_max)
    t = target.reshape(-1)
    tl = t.long()
    tr = tl + 1
    wl = tr.float() - t
    wr = 1 - wl
    loss = (
        F.cross_entropy(logits, tl, reduction="none") * wl
        + F.cross_entropy(logits, tr, reduction="none") * wr
    )
    return loss.view(-1, 4).mean(-1)


def segment_loss(
    raw: RawOutput,
    targets: Targets,
    reg_max: int,
    weights: LossWeights | None = None,
    topk: int = 10,
    min_box_weight: float = 0.25,
) -> LossParts:
    """Compute the training loss of one batch.

    Args:
        raw: network outputs (:class:`~streamseg.train.net.RawOutput`).
        targets: padded ground truth (:class:`Targets`), boxes in input pixels.
        reg_max: DFL bins of the network.
        weights: loss gains.
        topk: TAL candidates per object.
        min_box_weight: floor of a positive anchor's weight in the box and DFL terms (else its
            class target, which scales with the IoU of its predicted box). Without it an object
            whose anchors all predict another object's box (a ball at a player's feet: IoU
            0.01-0.2) barely pulls them towards its own box, so its class target never rises.

    Returns:
        :class:`LossParts`; ``total`` is multiplied by the batch size (YOLO convention, so the
        learning rate does not depend on it).
    """
    w = weights or LossWeights()
    box_logits = raw.box.float()
    cls_logits = raw.cls.float()
    coef = raw.coef.float()
    protos = raw.protos.float()
    bsz = cls_logits.shape[0]

    anchors, strides = raw.anchors, raw.strides
    dist = dfl_decode(box_logits, reg_max)  # strides
    pd_xyxy = dist_to_xyxy(dist * strides, anchors)
    asg = tal_assign(
        cls_logits.detach().sigmoid(),
        pd_xyxy.detach(),
        anchors,
        targets.labels,
        targets.boxes_xyxy,
        targets.valid,
        topk=topk,
    )
    score_sum = asg.scores.sum().clamp(min=1.0)
    loss_cls = F.binary_cross_entropy_with_logits(cls_logits, asg.scores, reduction="sum")
    loss_cls = loss_cls / score_sum

    fg = asg.fg
    num_pos = int(fg.sum())
    zero = cls_logits.sum() * 0.0
    loss_roi = zero
    if num_pos == 0:
        loss_box = loss_dfl = loss_mask = zero
    else:
        weight = asg.scores.sum(-1)[fg].clamp(min=min_box_weight)  # [P]
        iou = box_iou_pairwise(pd_xyxy[fg], asg.boxes_xyxy[fg], ciou=True)
        loss_box = ((1.0 - iou) * weight).sum() / score_sum
        st = strides.expand(bsz, -1, -1)[fg]  # [P, 1]
        anc = anchors.unsqueeze(0).expand(bsz, -1, -1)[fg]
        tb = asg.boxes_xyxy[fg] / st
        a = anc / st
        ltrb = torch.cat((a - tb[:, :2], tb[:, 2:] - a), -1).clamp(0, reg_max - 1 - 0.01)
        loss_dfl = (dfl_loss(box_logits[fg], ltrb, reg_max) * weight).sum() / score_sum
        loss_mask = _mask_loss(coef, protos, asg, targets, num_pos)
        if w.mask_roi > 0:
            if targets.roi_xy is None or targets.roi is None:
                raise ValueError("segment_loss: mask_roi > 0 needs Targets.roi_xy and Targets.roi")
            loss_roi = _roi_mask_loss(coef, protos, asg, targets.roi_xy, targets.roi, num_pos)
    total = (
        w.box * loss_box
        + w.cls * loss_cls
        + w.dfl * loss_dfl
        + w.mask * loss_mask
        + w.mask_roi * loss_roi
    ) * bsz
    return LossParts(
        total=total,
        box=float(loss_box.detach()),
        cls=float(loss_cls.detach()),
        dfl=float(loss_dfl.detach()),
        mask=float(loss_mask.detach()),
        num_pos=num_pos,
        mask_roi=float(loss_roi.detach()),
    )


def _positives(asg: Assignment) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Per image with positives: (image index, [A] positive-anchor mask, [P] assigned object
    of each positive)."""
    for b in range(asg.fg.shape[0]):
        fg = asg.fg[b]
        if bool(fg.any()):
            yield b, fg, asg.gt_index[b][fg]


def _mask_loss(
    coef: torch.Tensor, protos: torch.Tensor, asg: Assignment, targets: Targets, num_pos: int
) -> torch.Tensor:
    """Box-cropped, area-normalized mask BCE averaged over positives."""
    _, nm, hp, wp = protos.shape
    in_h, in_w = hp * PROTO_STRIDE, wp * PROTO_STRIDE
    ys = torch.arange(hp, device=protos.device, dtype=torch.float32).view(1, -1, 1) + 0.5
    xs = torch.arange(wp, device=protos.device, dtype=torch.float32).view(1, 1, -1) + 0.5
    total = coef.new_zeros(())
    for b, fg, idx in _positives(asg):
        pred = (coef[b][fg] @ protos[b].view(nm, -1)).view(-1, hp, wp)
        gt = targets.masks[b][idx]  # [P, hp, wp]
        box = targets.boxes_xyxy[b][idx] * torch.tensor(
            [wp / in_w, hp / in_h, wp / in_w, hp / in_h], device=protos.device
        )
        x1, y1, x2, y2 = (box[:, i].view(-1, 1, 1) for i in range(4))
        crop = (xs >= x1) & (xs < x2) & (ys >= y1) & (ys < y2)
        area = ((x2 - x1) * (y2 - y1)).view(-1).clamp(min=1.0)
        bce = F.binary_cross_entropy_with_logits(pred, gt, reduction="none")
        total = total + ((bce * crop).sum((1, 2)) / area).sum()
    return total / num_pos


def _roi_mask_loss(
    coef: torch.Tensor,
    protos: torch.Tensor,
    asg: Assignment,
    roi_xy: torch.Tensor,
    roi: torch.Tensor,
    num_pos: int,
) -> torch.Tensor:
    """Mask BCE at input resolution on each assigned object's point grid, mean over positives.

    The prototypes are sampled bilinearly at the centres of the grid's pixels with the
    half-pixel convention of ``F.interpolate(..., align_corners=False)``, the mapping the
    runtime decoder uses from prototypes to pixels.
    """
    hp, wp = protos.shape[2:]
    in_h, in_w = hp * PROTO_STRIDE, wp * PROTO_STRIDE
    s = roi.shape[-1]
    total = coef.new_zeros(())
    for b, fg, idx in _positives(asg):
        used, inverse = idx.unique(return_inverse=True)  # sample each object's grid once
        xy = roi_xy[b][used].float() + 0.5  # [U, 2, S] pixel centres
        gx = (2.0 * xy[:, 0] / in_w - 1.0).view(-1, 1, s).expand(-1, s, s)
        gy = (2.0 * xy[:, 1] / in_h - 1.0).view(-1, s, 1).expand(-1, s, s)
        grid = torch.stack((gx, gy), -1).reshape(1, -1, s * s, 2)  # [1, U, S*S, 2]
        sampled = F.grid_sample(
            protos[b : b + 1], grid, mode="bilinear", padding_mode="border", align_corners=False
        )[0]  # [nm, U, S*S]
        pred = torch.einsum("pn,npk->pk", coef[b][fg], sampled[:, inverse])  # [P, S*S]
        gt = roi[b][used].reshape(len(used), -1).float()[inverse]
        bce = F.binary_cross_entropy_with_logits(pred, gt, reduction="none")
        total = total + bce.mean(1).sum()
    return total / num_pos

"""Decode YOLO-seg outputs into ``supervision.Detections`` in frame pixels.

Everything up to the final mask bits runs in torch on the outputs' device: candidate selection
for the whole batch, class-aware NMS, box mapping, mask coefficients x prototypes for the kept
detections only, and the bilinear resampling of each mask to its box in frame pixels. Only the
kept boxes and the mask crops (never (N, H, W) at frame resolution) come back to the host, once
per frame, and the crops are run-length encoded in one vectorized pass.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import supervision as sv
import torch

from streamseg.models.nms import nms, xywh_to_xyxy
from streamseg.models.preprocess import Letterbox
from streamseg.rle import encode_runs

logger = logging.getLogger(__name__)

CLASS_NAME_FIELD = "class_name"
"""Key of the class-name array in ``Detections.data``."""


DEFAULT_MASK_THRESHOLD = 0.5
"""Mask probability threshold of a model file that records no calibrated one (ultralytics'
value)."""


@dataclass(frozen=True)
class DecodeSettings:
    """Thresholds and caps of the decoder.

    Attributes:
        confidence: a candidate needs a best class score strictly above this.
        iou: NMS IoU threshold (same class only).
        max_detections: at most this many detections per frame, highest scores first.
        max_candidates: at most this many candidates per frame enter NMS (top scores).
        mask_threshold: a mask pixel is set when its probability is strictly above this.
        masks: decode masks; when False ``Detections.mask`` is None.
        allowed_classes: (nc,) bool on the device, True for classes to keep; None keeps all.
    """

    confidence: float = 0.25
    iou: float = 0.45
    max_detections: int = 100
    max_candidates: int = 3000
    mask_threshold: float = DEFAULT_MASK_THRESHOLD
    masks: bool = True
    allowed_classes: torch.Tensor | None = None


def empty_detections(image_hw: tuple[int, int], masks: bool) -> sv.Detections:
    """Detections with no rows but every field present.

    Args:
        image_hw: (height, width) of the frame.
        masks: whether to attach an empty ``CompactMask``.

    Returns:
        Detections with (0, 4) float32 xyxy, (0,) float32 confidence, (0,) int class_id,
        an empty ``class_name`` array and, when ``masks``, an empty ``CompactMask``.
    """
    mask = (
        sv.CompactMask(
            [], np.empty((0, 2), dtype=np.int32), np.empty((0, 2), dtype=np.int32), image_hw
        )
        if masks
        else None
    )
    return sv.Detections(
        xyxy=np.empty((0, 4), dtype=np.float32),
        confidence=np.empty(0, dtype=np.float32),
        class_id=np.empty(0, dtype=int),
        mask=mask,
        data={CLASS_NAME_FIELD: np.array([], dtype=str)},
    )


def _crop_bounds(x1: float, x2: float, size: int) -> tuple[int, int]:
    """Integer pixel range [lo, hi) covered by [x1, x2] in a frame of ``size``, at least 1 px."""
    lo = min(max(math.floor(x1), 0), size - 1)
    hi = min(max(math.ceil(x2), lo + 1), size)
    return lo, hi


def _proto_span(lo: float, hi: float, size: int) -> tuple[int, int]:
    """Prototype cells [a, b) needed to interpolate bilinearly at continuous coords lo..hi."""
    a = min(max(math.floor(lo - 0.5), 0), size - 1)
    b = min(max(math.floor(hi - 0.5) + 2, a + 1), size)
    return a, b


def _bilinear_weights(coords: torch.Tensor, first: int, size: int) -> torch.Tensor:
    """Interpolation matrix that samples a 1-D signal of ``size`` cells at ``coords``.

    Same result as ``grid_sample(mode="bilinear", padding_mode="border",
    align_corners=False)`` along one axis: cell k of the patch covers [first + k, first + k + 1)
    in continuous coordinates, with its value at the centre.

    Args:
        coords: (n,) float continuous coordinates on the full grid.
        first: index of the patch's first cell on the full grid.
        size: number of cells in the patch.

    Returns:
        (n, size) float weights; each row sums to 1.
    """
    u = (coords - (first + 0.5)).clamp_(0.0, float(size - 1))
    lo = u.floor()
    frac = (u - lo)[:, None]
    lo_index = lo.long()[:, None]
    hi_index = (lo_index + 1).clamp_(max=size - 1)
    weights = torch.zeros(len(coords), size, dtype=coords.dtype, device=coords.device)
    weights.scatter_add_(1, lo_index, 1.0 - frac)
    weights.scatter_add_(1, hi_index, frac)
    return weights


def _mask_crops(
    coeffs: torch.Tensor,
    protos: torch.Tensor,
    crops: np.ndarray,
    lb: Letterbox,
    logit_threshold: float,
) -> torch.Tensor:
    """Mask bits of each detection inside its frame-pixel crop, concatenated column-major.

    Each frame pixel centre inside the crop is mapped through the letterbox to a continuous
    position on the prototype grid, and the mask logits (coefficients x the prototype patch
    around the box) are sampled there bilinearly. Bilinear sampling is separable, so it is two
    small matrix products per detection: ``crop.T = Wx @ patch.T @ Wy.T``, which yields the
    crop already transposed (column-major order for the RLE). The box bounds the crop, so
    nothing outside it is ever set.

    Args:
        coeffs: (N, nm) float mask coefficients.
        protos: (nm, ph, pw) float prototypes.
        crops: (N, 4) int [x_lo, y_lo, x_hi, y_hi) crop bounds in frame pixels.
        lb: the frame's letterbox.
        logit_threshold: logit of the mask probability threshold.

    Returns:
        (sum of crop areas,) bool on the prototypes' device.
    """
    nm, ph, pw = (int(s) for s in protos.shape)
    in_h, in_w = lb.dst_hw
    # frame pixel p -> prototype continuous coordinate ((p + 0.5) * scale + pad) * proto / input
    gx, gy = lb.scale_xy
    sx, sy = gx * pw / in_w, gy * ph / in_h
    ox, oy = lb.left * pw / in_w, lb.top * ph / in_h
    device = protos.device
    bits: list[torch.Tensor] = []
    for i, (x_lo, y_lo, x_hi, y_hi) in enumerate(crops.tolist()):
        xs = (torch.arange(x_lo, x_hi, device=device, dtype=torch.float32) + 0.5) * sx + ox
        ys = (torch.arange(y_lo, y_hi, device=device, dtype=torch.float32) + 0.5) * sy + oy
        px0, px1 = _proto_span((x_lo + 0.5) * sx + ox, (x_hi - 0.5) * sx + ox, pw)
        py0, py1 = _proto_span((y_lo + 0.5) * sy + oy, (y_hi - 0.5) * sy + oy, ph)
        patch = (coeffs[i] @ protos[:, py0:py1, px0:px1].reshape(nm, -1)).view(py1 - py0, px1 - px0)
        wx = _bilinear_weights(xs, px0, px1 - px0)
        wy = _bilinear_weights(ys, py0, py1 - py0)
        logits_t = (wx @ patch.t()) @ wy.t()  # (crop w, crop h)
        bits.append((logits_t > logit_threshold).reshape(-1))
    return torch.cat(bits)


def _decode_one(
    pred: torch.Tensor,
    protos: torch.Tensor,
    candidates: torch.Tensor,
    best_score: torch.Tensor,
    best_class: torch.Tensor,
    lb: Letterbox,
    class_names: Sequence[str],
    settings: DecodeSettings,
) -> sv.Detections:
    """Decode one frame: NMS, boxes to frame pixels, masks to CompactMask."""
    index = torch.nonzero(candidates).squeeze(1)
    if index.numel() == 0:
        return empty_detections(lb.src_hw, settings.masks)
    scores = best_score[index]
    if index.numel() > settings.max_candidates:
        top = torch.topk(scores, settings.max_candidates).indices
        index, scores = index[top], scores[top]
    classes = best_class[index]
    boxes_in = xywh_to_xyxy(pred[index, :4])
    keep = nms(boxes_in, scores, classes, settings.iou)[: settings.max_detections]
    index, scores, classes = index[keep], scores[keep], classes[keep]
    xyxy = lb.to_frame(boxes_in[keep])
    # A box wholly in the letterbox padding clips to no area: nothing of the frame is in it
    # (its mask would be a strip outside its own box). Ultralytics drops such detections too.
    inside = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    if not bool(inside.all()):
        index, scores, classes, xyxy = index[inside], scores[inside], classes[inside], xyxy[inside]
        if index.numel() == 0:
            return empty_detections(lb.src_hw, settings.masks)
    host = torch.cat([xyxy, scores[:, None], classes[:, None].float()], dim=1).cpu().numpy()
    xyxy_np = host[:, :4].astype(np.float32)
    class_id = host[:, 5].astype(int)
    mask: sv.CompactMask | None = None
    if settings.masks:
        h, w = lb.src_hw
        crops = np.empty((len(host), 4), dtype=np.int64)
        for row, (x1, y1, x2, y2) in enumerate(xyxy_np.tolist()):
            crops[row, [0, 2]] = _crop_bounds(x1, x2, w)
            crops[row, [1, 3]] = _crop_bounds(y1, y2, h)
        nc = len(class_names)
        t = settings.mask_threshold
        logit_threshold = math.log(t / (1.0 - t))
        bits = _mask_crops(pred[index, 4 + nc :], protos, crops, lb, logit_threshold)
        crop_hw = np.stack([crops[:, 3] - crops[:, 1], crops[:, 2] - crops[:, 0]], axis=1)
        rles = encode_runs(bits.cpu().numpy(), crop_hw[:, 0] * crop_hw[:, 1])
        mask = sv.CompactMask(rles, crop_hw.astype(np.int32), crops[:, :2].astype(np.int32), (h, w))
    return sv.Detections(
        xyxy=xyxy_np,
        confidence=host[:, 4].astype(np.float32),
        class_id=class_id,
        mask=mask,
        data={CLASS_NAME_FIELD: np.array([class_names[c] for c in class_id], dtype=str)},
    )


def decode_batch(
    output0: torch.Tensor,
    output1: torch.Tensor,
    letterboxes: Sequence[Letterbox],
    class_names: Sequence[str],
    settings: DecodeSettings,
) -> list[sv.Detections]:
    """Decode a batch of YOLO-seg outputs.

    Args:
        output0: [B, 4 + nc + nm, A] float32; cx, cy, w, h in input pixels, nc class scores
            (already sigmoid), nm mask coefficients.
        output1: [B, nm, ph, pw] float32 prototypes.
        letterboxes: how each frame was placed into the input.
        class_names: nc names by class id.
        settings: thresholds and caps.

    Returns:
        One ``Detections`` per frame: xyxy (N, 4) float32 frame pixels clipped to the frame,
        confidence (N,) float32, class_id (N,) int, ``data["class_name"]`` (N,) str, and mask a
        ``CompactMask`` of the frame's (H, W) holding each mask cropped to its box (None when
        ``settings.masks`` is False); rows sorted by confidence, highest first.
    """
    nc = len(class_names)
    pred = output0.transpose(1, 2)  # [B, A, C]
    best_score, best_class = pred[..., 4 : 4 + nc].max(dim=-1)
    candidates = best_score > settings.confidence
    if settings.allowed_classes is not None:
        candidates &= settings.allowed_classes[best_class]
    return [
        _decode_one(
            pred[b],
            output1[b],
            candidates[b],
            best_score[b],
            best_class[b],
            lb,
            class_names,
            settings,
        )
        for b, lb in enumerate(letterboxes)
    ]

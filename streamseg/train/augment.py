"""Letterbox and augmentation: one :class:`~streamseg.train.sources.Sample` into one
:class:`Example` (the network input and its box, mask and input-resolution targets).

Every choice comes from the sample's own generator (:func:`streamseg.train.data.sample_rng`),
so an example is a pure function of the run's seed and the sample index.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np
import numpy.typing as npt
import torch

from streamseg.train.sources import Sample

logger = logging.getLogger(__name__)

#: Letterbox padding value (YOLO convention), per channel in 0..255.
PAD_VALUE = 114
#: Prototype maps (and mask targets) are at 1/4 of the input.
MASK_STRIDE = 4
#: Side of the point grid at which each object's mask is also supervised at input resolution
#: (see :func:`roi_points`).
ROI_SIZE = 24


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation strengths (0 disables each one).

    Attributes:
        hsv_h: hue jitter, fraction of the hue circle.
        hsv_s: saturation gain jitter (gain in ``1 +- hsv_s``).
        hsv_v: value gain jitter.
        flip: probability of a horizontal flip.
        scale_min: smallest zoom factor after the letterbox (log-uniform in min..max).
        scale_max: largest zoom factor.
        translate: shift, fraction of the input size.
        mosaic: probability of a 2x2 mosaic of four samples.
        copy_paste: probability that a sample gets extra copies of its small instances (the
            ball, distant people: the rare, hard cases) pasted in front of the scene.
        copy_paste_max_frac: instances up to this share of the image area count as small.
        copy_paste_max: most copies pasted into one sample.
        linear_resize: probability that a shrinking resize is bilinear without antialiasing
            (what the runtime's letterbox does) instead of area filtering.
        min_area_px: instances with fewer visible pixels (input resolution) after augmentation
            are dropped.
    """

    hsv_h: float = 0.015
    hsv_s: float = 0.5
    hsv_v: float = 0.35
    flip: float = 0.5
    scale_min: float = 0.8
    scale_max: float = 1.4
    translate: float = 0.1
    mosaic: float = 0.0
    copy_paste: float = 0.5
    copy_paste_max_frac: float = 0.004
    copy_paste_max: int = 3
    linear_resize: float = 0.5
    min_area_px: int = 6


DEFAULT_AUGMENT = AugmentConfig()
"""The default strengths (a :class:`~streamseg.train.data.TrainDataset` given none)."""

NO_AUGMENT = AugmentConfig(
    hsv_h=0.0,
    hsv_s=0.0,
    hsv_v=0.0,
    flip=0.0,
    scale_min=1.0,
    scale_max=1.0,
    translate=0.0,
    mosaic=0.0,
    copy_paste=0.0,
    linear_resize=0.0,
)


def letterbox_params(
    src_hw: tuple[int, int], dst_hw: tuple[int, int]
) -> tuple[float, float, float]:
    """Scale and padding that fit ``src_hw`` into ``dst_hw`` keeping the aspect ratio.

    Returns:
        (scale, pad_x, pad_y): ``dst = src * scale + pad``, in pixels.
    """
    sh, sw = src_hw
    dh, dw = dst_hw
    r = min(dh / sh, dw / sw)
    return r, (dw - sw * r) / 2, (dh - sh * r) / 2


def _warp_image(
    image: npt.NDArray[np.uint8],
    m: npt.NDArray[np.float64],
    dst_hw: tuple[int, int],
    pad: int = PAD_VALUE,
    area: bool = True,
) -> npt.NDArray[np.uint8]:
    """Warp an (H, W, 3) image or (H, W) mask with the affine ``m`` (source -> destination).

    With ``area``, a pure scale+shift that shrinks goes through ``cv2.resize`` with area
    filtering and a paste (``warpAffine`` has no area filter and aliases thin structures);
    anything else through ``warpAffine`` with bilinear interpolation. Pass the same ``area`` for
    an image and its masks so they stay aligned.
    """
    axis_aligned = abs(m[0, 1]) < 1e-12 and abs(m[1, 0]) < 1e-12
    if area and axis_aligned and abs(m[0, 0]) < 1.0:
        return _resize_paste(image, m, dst_hw, pad)
    border = (pad, pad, pad) if image.ndim == 3 else pad
    out = cv2.warpAffine(
        image,
        m,
        (dst_hw[1], dst_hw[0]),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border,
    )
    return np.asarray(out, dtype=np.uint8)


def _resize_paste(
    image: npt.NDArray[np.uint8], m: npt.NDArray[np.float64], dst_hw: tuple[int, int], pad: int
) -> npt.NDArray[np.uint8]:
    sx, sy, tx, ty = float(m[0, 0]), float(m[1, 1]), float(m[0, 2]), float(m[1, 2])
    h, w = image.shape[:2]
    nw, nh = max(1, round(w * abs(sx))), max(1, round(h * abs(sy)))
    small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    if sx < 0:
        small = small[:, ::-1]
        tx = tx - nw  # a mirrored image ends at tx
    out = np.full((dst_hw[0], dst_hw[1], *image.shape[2:]), pad, dtype=np.uint8)
    x0, y0 = round(tx), round(ty)
    dx0, dy0 = max(0, x0), max(0, y0)
    dx1, dy1 = min(dst_hw[1], x0 + nw), min(dst_hw[0], y0 + nh)
    if dx1 > dx0 and dy1 > dy0:
        out[dy0:dy1, dx0:dx1] = small[dy0 - y0 : dy1 - y0, dx0 - x0 : dx1 - x0]
    return out


def _hsv_jitter(image: npt.NDArray[np.uint8], cfg: AugmentConfig, rng: np.random.Generator) -> None:
    """Random hue / saturation / value gains, in place (YOLO-style lookup tables)."""
    if cfg.hsv_h <= 0 and cfg.hsv_s <= 0 and cfg.hsv_v <= 0:
        return
    gh, gs, gv = rng.uniform(-1, 1, 3) * (cfg.hsv_h, cfg.hsv_s, cfg.hsv_v) + 1
    hue, sat, val = cv2.split(cv2.cvtColor(image, cv2.COLOR_BGR2HSV))
    x = np.arange(256, dtype=np.float32)
    lut_h = ((x * gh) % 180).astype(np.uint8)
    lut_s = np.clip(x * gs, 0, 255).astype(np.uint8)
    lut_v = np.clip(x * gv, 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v)))
    cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR, dst=image)


@dataclass(frozen=True)
class MaskTargetConfig:
    """How an instance mask becomes its training target at prototype resolution (1/4).

    The runtime upsamples ``sigmoid(coef @ protos)`` bilinearly, keeps pixels above 0.5 (unless
    the exported file records a calibrated ``mask_threshold``; see ``streamseg.train.export``)
    and crops to the box. If the target were the plain area coverage of each prototype cell, an
    object one or two cells wide (a distant person, the ball) would come out thinner than it is,
    since the upsampled coverage rarely exceeds 0.5 across its width: with perfect predictions only
    74 % of held-out persons and 13 % of balls reached mask IoU 0.5. So small objects get hard,
    slightly dilated targets (the box crop trims the excess); larger ones keep the coverage
    (measured ceiling: 93 % persons, 100 % balls, unchanged for large objects).

    Attributes:
        tiny_px: objects whose box's shorter side (input pixels) is below this ...
        tiny_coverage: ... target 1 where the cell coverage exceeds this, else 0.
        small_px: objects below this (and not tiny) ...
        small_coverage: ... target 1 where the coverage is at least this, else 0.
    """

    tiny_px: float = 8.0
    tiny_coverage: float = 0.1
    small_px: float = 16.0
    small_coverage: float = 0.25


DEFAULT_MASK_TARGETS = MaskTargetConfig()


def mask_target(
    coverage: npt.NDArray[np.float32], box_wh: tuple[float, float], cfg: MaskTargetConfig
) -> npt.NDArray[np.float32]:
    """The training target of one instance (see :class:`MaskTargetConfig`).

    Args:
        coverage: (H/4, W/4) float32 in 0..1, share of each prototype cell the object covers.
        box_wh: (width, height) of the object's box in input pixels.
        cfg: size thresholds.

    Returns:
        (H/4, W/4) float32 target in 0..1.
    """
    side = min(box_wh)
    if side < cfg.tiny_px:
        return (coverage > cfg.tiny_coverage).astype(np.float32)
    if side < cfg.small_px:
        return (coverage >= cfg.small_coverage).astype(np.float32)
    return coverage


def roi_points(
    box_xyxy: npt.NDArray[np.float32], input_hw: tuple[int, int], size: int = ROI_SIZE
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]:
    """Input pixels at which an object's mask is supervised at full resolution.

    A ``size`` x ``size`` grid over the object's box grown by a margin (10 % of each side, at
    least 1 px), so the loss also sees the background just outside the object, which the
    runtime's crop keeps when the predicted box is a little larger. Each grid point is snapped
    to the pixel it falls in: the loss then scores exactly the pixels the runtime thresholds
    (at their centres), at any object size. Small objects repeat pixels; large ones subsample.

    Returns:
        (xs, ys): ``size`` int16 pixel columns and rows, inside the input.
    """
    h, w = input_hw
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    mx = max(1.0, 0.1 * (x2 - x1))
    my = max(1.0, 0.1 * (y2 - y1))
    x1, x2 = max(0.0, x1 - mx), min(float(w), x2 + mx)
    y1, y2 = max(0.0, y1 - my), min(float(h), y2 + my)
    t = (np.arange(size, dtype=np.float64) + 0.5) / size
    xs = np.clip(np.floor(x1 + t * (x2 - x1)), 0, w - 1).astype(np.int16)
    ys = np.clip(np.floor(y1 + t * (y2 - y1)), 0, h - 1).astype(np.int16)
    return xs, ys


class Example(NamedTuple):
    """One training example at the input size.

    Attributes:
        image: (3, H, W) uint8 RGB tensor.
        boxes_xyxy: (n, 4) float32 input pixels (tight boxes of the augmented masks).
        labels: (n,) int64.
        masks: (n, H/4, W/4) float16 mask targets in 0..1 (see :class:`MaskTargetConfig`).
        roi_xy: (n, 2, ROI_SIZE) int16 pixel columns and rows of each object's full-resolution
            points (:func:`roi_points`).
        roi: (n, ROI_SIZE, ROI_SIZE) bool, the object's visible mask at those points
            (``roi[k, i, j]`` is pixel ``(x=roi_xy[k, 0, j], y=roi_xy[k, 1, i])``).
    """

    image: torch.Tensor
    boxes_xyxy: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    roi_xy: torch.Tensor
    roi: torch.Tensor


def _random_affine(
    src_hw: tuple[int, int],
    dst_hw: tuple[int, int],
    cfg: AugmentConfig,
    rng: np.random.Generator,
) -> npt.NDArray[np.float64]:
    """Letterbox + random zoom/shift/flip as one 2x3 affine matrix (source -> destination)."""
    r, px, py = letterbox_params(src_hw, dst_hw)
    s = (
        float(np.exp(rng.uniform(np.log(cfg.scale_min), np.log(cfg.scale_max))))
        if cfg.scale_max > cfg.scale_min
        else cfg.scale_min
    )
    dh, dw = dst_hw
    tx = rng.uniform(-cfg.translate, cfg.translate) * dw if cfg.translate > 0 else 0.0
    ty = rng.uniform(-cfg.translate, cfg.translate) * dh if cfg.translate > 0 else 0.0
    flip = cfg.flip > 0 and rng.random() < cfg.flip
    sw, sh = src_hw[1] * r, src_hw[0] * r
    # Letterbox, zoom by s around the destination centre, shift: the source centre lands at
    # (cx, cy) and every source pixel is scaled by a = r * s.
    a = r * s
    cx = (px + sw / 2 - dw / 2) * s + dw / 2 + tx
    cy = (py + sh / 2 - dh / 2) * s + dh / 2 + ty
    m = np.array([[a, 0.0, cx - src_hw[1] * a / 2], [0.0, a, cy - src_hw[0] * a / 2]])
    if flip:
        m = np.array([[-1.0, 0.0, dw], [0.0, 1.0, 0.0]]) @ np.vstack((m, (0.0, 0.0, 1.0)))
    return m


def make_example(
    sample: Sample,
    input_hw: tuple[int, int],
    cfg: AugmentConfig,
    rng: np.random.Generator,
    targets: MaskTargetConfig = DEFAULT_MASK_TARGETS,
) -> Example:
    """Letterbox and augment one sample into an :class:`Example`.

    Args:
        sample: image and instances at the source resolution.
        input_hw: (H, W) network input, multiples of 32.
        cfg: augmentation strengths (:data:`NO_AUGMENT` for a plain letterbox).
        rng: the sample's generator.
        targets: how masks become prototype-resolution targets.

    Returns:
        The example; instances that fall (almost) outside the image are dropped.
    """
    if cfg.copy_paste > 0 and rng.random() < cfg.copy_paste:
        sample = copy_paste_small(sample, rng, cfg.copy_paste_max_frac, cfg.copy_paste_max)
    src_hw = (int(sample.image.shape[0]), int(sample.image.shape[1]))
    m = _random_affine(src_hw, input_hw, cfg, rng)
    area = not (cfg.linear_resize > 0 and rng.random() < cfg.linear_resize)
    image = _warp_image(sample.image, m, input_hw, area=area)
    _hsv_jitter(image, cfg, rng)
    return _finish(image, [(sample, m)], input_hw, cfg, area=area, targets=targets)


def copy_paste_small(
    sample: Sample,
    rng: np.random.Generator,
    max_frac: float = 0.004,
    max_copies: int = 3,
    max_shift_y: float = 0.15,
) -> Sample:
    """Paste copies of a sample's small instances elsewhere in the same image (copy-paste).

    Each copy takes the instance's visible pixels (optionally mirrored) to a random place at
    about the same height (within ``max_shift_y`` of the image height, so perspective stays
    plausible), in front of everything: the masks it covers lose those pixels.

    Args:
        sample: the source sample (not modified).
        rng: the sample's generator.
        max_frac: instances with at most this share of the image area are candidates.
        max_copies: most copies to paste.
        max_shift_y: largest vertical move, fraction of the image height.

    Returns:
        A new sample with the copies appended (the original when nothing is small).
    """
    h, w = sample.image.shape[:2]
    areas = sample.masks.reshape(len(sample.masks), -1).sum(1) if len(sample.masks) else []
    small = [i for i, a in enumerate(areas) if 0 < a <= max_frac * h * w]
    if not small:
        return sample
    image = sample.image.copy()
    masks = list(sample.masks.copy())
    class_ids = list(sample.class_ids)
    for _ in range(int(rng.integers(1, max_copies + 1))):
        i = small[int(rng.integers(0, len(small)))]
        ys, xs = np.nonzero(sample.masks[i])
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        patch = sample.image[y0:y1, x0:x1]
        pmask = sample.masks[i][y0:y1, x0:x1]
        if rng.random() < 0.5:
            patch, pmask = patch[:, ::-1], pmask[:, ::-1]
        ph, pw = pmask.shape
        nx = int(rng.integers(0, max(1, w - pw + 1)))
        dy = int(rng.integers(-int(max_shift_y * h), int(max_shift_y * h) + 1))
        ny = int(np.clip(y0 + dy, 0, max(0, h - ph)))
        new = np.zeros((h, w), bool)
        new[ny : ny + ph, nx : nx + pw] = pmask
        image[new] = patch[pmask]
        masks = [m & ~new for m in masks]
        masks.append(new)
        class_ids.append(int(sample.class_ids[i]))
    return Sample(image, np.stack(masks), np.array(class_ids, dtype=np.int64))


def make_mosaic(
    samples: Sequence[Sample],
    input_hw: tuple[int, int],
    cfg: AugmentConfig,
    rng: np.random.Generator,
) -> Example:
    """2x2 mosaic of four samples, each letterboxed into one quadrant and augmented."""
    if len(samples) != 4:
        raise ValueError(f"make_mosaic: expected 4 samples, got {len(samples)}")
    h, w = input_hw
    qh, qw = h // 2, w // 2
    image = np.full((h, w, 3), PAD_VALUE, dtype=np.uint8)
    parts: list[tuple[Sample, npt.NDArray[np.float64]]] = []
    for i, s in enumerate(samples):
        ox, oy = (i % 2) * qw, (i // 2) * qh
        m = _random_affine((s.image.shape[0], s.image.shape[1]), (qh, qw), cfg, rng)
        tile = _warp_image(s.image, m, (qh, qw))
        image[oy : oy + qh, ox : ox + qw] = tile
        m = m.copy()
        m[0, 2] += ox
        m[1, 2] += oy
        parts.append((s, m))
    _hsv_jitter(image, cfg, rng)
    return _finish(image, parts, input_hw, cfg, quadrants=(qh, qw))


def _finish(
    image: npt.NDArray[np.uint8],
    parts: Sequence[tuple[Sample, npt.NDArray[np.float64]]],
    input_hw: tuple[int, int],
    cfg: AugmentConfig,
    quadrants: tuple[int, int] | None = None,
    area: bool = True,
    targets: MaskTargetConfig = DEFAULT_MASK_TARGETS,
) -> Example:
    h, w = input_hw
    mh, mw = h // MASK_STRIDE, w // MASK_STRIDE
    boxes: list[npt.NDArray[np.float32]] = []
    labels: list[int] = []
    masks: list[npt.NDArray[np.float32]] = []
    roi_xy: list[npt.NDArray[np.int16]] = []
    roi: list[npt.NDArray[np.bool_]] = []
    for qi, (sample, m) in enumerate(parts):
        if quadrants is not None:
            qh, qw = quadrants
            ox, oy = (qi % 2) * qw, (qi // 2) * qh
        for mask, cid in zip(sample.masks, sample.class_ids, strict=True):
            warped = _warp_image(mask.astype(np.uint8) * 255, m, input_hw, pad=0, area=area)
            if quadrants is not None:
                keep = np.zeros_like(warped)
                keep[oy : oy + qh, ox : ox + qw] = warped[oy : oy + qh, ox : ox + qw]
                warped = keep
            binary = warped >= 128
            if int(binary.sum()) < cfg.min_area_px:
                continue
            ys, xs = np.nonzero(binary)
            box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)
            boxes.append(box)
            labels.append(int(cid))
            px, py = roi_points(box, input_hw)
            roi_xy.append(np.stack((px, py)))
            roi.append(binary[np.ix_(py, px)])
            small = cv2.resize(warped, (mw, mh), interpolation=cv2.INTER_AREA)
            box_wh = (float(xs.max() + 1 - xs.min()), float(ys.max() + 1 - ys.min()))
            masks.append(mask_target(small.astype(np.float32) / 255.0, box_wh, targets))
    rgb = np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1))
    n = len(labels)
    return Example(
        image=torch.from_numpy(rgb),
        boxes_xyxy=torch.from_numpy(np.stack(boxes)) if n else torch.zeros(0, 4),
        labels=torch.tensor(labels, dtype=torch.int64),
        masks=torch.from_numpy(np.stack(masks)).half() if n else torch.zeros(0, mh, mw).half(),
        roi_xy=(
            torch.from_numpy(np.stack(roi_xy))
            if n
            else torch.zeros(0, 2, ROI_SIZE, dtype=torch.int16)
        ),
        roi=(
            torch.from_numpy(np.stack(roi))
            if n
            else torch.zeros(0, ROI_SIZE, ROI_SIZE, dtype=torch.bool)
        ),
    )

"""Edge-aware refinement of the decoded masks on the frame's own pixels (guided filter).

A YOLO-seg model predicts masks as a combination of prototypes at a quarter of its input
resolution, upsampled bilinearly: a sheep 12 pixels wide is three prototype cells across, and
its mask comes out as a blob whose edge does not follow the animal's. The frame itself knows
where the edge is. The colour guided filter (He, Sun and Tang, "Guided Image Filtering", ECCV
2010) fits, in every small window, a linear map from the frame's colours to the mask: where the
window holds one colour the mask is smoothed, where it straddles an edge the mask takes the
edge's shape. Thresholded at one half, the filtered mask snaps to the object's outline; it may
reach a few pixels past the model's box (at most ``(radius + PAD_BEYOND_RADIUS) * subsample``).

The built-in model through the runtime, mask mAP@0.5 / mAP@[.5:.95] without -> with it
(``bench/model.py``, 300 held-out frames per kind, the 704x384 export): yard 0.979 / 0.833 ->
0.982 / 0.903, field 0.839 / 0.575 -> 0.856 / 0.666, pitch 0.740 / 0.490 -> 0.764 / 0.643
(the 640x352 export before it gained about as much). Radius 4 and eps 0.001
were chosen on a second held-out set (scene seeds 5e11 + j): radius 1 to 8, eps 0.0003 to
0.003, a radius proportional to the box and a grey guide were tried; radius 3 to 6 and those
eps values are all within 0.006 of each other at mAP@0.5.

It runs on the host. The runtime fits the coefficients at about half the model's input
resolution (the fast guided filter of He and Sun, 2015; see ``MaskRefine.for_frame``) and
applies them at the frame's, and all the crops of a frame are filtered together on one canvas
(:class:`_Canvas`): a few operations on one array per frame rather than some sixty small ones
per mask. Per-mask operations held Python's interpreter lock long enough on crowded frames to
slow the pipeline's other threads (``bench/throughput.py``: pipeline / bare loop 0.82-0.87
against 0.91-0.94 this way). On 640x360 frames on 2 CPU cores it costs about 2.5 ms with 9
objects and 3.9 ms with 21; on 1920x1080 frames about 10 ms with 22.
"""

from __future__ import annotations

import logging
from typing import TypeVar

import cv2
import numpy as np
import numpy.typing as npt
import supervision as sv

from streamseg.rle import encode_runs

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
IntT = TypeVar("IntT", int, npt.NDArray[np.int64])

PAD_BEYOND_RADIUS = 2
"""A crop is widened by ``(radius + PAD_BEYOND_RADIUS) * subsample`` pixels on each side before
filtering, so the mask can grow past the model's box and the windows see both sides of its
edge."""

CANVAS_MIN_WIDTH = 640
"""Width of the canvas the crops of one frame are packed onto (wider for a wider crop)."""

APPLY_BY_CROP_FROM = 3
"""From this shrink factor up (frames from about 1.5 times the model's input), the fitted
coefficients are enlarged and applied crop by crop rather than over the whole canvas: at
1920x1080 with 22 objects that took the refinement from about 19 to 10 ms. Below it, the
canvas-wide pass is as fast and makes fewer numpy calls (the interpreter lock, see above)."""

MASK_LEVEL = 0.5
"""The filtered mask (the input mask is 0 / 1) is set where it is strictly above this."""


def guided_filter(
    guide: FloatArray, source: FloatArray, radius: int, eps: float, subsample: int = 1
) -> FloatArray:
    """The colour guided filter of ``source`` under ``guide`` (He et al., 2010).

    With ``subsample`` s > 1 it is the *fast* guided filter (He and Sun, 2015): the linear
    coefficients are fitted on both images shrunk s times (windows of ``radius`` shrunk pixels),
    enlarged back bilinearly and applied to the full-resolution guide, so edges stay sharp while
    the cost falls about s² times. The runtime fits at about half the model's input resolution
    (``streamseg.models.segmenter.MaskRefine.for_frame``).

    Args:
        guide: (h, w, 3) float32, the image (any channel order), values in [0, 1].
        source: (h, w) float32, the signal to filter (a 0 / 1 mask here).
        radius: window half-size in (shrunk) pixels, >= 1 (windows are ``2 * radius + 1``
            square).
        eps: regularization, in the guide's squared units (> 0): windows whose colour variance
            is well below it are smoothed rather than fitted to their edges.
        subsample: shrink factor of the coefficient fit, >= 1.

    Returns:
        (h, w) float32, the filtered signal.
    """
    h, w = source.shape
    if subsample > 1 and min(h, w) >= 2 * subsample:
        fitted = _fit_shrunk(guide, source, radius, eps, subsample)
        coeffs = np.asarray(cv2.resize(fitted, (w, h), interpolation=cv2.INTER_LINEAR), np.float32)
    else:
        coeffs = _coefficients(guide, source, radius, eps)
    return _apply(coeffs, guide)


def _fit_shrunk(
    guide: FloatArray, source: FloatArray, radius: int, eps: float, subsample: int
) -> FloatArray:
    """:func:`_coefficients` of ``guide`` and ``source`` shrunk ``subsample`` times (area
    averaging), on the shrunk grid."""
    h, w = source.shape
    small = (max(1, w // subsample), max(1, h // subsample))
    small_guide = np.asarray(cv2.resize(guide, small, interpolation=cv2.INTER_AREA), np.float32)
    small_source = np.asarray(cv2.resize(source, small, interpolation=cv2.INTER_AREA), np.float32)
    return _coefficients(small_guide, small_source, radius, eps)


def _apply(coeffs: FloatArray, guide: FloatArray) -> FloatArray:
    """The filtered signal ``a . guide + b`` from (h, w, 4) coefficients ``(a_r, a_g, a_b, b)``."""
    out: FloatArray = (
        coeffs[..., 0] * guide[..., 0]
        + coeffs[..., 1] * guide[..., 1]
        + coeffs[..., 2] * guide[..., 2]
        + coeffs[..., 3]
    )
    return out


def _coefficients(guide: FloatArray, source: FloatArray, radius: int, eps: float) -> FloatArray:
    """(h, w, 4) float32: the window-averaged linear map ``(a_r, a_g, a_b, b)`` of each pixel,
    such that the filtered signal is ``a . guide + b`` (:func:`guided_filter`)."""
    size = (2 * radius + 1, 2 * radius + 1)
    r, g, b = guide[..., 0], guide[..., 1], guide[..., 2]
    # One box filter over every product a window's statistics need.
    sums = np.stack(
        (
            r,
            g,
            b,
            source,
            r * source,
            g * source,
            b * source,
            r * r,
            r * g,
            r * b,
            g * g,
            g * b,
            b * b,
        ),
        axis=-1,
    )
    mean = np.asarray(cv2.boxFilter(sums, -1, size, borderType=cv2.BORDER_REFLECT))
    m_r, m_g, m_b, m_p = mean[..., 0], mean[..., 1], mean[..., 2], mean[..., 3]
    c_r = mean[..., 4] - m_r * m_p
    c_g = mean[..., 5] - m_g * m_p
    c_b = mean[..., 6] - m_b * m_p
    s_rr = mean[..., 7] - m_r * m_r + eps
    s_rg = mean[..., 8] - m_r * m_g
    s_rb = mean[..., 9] - m_r * m_b
    s_gg = mean[..., 10] - m_g * m_g + eps
    s_gb = mean[..., 11] - m_g * m_b
    s_bb = mean[..., 12] - m_b * m_b + eps
    # a = inverse(colour covariance + eps I) @ covariance(colour, source), by cofactors.
    i_rr = s_gg * s_bb - s_gb * s_gb
    i_rg = s_gb * s_rb - s_rg * s_bb
    i_rb = s_rg * s_gb - s_gg * s_rb
    i_gg = s_rr * s_bb - s_rb * s_rb
    i_gb = s_rb * s_rg - s_rr * s_gb
    i_bb = s_rr * s_gg - s_rg * s_rg
    det = s_rr * i_rr + s_rg * i_rg + s_rb * i_rb
    a_r = (i_rr * c_r + i_rg * c_g + i_rb * c_b) / det
    a_g = (i_rg * c_r + i_gg * c_g + i_gb * c_b) / det
    a_b = (i_rb * c_r + i_gb * c_g + i_bb * c_b) / det
    offset = m_p - a_r * m_r - a_g * m_g - a_b * m_b
    stacked = np.stack((a_r, a_g, a_b, offset), axis=-1)
    coeffs: FloatArray = np.asarray(
        cv2.boxFilter(stacked, -1, size, borderType=cv2.BORDER_REFLECT), dtype=np.float32
    )
    return coeffs


def _round_up(value: IntT, step: int) -> IntT:
    """``value`` (an int or an int array) rounded up to a multiple of ``step``."""
    return -(-value // step) * step


class _Canvas:
    """Shelf packing of rectangles onto one canvas: left to right in rows, a new row when the
    next one does not fit in :data:`CANVAS_MIN_WIDTH` (or the widest rectangle).

    Sizes are rounded up to multiples of ``align``, so every corner lies on the grid a
    ``subsample`` times shrunk canvas samples: a crop is shrunk the same way wherever it lands,
    and its refined mask does not depend on the other detections of the frame.

    Attributes:
        origins: (N, 2) int64, ``x, y`` of each rectangle's top-left corner.
        width, height: the canvas size.
    """

    def __init__(
        self, heights: npt.NDArray[np.int64], widths: npt.NDArray[np.int64], align: int = 1
    ) -> None:
        heights = _round_up(heights, align)
        widths = _round_up(widths, align)
        self.width = _round_up(max(int(widths.max()), CANVAS_MIN_WIDTH), align)
        self.origins = np.zeros((len(widths), 2), dtype=np.int64)
        x = y = row = 0
        for k in np.argsort(-heights, kind="stable").tolist():  # tallest first: fuller rows
            hk, wk = int(heights[k]), int(widths[k])
            if x + wk > self.width:
                x, y, row = 0, y + row, 0
            self.origins[k] = (x, y)
            x += wk
            row = max(row, hk)
        self.height = y + row


def _enlarged(
    fitted: FloatArray, x: int, y: int, width: int, height: int, subsample: int
) -> FloatArray:
    """The (height, width, 4) coefficients of the canvas rectangle at ``x, y`` (multiples of
    ``subsample``), enlarged bilinearly from ``fitted`` (the canvas shrunk ``subsample``
    times) as enlarging the whole of it would: the block read keeps one shrunk pixel of margin,
    so the interpolation at the rectangle's edges sees the same neighbours."""
    sy0, sx0 = max(y // subsample - 1, 0), max(x // subsample - 1, 0)
    sy1 = min(-(-(y + height) // subsample) + 1, fitted.shape[0])
    sx1 = min(-(-(x + width) // subsample) + 1, fitted.shape[1])
    block = fitted[sy0:sy1, sx0:sx1]
    size = ((sx1 - sx0) * subsample, (sy1 - sy0) * subsample)
    up = np.asarray(cv2.resize(block, size, interpolation=cv2.INTER_LINEAR), np.float32)
    oy, ox = y - sy0 * subsample, x - sx0 * subsample
    return up[oy : oy + height, ox : ox + width]


def refine_masks(
    image: npt.NDArray[np.uint8],
    mask: sv.CompactMask,
    radius: int,
    eps: float,
    subsample: int = 1,
) -> sv.CompactMask:
    """Refine every mask of a frame with :func:`guided_filter` on the frame's pixels.

    Each mask is filtered over its crop widened by ``(radius + PAD_BEYOND_RADIUS) * subsample``
    pixels (clipped to the frame) and thresholded at :data:`MASK_LEVEL`; the new crop is the
    bounding box of what is set. A mask that would come out empty keeps its original pixels
    (the refinement never takes a detection's mask away).

    Args:
        image: (H, W, 3) uint8, the frame the masks were predicted on (BGR).
        mask: the frame's masks, ``image_shape`` (H, W).
        radius: window half-size, frame pixels / ``subsample``, >= 1.
        eps: regularization (:func:`guided_filter`), > 0.
        subsample: fit the filter on crops shrunk this many times (:func:`guided_filter`), >= 1.

    Returns:
        A new ``CompactMask`` with the same number of masks, in order.

    Raises:
        ValueError: ``image`` is not (H, W, 3) uint8 of the masks' frame size, or ``radius``,
            ``eps`` or ``subsample`` are out of range.
    """
    h, w = (int(v) for v in mask.image_shape)
    if image.dtype != np.uint8 or image.shape != (h, w, 3):
        raise ValueError(
            f"image: expected the masks' frame, ({h}, {w}, 3) uint8, got {image.dtype} "
            f"{image.shape}"
        )
    if radius < 1:
        raise ValueError(f"radius: expected >= 1, got {radius}")
    if not eps > 0:
        raise ValueError(f"eps: expected > 0, got {eps}")
    if subsample < 1:
        raise ValueError(f"subsample: expected >= 1, got {subsample}")
    n = len(mask)
    if n == 0:
        return mask
    pad = (radius + PAD_BEYOND_RADIUS) * subsample
    offsets = np.asarray(mask.offsets, dtype=np.int64).reshape(-1, 2)
    originals = [np.asarray(mask.crop(k), dtype=bool) for k in range(n)]
    sizes_wh = np.array([c.shape[::-1] for c in originals], dtype=np.int64).reshape(-1, 2)
    # Each mask's crop, widened by ``pad`` and clipped to the frame: (left, top, right, bottom).
    regions = np.concatenate(
        (np.maximum(offsets - pad, 0), np.minimum(offsets + sizes_wh + pad, (w, h))), axis=1
    )
    # All crops are filtered at once, side by side on one canvas, apart by a blank gap wider
    # than any window's reach: a handful of operations on one array per frame instead of some
    # sixty small ones per mask, which kept the interpreter busy (and the pipeline's other
    # threads waiting) on crowded frames.
    gap = _round_up(2 * radius * subsample + 1, subsample)
    heights = regions[:, 3] - regions[:, 1] + gap
    widths = regions[:, 2] - regions[:, 0] + gap
    canvas = _Canvas(heights, widths, align=subsample)
    guide = np.zeros((canvas.height, canvas.width, 3), dtype=np.uint8)
    source = np.zeros((canvas.height, canvas.width), dtype=np.float32)
    for k, crop in enumerate(originals):
        left, top, right, bottom = (int(v) for v in regions[k])
        x0, y0 = (int(v) for v in offsets[k])
        cx, cy = (int(v) + gap for v in canvas.origins[k])
        guide[cy : cy + bottom - top, cx : cx + right - left] = image[top:bottom, left:right]
        cy, cx = cy + y0 - top, cx + x0 - left
        source[cy : cy + crop.shape[0], cx : cx + crop.shape[1]] = crop
    scaled = guide.astype(np.float32) * np.float32(1 / 255)
    by_crop = subsample >= APPLY_BY_CROP_FROM
    if by_crop:
        # Fit on the shrunk canvas, then enlarge and apply the coefficients crop by crop: the
        # full-resolution work covers the crops, not the canvas's gaps and empty corners.
        fitted = _fit_shrunk(scaled, source, radius, eps, subsample)
    else:
        whole = guided_filter(scaled, source, radius, eps, subsample)
    crops: list[npt.NDArray[np.bool_]] = []
    origins = np.empty((n, 2), dtype=np.int64)
    for k, crop in enumerate(originals):
        left, top, right, bottom = (int(v) for v in regions[k])
        cx, cy = (int(v) + gap for v in canvas.origins[k])
        ch, cw = bottom - top, right - left
        if by_crop:
            coeffs = _enlarged(fitted, cx, cy, cw, ch, subsample)
            filtered = _apply(coeffs, scaled[cy : cy + ch, cx : cx + cw])
        else:
            filtered = whole[cy : cy + ch, cx : cx + cw]
        refined = filtered > MASK_LEVEL
        rows = np.flatnonzero(refined.any(axis=1))
        if len(rows) == 0:
            crops.append(crop)
            origins[k] = offsets[k]
            continue
        cols = np.flatnonzero(refined.any(axis=0))
        crops.append(refined[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
        origins[k] = (left + cols[0], top + rows[0])
    shapes = np.array([c.shape for c in crops], dtype=np.int32).reshape(-1, 2)
    flat = np.concatenate([c.ravel(order="F") for c in crops])
    rles = encode_runs(flat, shapes[:, 0].astype(np.int64) * shapes[:, 1])
    return sv.CompactMask(rles, shapes, origins.astype(np.int32), (h, w))


def refine_detections(
    image: npt.NDArray[np.uint8],
    detections: sv.Detections,
    radius: int,
    eps: float,
    subsample: int = 1,
) -> sv.Detections:
    """``detections`` with their masks refined (:func:`refine_masks`); a fresh object.

    Detections without masks, or without rows, come back as a new object with the same fields.
    Boxes, scores, classes and data are the model's: only the masks change.
    """
    mask = detections.mask
    if mask is not None and len(detections) > 0:
        if not isinstance(mask, sv.CompactMask):
            mask = sv.CompactMask.from_dense(
                np.asarray(mask, dtype=bool), detections.xyxy, image.shape[:2]
            )
        mask = refine_masks(image, mask, radius, eps, subsample)
    return sv.Detections(
        xyxy=detections.xyxy,
        mask=mask,
        confidence=detections.confidence,
        class_id=detections.class_id,
        tracker_id=detections.tracker_id,
        data=dict(detections.data),
        metadata=dict(detections.metadata),
    )

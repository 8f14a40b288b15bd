"""A cheap appearance cue: a coarse colour histogram of the frame pixels under each detection.

Geometry cannot tell apart two small objects of one class whose boxes and masks overlap the
wrong track better than the right one (fast players crossing on a pitch). Their colours often
can: a team's kit, a hi-vis vest, a cow's coat. Each detection gets a joint BGR histogram of
the pixels under its mask (:func:`colour_histograms`; inside the central part of its box when it
has no mask), each track keeps a running average of its detections' histograms
(:meth:`~streamseg.track.tracks.TrackTable.store_appearance`) and a pair is compared with the
Bhattacharyya coefficient (:func:`histogram_similarity`). The tracker subtracts
``appearance_weight * (1 - similarity)`` from the fused box + mask similarity.

Cost: per detection, one slice and one boolean index of its crop subsampled to at most
:data:`MAX_SAMPLE_SIDE` cells a side (no loop over pixels); then one quantization and one
``np.bincount`` for all detections together.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import numpy.typing as npt

from streamseg.track.masks import GridMasks

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

CHANNEL_BITS = 2
"""Histogram bins per colour channel are ``2 ** CHANNEL_BITS`` (the top bits of each 8-bit
value): 4 per channel, 64 joint bins, coarse enough that shading and sensor noise move few
pixels across a bin edge, fine enough to separate kits of different colours."""

NUM_BINS = 1 << (3 * CHANNEL_BITS)
"""Length of a histogram."""

MAX_SAMPLE_SIDE = 24
"""A crop larger than this many cells along a side is subsampled to at most that many before its
pixels are gathered, which bounds the cost per detection whatever the object's size."""

BOX_CORE = 0.25
"""Without a mask, the pixels counted are those of the box less this fraction of its width and
height on every side (the central half: mostly the object, little background)."""

NO_CROP: BoolArray = np.zeros((0, 0), dtype=np.bool_)

PIXEL = np.dtype((np.void, 3))
"""A BGR pixel as one opaque 3-byte item."""

MIN_PIXELS = 4
"""A detection with fewer sampled pixels gets no histogram (too few to mean anything)."""


def check_image(image: object) -> npt.NDArray[np.uint8]:
    """The frame as an (H, W, 3) uint8 array.

    Raises:
        ValueError: ``image`` is not an (H, W, 3) uint8 array.
    """
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(
            f"image: expected an (H, W, 3) uint8 array, got shape {array.shape} dtype {array.dtype}"
        )
    return array


def colour_histograms(
    image: npt.NDArray[np.uint8], xyxy: FloatArray, masks: GridMasks | None
) -> tuple[FloatArray, BoolArray]:
    """Normalised joint colour histograms of N detections.

    Args:
        image: (H, W, 3) uint8 frame, any 3-channel order (BGR from the decoder).
        xyxy: (N, 4) float boxes, frame pixels.
        masks: the detections' masks on the analysis grid (N rows), or None: then the central
            part of each box is used (see :data:`BOX_CORE`). A row without mask pixels falls back
            to its box too.

    Returns:
        ``(hist, valid)``: (N, :data:`NUM_BINS`) float64 histograms summing to 1 (zeros where
        invalid) and (N,) bool, whether the detection had at least :data:`MIN_PIXELS` pixels.
    """
    n = len(xyxy)
    height, width = image.shape[:2]
    # One 3-byte item per pixel: boolean indexing moves whole pixels, about twice as fast as
    # indexing the (H, W, 3) array.
    packed = np.ascontiguousarray(image).view(PIXEL)[:, :, 0]
    parts: list[npt.NDArray[np.void]] = []
    owner: list[int] = []
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(n, 4).tolist()
    use_masks = masks is not None and len(masks) == n
    crops = masks.crops if masks is not None and use_masks else [NO_CROP] * n
    origins = masks.origin.tolist() if masks is not None and use_masks else [[0, 0]] * n
    stride = 1 if masks is None else masks.stride
    for i, (crop, (gx, gy)) in enumerate(zip(crops, origins, strict=True)):
        pixels = None
        if crop.size >= MIN_PIXELS:
            h, w = crop.shape
            step = 1 + (max(h, w) - 1) // MAX_SAMPLE_SIDE
            sub = crop[::step, ::step]
            if stride == 1 and gx >= 0 and gy >= 0:
                # The usual case (masks at frame resolution, inside the frame), inlined.
                window = packed[gy : gy + h : step, gx : gx + w : step]
                if window.shape[:2] == sub.shape:
                    pixels = window[sub]
            if pixels is None:
                pixels = _mask_pixels(packed, sub, gy * stride, gx * stride, step * stride)
        if pixels is None:
            pixels = _box_pixels(packed, boxes[i], height, width)
        if pixels is not None and len(pixels) >= MIN_PIXELS:
            parts.append(pixels)
            owner.append(i)
    hist = np.zeros((n, NUM_BINS), dtype=np.float64)
    valid = np.zeros(n, dtype=bool)
    if not parts:
        return hist, valid
    # Quantize every gathered pixel at once; offset each detection's codes into its own bins.
    lengths = np.fromiter((len(p) for p in parts), dtype=np.intp, count=len(parts))
    code = np.repeat(np.arange(len(parts), dtype=np.intp) * NUM_BINS, lengths)
    code += _codes(np.concatenate(parts).view(np.uint8).reshape(-1, 3))
    counts = np.bincount(code, minlength=len(parts) * NUM_BINS).reshape(len(parts), NUM_BINS)
    rows = np.asarray(owner, dtype=np.intp)
    hist[rows] = counts / lengths[:, None]
    valid[rows] = True
    return hist, valid


def _codes(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """(K,) joint bin of each of (K, 3) pixels (computed in uint8: 6 bits fit)."""
    q = pixels >> np.uint8(8 - CHANNEL_BITS)
    out = q[:, 0] << np.uint8(2 * CHANNEL_BITS)
    out |= q[:, 1] << np.uint8(CHANNEL_BITS)
    out |= q[:, 2]
    return out


def _mask_pixels(
    packed: npt.NDArray[np.void], sub: npt.NDArray[np.bool_], y0: int, x0: int, pitch: int
) -> npt.NDArray[np.void] | None:
    """(K,) frame pixels under a subsampled grid crop, or None if none lie inside the frame.

    Args:
        packed: (H, W) frame, one :data:`PIXEL` per pixel.
        sub: (h, w) bool crop; its cell ``(r, c)`` samples frame pixel
            ``(y0 + r * pitch, x0 + c * pitch)``.
        y0: frame row of the crop's first row (may be negative).
        x0: frame column of the crop's first column (may be negative).
        pitch: frame pixels between neighbouring cells of ``sub``.
    """
    # Skip rows/columns above or left of the frame (crops normally lie inside it).
    r0 = -(y0 // pitch) if y0 < 0 else 0
    c0 = -(x0 // pitch) if x0 < 0 else 0
    window = packed[y0 + r0 * pitch :: pitch, x0 + c0 * pitch :: pitch]
    window = window[: sub.shape[0] - r0, : sub.shape[1] - c0]
    if window.size == 0:
        return None
    inside = sub[r0 : r0 + window.shape[0], c0 : c0 + window.shape[1]]
    pixels: npt.NDArray[np.void] = window[inside]
    return pixels


def _box_pixels(
    packed: npt.NDArray[np.void], box: list[float], height: int, width: int
) -> npt.NDArray[np.void] | None:
    """(K,) pixels of the central part of a box (subsampled), or None if it is empty."""
    if not all(math.isfinite(v) for v in box):
        return None
    x1, y1, x2, y2 = box
    dx, dy = (x2 - x1) * BOX_CORE, (y2 - y1) * BOX_CORE
    c0, c1 = max(0, math.ceil(x1 + dx)), min(width, math.ceil(x2 - dx))
    r0, r1 = max(0, math.ceil(y1 + dy)), min(height, math.ceil(y2 - dy))
    if r1 <= r0 or c1 <= c0:
        return None
    step = max(1, math.ceil(max(r1 - r0, c1 - c0) / MAX_SAMPLE_SIDE))
    return packed[r0:r1:step, c0:c1:step].reshape(-1)


def histogram_similarity(a: FloatArray, b: FloatArray) -> FloatArray:
    """Bhattacharyya coefficient of every pair of normalised histograms.

    Args:
        a: (R, B) histograms summing to 1 (e.g. the tracks').
        b: (D, B) histograms summing to 1 (e.g. the detections').

    Returns:
        (R, D) float64 in [0, 1]: 1 for identical colour distributions, 0 for disjoint ones.
    """
    return root_similarity(np.sqrt(a), np.sqrt(b))


def root_similarity(root_a: FloatArray, root_b: FloatArray) -> FloatArray:
    """:func:`histogram_similarity` from the histograms' element-wise square roots.

    The tracker keeps the roots, so each comparison is a single matrix product.

    Args:
        root_a: (R, B) square roots of histograms summing to 1.
        root_b: (D, B) likewise.

    Returns:
        (R, D) float64 Bhattacharyya coefficients in [0, 1].
    """
    out = root_a @ root_b.T
    # Roots are non-negative, so only rounding can leave [0, 1] (np.clip costs more here).
    return np.minimum(out, 1.0, out=out)


def part_similarity(
    track_hist: FloatArray, det_hist: FloatArray, visible: FloatArray
) -> FloatArray:
    """How well K detections that show only part of their track fit the track's colours.

    A detection showing a fraction ``v`` of an object holds, in each colour bin, at most the
    object's share over ``v``: a worker's legs below a machine are a part of the worker's
    colours, not a copy. The score is the detection's mass that fits under that bound,
    ``sum_b min(det[b], track[b] / v)``: 1 for any part of the object, near 0 for colours the
    track does not have. With ``v = 1`` it is the histogram intersection, at most the
    Bhattacharyya coefficient, so taking the larger of the two never lowers a full view's score.

    Args:
        track_hist: (K, B) the tracks' histograms.
        det_hist: (K, B) the detections' histograms, pair by pair.
        visible: (K,) the visible fraction of each pair, in (0, 1].

    Returns:
        (K,) float64 scores in [0, 1].
    """
    bound = track_hist / np.maximum(visible, 1e-3)[:, None]
    return np.minimum(det_hist, bound).sum(axis=1)

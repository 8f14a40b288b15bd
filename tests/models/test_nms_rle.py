"""Class-aware NMS equals the sequential greedy loop; the RLE encoder equals supervision's."""

from __future__ import annotations

import math

import numpy as np
import pytest
import supervision as sv
import torch
from supervision.detection.utils.converters import _mask_to_rle_counts

from streamseg.models.nms import box_iou, nms
from streamseg.rle import encode_runs


def greedy_reference(
    xyxy: np.ndarray, scores: np.ndarray, classes: np.ndarray, thr: float
) -> list[int]:
    """The textbook loop: take the best box left, drop same-class boxes overlapping it."""
    order = list(np.argsort(-scores, kind="stable"))
    keep: list[int] = []
    iou = box_iou(torch.from_numpy(xyxy), torch.from_numpy(xyxy)).numpy()
    while order:
        i = order.pop(0)
        keep.append(i)
        order = [j for j in order if classes[j] != classes[i] or iou[i, j] <= thr]
    return keep


@pytest.mark.parametrize("seed", range(6))
def test_nms_equals_sequential_greedy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    centers = rng.uniform(0, 200, (n, 2))
    sizes = rng.uniform(5, 60, (n, 2))
    xyxy = np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1).astype(np.float32)
    scores = rng.uniform(0, 1, n).astype(np.float32)
    classes = rng.integers(0, 3, n)
    kept = nms(
        torch.from_numpy(xyxy), torch.from_numpy(scores), torch.from_numpy(classes), 0.45
    ).tolist()
    assert kept == greedy_reference(xyxy, scores, classes, 0.45)
    assert len(kept) < n  # the scene is dense enough that suppression really happened


def test_nms_chain_where_fast_nms_would_overdrop() -> None:
    """B suppressed by A must not suppress C (Fast-NMS would drop C too)."""
    xyxy = torch.tensor([[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    classes = torch.zeros(3, dtype=torch.long)
    assert nms(xyxy, scores, classes, 0.3).tolist() == [0, 2]
    # different classes never suppress each other
    assert nms(xyxy, scores, torch.tensor([0, 1, 2]), 0.3).tolist() == [0, 1, 2]
    assert nms(xyxy[:0], scores[:0], classes[:0], 0.3).tolist() == []


def test_rle_matches_supervision_for_many_crops() -> None:
    rng = np.random.default_rng(1)
    crops = [rng.random((h, w)) > 0.5 for h, w in rng.integers(1, 12, (50, 2))]
    crops += [
        np.ones((3, 4), dtype=bool),
        np.zeros((2, 5), dtype=bool),
        np.ones((1, 1), dtype=bool),
        np.zeros((1, 1), dtype=bool),
        np.eye(4, dtype=bool),
    ]
    flat = np.concatenate([c.ravel(order="F") for c in crops])
    lengths = np.array([c.size for c in crops])
    runs = encode_runs(flat, lengths)
    assert len(runs) == len(crops)
    for got, crop in zip(runs, crops, strict=True):
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, _mask_to_rle_counts(crop))
    # and CompactMask decodes them back
    shapes = np.array([c.shape for c in crops], dtype=np.int32)
    cm = sv.CompactMask(runs, shapes, np.zeros((len(crops), 2), dtype=np.int32), (20, 20))
    for i, crop in enumerate(crops):
        np.testing.assert_array_equal(cm.crop(i), crop)


def test_rle_rejects_inconsistent_lengths() -> None:
    with pytest.raises(ValueError, match=r"adding up to flat\.size = 4"):
        encode_runs(np.zeros(4, dtype=bool), np.array([2, 1]))
    with pytest.raises(ValueError, match="min 0"):
        encode_runs(np.zeros(4, dtype=bool), np.array([4, 0]))
    assert encode_runs(np.zeros(0, dtype=bool), np.array([], dtype=int)) == []


def test_a_box_wholly_in_the_letterbox_padding_is_dropped() -> None:
    """Regression (differential audit against ultralytics): a box in the padding clipped to
    zero height and still came out, with a 1-pixel mask strip outside its own box."""
    from streamseg.models.decode import DecodeSettings, decode_batch
    from streamseg.models.preprocess import letterbox_geometry

    lb = letterbox_geometry((100, 400), (64, 64))  # content rows 24..39 of the input
    assert (lb.top, lb.new_hw) == (24, (16, 64))
    nm = 2
    # (cx, cy, w, h), one class score, two mask coefficients; anchors along the last axis.
    rows = [
        [32.0, 10.0, 40.0, 8.0, 0.9, 1.0, 0.0],  # rows 6..14: all padding
        [32.0, 32.0, 40.0, 8.0, 0.8, 1.0, 0.0],  # in the content
    ]
    output0 = torch.tensor(rows, dtype=torch.float32).T[None]
    output1 = torch.ones((1, nm, 16, 16), dtype=torch.float32)
    (found,) = decode_batch(output0, output1, [lb], ["thing"], DecodeSettings())
    assert len(found) == 1 and found.confidence.tolist() == pytest.approx([0.8])
    x1, y1, x2, y2 = found.xyxy[0].tolist()
    assert y2 > y1 and x2 > x1
    assert isinstance(found.mask, sv.CompactMask)
    dense = found.mask.to_dense()[0]
    rows_set = np.flatnonzero(dense.any(axis=1))
    assert rows_set.min() >= int(y1) and rows_set.max() < math.ceil(y2)

"""Evaluation: the decoder maps masks back through the letterbox; mAP of perfect / no output;
the per-class and per-size breakdown tells mask errors from detection errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamseg.synth import CLASS_NAMES
from streamseg.train.augment import letterbox_params
from streamseg.train.evaluate import DecodeConfig, decode_frame, evaluate_runtime, synth_eval_set
from streamseg.train.scoring import FrameDetections, ap50_breakdown, mask_map
from streamseg.train.sources import Sample


def _rect_sample() -> Sample:
    h, w = 90, 160
    m = np.zeros((h, w), bool)
    m[20:60, 40:80] = True
    m2 = np.zeros((h, w), bool)
    m2[50:80, 100:150] = True
    img = np.zeros((h, w, 3), np.uint8)
    return Sample(img, np.stack([m, m2]), np.array([0, 1], np.int64))


def _encode(sample: Sample, input_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Hand-made runtime outputs whose decode is the sample's objects (one prototype each)."""
    r, px, py = letterbox_params(sample.image.shape[:2], input_hw)
    ph, pw = input_hw[0] // 4, input_hw[1] // 4
    n = len(sample.class_ids)
    protos = torch.full((n, ph, pw), -10.0)
    rows = []
    for k, m in enumerate(sample.masks):
        ys, xs = np.nonzero(m)
        x1, y1, x2, y2 = (
            xs.min() * r + px,
            ys.min() * r + py,
            (xs.max() + 1) * r + px,
            (ys.max() + 1) * r + py,
        )
        # prototype k is on over the object's box (proto cells whose centre is inside it)
        cy = (torch.arange(ph) + 0.5) * 4
        cx = (torch.arange(pw) + 0.5) * 4
        on = ((cy >= y1) & (cy < y2))[:, None] & ((cx >= x1) & (cx < x2))[None, :]
        protos[k][on] = 10.0
        scores = [0.0, 0.0]
        scores[int(sample.class_ids[k])] = 0.9 - 0.1 * k
        coef = [0.0] * n
        coef[k] = 1.0
        rows.append([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, *scores, *coef])
    out0 = torch.tensor(rows, dtype=torch.float32).T  # [4 + nc + nm, A] with A = n
    return out0, protos


def test_decode_maps_masks_back_to_the_frame() -> None:
    s = _rect_sample()
    out0, protos = _encode(s, (64, 96))
    det = decode_frame(out0, protos, (90, 160), (64, 96), DecodeConfig())
    assert det.masks.shape == (2, 90, 160)
    assert list(det.class_ids) == [0, 1]
    for k in range(2):
        inter = (det.masks[k] & s.masks[k]).sum()
        union = (det.masks[k] | s.masks[k]).sum()
        # prototypes are at stride 4: edges may move by up to half a cell (~3 frame px here)
        assert inter / union > 0.75, (k, inter / union)
    np.testing.assert_allclose(det.xyxy[0], [40, 20, 80, 60], atol=1.0)


def test_map_of_perfect_and_of_no_detections() -> None:
    s = _rect_sample()
    perfect = FrameDetections(
        np.zeros((2, 4), np.float32), np.array([0.9, 0.8], np.float32), s.class_ids, s.masks
    )
    res = mask_map([s], [perfect], ["a", "b"])
    assert res["map50"] > 0.999 and res["map"] > 0.999
    shifted = FrameDetections(
        perfect.xyxy, perfect.scores, s.class_ids, np.roll(s.masks, 30, axis=2)
    )
    res = mask_map([s], [shifted], ["a", "b"])
    assert res["map50"] < 0.6
    none = FrameDetections(
        np.zeros((0, 4), np.float32),
        np.zeros(0, np.float32),
        np.zeros(0, np.int64),
        np.zeros((0, 90, 160), bool),
    )
    assert mask_map([s], [none], ["a", "b"]) == {"map50": 0.0, "map": 0.0}


def test_breakdown_separates_mask_errors_from_detection_errors() -> None:
    s = _rect_sample()  # class a: a 40x40 square (1600 px), class b: 30x50 (1500 px)
    boxes = np.array([[40, 20, 80, 60], [100, 50, 150, 80]], np.float32)
    # right boxes, but the class-a mask is moved off its object: a mask error, not a detection one
    masks = s.masks.copy()
    masks[0] = np.roll(masks[0], 30, axis=1)
    det = FrameDetections(boxes, np.array([0.9, 0.8], np.float32), s.class_ids, masks)
    rows = {r.label: r for r in ap50_breakdown([s], [det], ["a", "b", "c"])}
    assert set(rows) == {"a", "b", "400-1600 px", ">= 1600 px"}  # no row without ground truth
    assert rows["a"].box > 0.99 and rows["a"].mask < 0.01 and rows["a"].count == 1
    assert rows["b"].box > 0.99 and rows["b"].mask > 0.99
    assert rows[">= 1600 px"].mask < 0.01 and rows["400-1600 px"].mask > 0.99
    # a missed object is lost by both
    missed = FrameDetections(boxes[1:], det.scores[1:], s.class_ids[1:], masks[1:])
    rows = {r.label: r for r in ap50_breakdown([s], [missed], ["a", "b", "c"])}
    assert rows["a"].box < 0.01 and rows["a"].mask < 0.01


def test_a_model_is_scored_against_the_data_by_class_name() -> None:
    """Regression: ``--eval-weights`` scored by class id, so a model was judged against data
    whose classes have other names (or the same names in another order) as if they matched:
    the built-in model scored map50 1.0 on its own frames with the names reversed."""
    held_out = {kind: samples[:2] for kind, samples in synth_eval_set(2).items()}
    names = list(CLASS_NAMES)
    by_id = evaluate_runtime("builtin", held_out, names)
    # The same frames labelled with the names in reverse order (each sample's ids mapped so
    # that the objects keep their names): the scores do not move.
    reversed_names = names[::-1]
    relabelled = {
        kind: [s._replace(class_ids=len(names) - 1 - np.asarray(s.class_ids)) for s in samples]
        for kind, samples in held_out.items()
    }
    by_name = evaluate_runtime("builtin", relabelled, reversed_names)
    for key in ("yard/map50", "field/map50", "pitch/map50"):
        assert by_name[key] == pytest.approx(by_id[key]), key
    assert by_id["yard/map50"] > 0.5
    with pytest.raises(ValueError, match="share no name with the data's"):
        evaluate_runtime("builtin", held_out, ["kayak", "canoe", "raft", "oar", "dock", "buoy"])

"""Letterbox and augmentation: masks stay on their pixels, padding, mosaic, targets, copy-paste."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamseg.train.augment import (
    NO_AUGMENT,
    AugmentConfig,
    MaskTargetConfig,
    copy_paste_small,
    make_example,
    make_mosaic,
)
from streamseg.train.sources import Sample


def _coloured_sample() -> Sample:
    h, w = 90, 160
    img = np.full((h, w, 3), 40, np.uint8)
    m1 = np.zeros((h, w), bool)
    m1[20:50, 30:70] = True
    m2 = np.zeros((h, w), bool)
    cv2.circle(m2.view(np.uint8), (120, 60), 15, 1, -1)
    img[m1] = (0, 0, 255)
    img[m2] = (0, 255, 0)
    return Sample(img, np.stack([m1, m2]), np.array([0, 1], np.int64))


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_augmented_masks_stay_on_their_pixels(seed: int) -> None:
    """Regression guard: masks must move with the image under zoom, shift and flip."""
    cfg = AugmentConfig(
        hsv_h=0,
        hsv_s=0,
        hsv_v=0,
        flip=0.5,
        scale_min=0.6,
        scale_max=1.4,
        translate=0.15,
        linear_resize=0.5,
    )
    ex = make_example(_coloured_sample(), (64, 96), cfg, np.random.default_rng(seed))
    rgb = ex.image.permute(1, 2, 0).numpy()
    assert ex.masks.shape[1:] == (16, 24)
    for k in range(len(ex.labels)):
        x1, y1, x2, y2 = ex.boxes_xyxy[k].round().int().tolist()
        patch = rgb[y1:y2, x1:x2].reshape(-1, 3).astype(int)
        channel = 0 if int(ex.labels[k]) == 0 else 1  # red box / green disc, RGB order
        # most pixels inside the object's box are the object's colour
        frac = (patch[:, channel] > 150).mean()
        assert frac > 0.6, (seed, k, frac)
        # the area-downsampled mask has its mass inside the box
        m = ex.masks[k].float().numpy()
        ys, xs = np.nonzero(m > 0.5)
        assert len(xs) > 0
        assert xs.min() * 4 >= x1 - 4 and xs.max() * 4 <= x2 + 4
        assert ys.min() * 4 >= y1 - 4 and ys.max() * 4 <= y2 + 4


def test_letterbox_without_augmentation_pads_with_114() -> None:
    ex = make_example(_coloured_sample(), (64, 160), NO_AUGMENT, np.random.default_rng(0))
    # 160x90 -> scale 64/90 -> 114x64, padded left/right by 23 columns
    img = ex.image.numpy()
    assert np.all(img[:, :, :20] == 114) and np.all(img[:, :, -20:] == 114)
    assert len(ex.labels) == 2


def test_mosaic_places_objects_in_every_quadrant() -> None:
    s = _coloured_sample()
    ex = make_mosaic([s, s, s, s], (128, 192), NO_AUGMENT, np.random.default_rng(0))
    assert len(ex.labels) == 8
    cx = (ex.boxes_xyxy[:, 0] + ex.boxes_xyxy[:, 2]) / 2
    cy = (ex.boxes_xyxy[:, 1] + ex.boxes_xyxy[:, 3]) / 2
    quadrants = {(int(x >= 96), int(y >= 64)) for x, y in zip(cx, cy, strict=True)}
    assert quadrants == {(0, 0), (1, 0), (0, 1), (1, 1)}


def _decoded_iou(target: np.ndarray, gt: np.ndarray, box: list[float]) -> float:
    """IoU of what the runtime would draw from a perfect prediction of ``target``."""
    import torch
    import torch.nn.functional as F

    up = F.interpolate(torch.from_numpy(target)[None, None], size=gt.shape, mode="bilinear")
    ys = np.arange(gt.shape[0])[:, None] + 0.5
    xs = np.arange(gt.shape[1])[None, :] + 0.5
    crop = (xs >= box[0]) & (xs < box[2]) & (ys >= box[1]) & (ys < box[3])
    pred = (up[0, 0].numpy() > 0.5) & crop
    return float((pred & gt).sum() / (pred | gt).sum())


@pytest.mark.parametrize("width_px", [2, 3, 4, 5, 6])
def test_thin_objects_get_targets_that_decode_to_their_width(width_px: int) -> None:
    """Regression: coverage targets made distant persons and the ball decode too thin
    (mask IoU < 0.5 even for a perfect network) when they straddle prototype cells."""
    h, w = 64, 96
    worst = {"default": 1.0, "plain": 1.0}
    for x0 in range(40, 44):  # every phase against the 4-pixel prototype grid
        m = np.zeros((h, w), bool)
        m[20:50, x0 : x0 + width_px] = True
        sample = Sample(np.zeros((h, w, 3), np.uint8), m[None], np.array([0], np.int64))
        for name, cfg in (
            ("default", MaskTargetConfig()),
            ("plain", MaskTargetConfig(tiny_px=0, small_px=0)),
        ):
            ex = make_example(sample, (h, w), NO_AUGMENT, np.random.default_rng(0), targets=cfg)
            iou = _decoded_iou(ex.masks[0].float().numpy(), m, ex.boxes_xyxy[0].tolist())
            worst[name] = min(worst[name], iou)
    assert worst["default"] >= 0.6, worst
    if width_px <= 3:
        assert worst["plain"] < 0.5, worst  # what the targets fix


def test_copy_paste_adds_visible_disjoint_copies_of_small_instances() -> None:
    s = _coloured_sample()  # a 40x30 red box (class 0) and a radius-15 green disc (class 1)
    disc_frac = s.masks[1].sum() / s.masks[1].size
    out = copy_paste_small(s, np.random.default_rng(3), max_frac=disc_frac, max_copies=3)
    assert len(out.class_ids) > 2
    assert list(out.class_ids[:2]) == [0, 1] and set(out.class_ids[2:].tolist()) == {1}
    # masks stay disjoint, and every pasted copy shows the disc's colour
    assert out.masks.sum(0).max() == 1
    for m in out.masks[2:]:
        assert 0 < m.sum() <= s.masks[1].sum()  # a later copy may cover part of an earlier one
        assert np.all(out.image[m] == (0, 255, 0))
    assert out.masks[-1].sum() == s.masks[1].sum()  # the last one is whole
    assert not np.shares_memory(out.image, s.image)  # the source is untouched
    # nothing is small enough: the sample comes back as it was
    same = copy_paste_small(s, np.random.default_rng(3), max_frac=1e-4)
    assert same is s

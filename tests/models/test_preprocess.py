"""The on-device letterbox matches ultralytics' cv2 letterbox."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from streamseg.models.preprocess import Letterbox, letterbox_batch, letterbox_geometry

INPUT_HW = (64, 96)


def cv2_letterbox(image: np.ndarray, dst_hw: tuple[int, int]) -> np.ndarray:
    """Reference: ultralytics LetterBox(auto=False) with cv2, then BGR->RGB, CHW, /255."""
    h, w = image.shape[:2]
    r = min(dst_hw[0] / h, dst_hw[1] / w)
    new_w, new_h = round(w * r), round(h * r)
    dw, dh = (dst_hw[1] - new_w) / 2, (dst_hw[0] - new_h) / 2
    if (w, h) != (new_w, new_h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    image = cv2.copyMakeBorder(
        image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114)
    )
    assert image.shape[:2] == dst_hw
    return image[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255.0


@pytest.mark.parametrize(
    ("src_hw", "gain", "new_hw", "top", "left"),
    [
        ((120, 240), 0.4, (48, 96), 8, 0),
        ((64, 96), 1.0, (64, 96), 0, 0),
        ((150, 173), 64 / 150, (64, 74), 0, 11),
        ((32, 32), 2.0, (64, 64), 0, 16),  # upscaling
        ((101, 37), 64 / 101, (64, 23), 0, 36),  # dw = 36.5: round(36.4) = 36
        ((480, 640), 64 / 480, (64, 85), 0, 5),  # dw = 5.5: round(5.4) = 5
        ((97, 480), 0.2, (19, 96), 22, 0),  # dh = 22.5: top 22, bottom 23
    ],
)
def test_geometry_matches_ultralytics(
    src_hw: tuple[int, int], gain: float, new_hw: tuple[int, int], top: int, left: int
) -> None:
    lb = letterbox_geometry(src_hw, INPUT_HW)
    assert lb.gain == pytest.approx(gain)
    assert (lb.new_hw, lb.top, lb.left) == (new_hw, top, left)


@pytest.mark.parametrize(
    "src_hw", [(120, 240), (64, 96), (150, 173), (32, 32), (101, 37), (7, 300)]
)
def test_batch_matches_cv2_reference(src_hw: tuple[int, int]) -> None:
    rng = np.random.default_rng(src_hw[0] * 1000 + src_hw[1])
    image = rng.integers(0, 256, (*src_hw, 3), dtype=np.uint8)
    # a smooth gradient too, where interpolation differences would show as bias
    xx = np.broadcast_to(np.arange(src_hw[1]), src_hw)
    image[..., 0] = (xx * 255 // max(src_hw[1] - 1, 1)).astype(np.uint8)
    batch, (lb,) = letterbox_batch([image], INPUT_HW, device=torch.device("cpu"))
    assert batch.shape == (1, 3, *INPUT_HW) and batch.dtype == torch.float32
    got = batch[0].numpy()
    want = cv2_letterbox(image, INPUT_HW)
    new_h, new_w = lb.new_hw
    inside = np.zeros(INPUT_HW, dtype=bool)
    inside[lb.top : lb.top + new_h, lb.left : lb.left + new_w] = True
    # padding is exactly 114; cv2 rounds to uint8 with 11-bit fixed-point weights
    np.testing.assert_array_equal(got[:, ~inside], np.float32(114 / 255))
    assert np.abs(got - want).max() <= 1.01 / 255
    assert np.abs(got - want)[:, inside].mean() < 0.5 / 255


def test_mixed_sizes_in_one_batch_channels_last() -> None:
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
        for hw in [(120, 240), (150, 173), (120, 240), (64, 96)]
    ]
    batch, boxes = letterbox_batch(images, INPUT_HW, device=torch.device("cpu"), channels_last=True)
    assert batch.is_contiguous(memory_format=torch.channels_last)
    assert [b.src_hw for b in boxes] == [(120, 240), (150, 173), (120, 240), (64, 96)]
    for i, image in enumerate(images):
        assert np.abs(batch[i].numpy() - cv2_letterbox(image, INPUT_HW)).max() <= 1.01 / 255
    # frames 0 and 2 have the same size but different pixels
    assert not torch.equal(batch[0], batch[2])


@pytest.mark.parametrize("src_hw", [(101, 37), (359, 641), (333, 777), (97, 480), (7, 300)])
def test_the_resized_content_maps_back_onto_the_whole_frame(src_hw: tuple[int, int]) -> None:
    """Regression (differential audit against ultralytics 8.4's scale_boxes): boxes were mapped
    back with the one gain, but the resize scales each axis by new / src, which rounding makes
    differ: the content's far edge came back up to half an input pixel short of the frame's."""
    lb = letterbox_geometry(src_hw, INPUT_HW)
    (h, w), (new_h, new_w) = src_hw, lb.new_hw
    content = torch.tensor(
        [[lb.left, lb.top, lb.left + new_w, lb.top + new_h]], dtype=torch.float64
    )
    np.testing.assert_allclose(lb.to_frame(content).numpy(), [[0, 0, w, h]], atol=1e-9)
    middle = torch.tensor([[lb.left + new_w / 2, lb.top + new_h / 2] * 2], dtype=torch.float64)
    np.testing.assert_allclose(lb.to_frame(middle).numpy(), [[w / 2, h / 2] * 2], atol=1e-9)


def test_boxes_back_to_frame_pixels_and_clipped() -> None:
    lb = Letterbox(src_hw=(120, 240), dst_hw=INPUT_HW, gain=0.4, new_hw=(48, 96), top=8, left=0)
    xyxy = torch.tensor([[8.0, 12.0, 48.0, 32.0], [-4.0, 0.0, 100.0, 70.0]])
    np.testing.assert_allclose(
        lb.to_frame(xyxy).numpy(), [[20, 10, 120, 60], [0, 0, 240, 120]], atol=1e-4
    )

"""End to end: a TorchScript YOLO-seg export with a known output, decoded into frame pixels."""

from __future__ import annotations

import logging
import types
from pathlib import Path

import numpy as np
import pytest
import supervision as sv
import torch

from streamseg.models import ModelLoadError, Segmenter, load_segmenter

FRAME_HW = (120, 240)  # not the 64x96 input: gain 0.4, 8 rows of padding on top


def frame(hw: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A random BGR frame (the fake network ignores pixel values)."""
    return np.random.default_rng(seed).integers(0, 256, (*hw, 3), dtype=np.uint8)


def check_detections(
    det: sv.Detections, keys: tuple[str, ...], hw: tuple[int, int], fake: types.ModuleType
) -> None:
    """Assert ``det`` holds exactly the planted ``keys``, in order, for a frame of ``hw``."""
    assert len(det) == len(keys)
    assert det.xyxy.dtype == np.float32 and det.xyxy.shape == (len(keys), 4)
    assert det.confidence is not None and det.confidence.dtype == np.float32
    assert det.class_id is not None
    expected_boxes = np.array([fake.frame_box(k, hw) for k in keys]).reshape(-1, 4)
    np.testing.assert_allclose(det.xyxy, expected_boxes, atol=1e-3)
    np.testing.assert_allclose(det.confidence, [fake.BY_KEY[k].score for k in keys], atol=1e-6)
    assert det.class_id.tolist() == [fake.BY_KEY[k].class_id for k in keys]
    assert det["class_name"].tolist() == [fake.NAMES[fake.BY_KEY[k].class_id] for k in keys]
    assert isinstance(det.mask, sv.CompactMask)
    assert det.mask.image_shape == hw
    dense = det.mask.to_dense()
    for i, key in enumerate(keys):
        expected = fake.reference_mask(key, hw)
        assert expected.sum() > 0, key
        assert fake.mask_iou(dense[i], expected) > 0.9, key
        # nothing outside the box
        x1, y1, x2, y2 = det.xyxy[i]
        outside = dense[i].copy()
        outside[int(np.floor(y1)) : int(np.ceil(y2)), int(np.floor(x1)) : int(np.ceil(x2))] = False
        assert not outside.any(), key


def test_decodes_known_outputs_into_frame_pixels(
    torchscript_path: Path, fake: types.ModuleType
) -> None:
    seg = load_segmenter(fake.make_config(torchscript_path))
    assert isinstance(seg, Segmenter)
    assert seg.info.class_names == ["person", "car", "dog"]
    assert seg.info.input_hw == (64, 96)
    assert seg.info.proto_hw == (16, 24)
    assert (seg.info.num_masks, seg.info.num_anchors) == (4, 40)
    assert (seg.info.format, seg.info.device, seg.info.precision) == ("torchscript", "cpu", "fp32")

    (det,) = seg.segment([frame(FRAME_HW)])

    # hand-computed from the table in conftest: x / 0.4, (y - 8) / 0.4, D clipped to the frame
    np.testing.assert_allclose(
        det.xyxy,
        [[20, 10, 120, 60], [30, 15, 120, 60], [150, 70, 230, 110], [190, 100, 240, 120]],
        atol=1e-3,
    )
    assert det["class_name"].tolist() == ["person", "car", "dog", "dog"]
    np.testing.assert_allclose(det.confidence, [0.9, 0.7, 0.5, 0.3], atol=1e-6)
    check_detections(det, fake.EXPECTED_ORDER, FRAME_HW, fake)

    # the rectangles land exactly on the pixels planted (cells are 10 frame px here); only the
    # corners are rounded off by the bilinear upsampling, as in ultralytics
    dense = det.mask.to_dense()
    for row, (y0, y1, x0, x1) in [
        (1, (30, 60, 50, 100)),
        (2, (80, 100, 160, 220)),
        (3, (110, 120, 200, 240)),
    ]:
        expected = np.zeros(FRAME_HW, dtype=bool)
        expected[y0:y1, x0:x1] = True
        near_corner = np.zeros(FRAME_HW, dtype=bool)
        for cy in (y0, y1):
            for cx in (x0, x1):
                near_corner[max(cy - 5, 0) : cy + 5, max(cx - 5, 0) : cx + 5] = True
        wrong = dense[row] != expected
        assert not (wrong & ~near_corner).any(), row
        assert wrong.sum() <= 4 * 10, row
    # the L shape of A
    assert dense[0][25, 35] and dense[0][55, 105] and not dense[0][25, 105]
    # crops are the boxes, not the frame
    assert det.mask.crop(0).shape == (50, 100)
    assert det.mask.offsets.tolist()[0] == [20, 10]


def test_nms_removes_same_class_duplicate_and_keeps_other_class(
    torchscript_path: Path, fake: types.ModuleType
) -> None:
    seg = load_segmenter(fake.make_config(torchscript_path, iou=0.45))
    (det,) = seg.segment([frame(FRAME_HW)])
    # A2 (person, IoU 0.9 with A) is gone; B (car, IoU 0.81 with A) stays
    assert 0.8 not in det.confidence.round(6).tolist()
    assert det["class_name"].tolist()[:2] == ["person", "car"]
    # with a threshold above A/A2's IoU, the duplicate survives
    loose = load_segmenter(fake.make_config(torchscript_path, iou=0.95))
    (det_loose,) = loose.segment([frame(FRAME_HW)])
    np.testing.assert_allclose(det_loose.confidence, [0.9, 0.8, 0.7, 0.5, 0.3], atol=1e-6)


@pytest.mark.parametrize(
    ("overrides", "keys"),
    [
        ({}, ("A", "B", "C", "D")),
        ({"confidence": 0.35}, ("A", "B", "C")),
        ({"confidence": 0.75}, ("A",)),
        ({"classes": ["car", "dog"]}, ("B", "C", "D")),
        ({"classes": ["dog"], "confidence": 0.4}, ("C",)),
        ({"max_detections": 2}, ("A", "B")),
        ({"class_names": ["a", "b", "c"], "classes": ["c"]}, ("C", "D")),
    ],
)
def test_thresholds_filters_and_caps(
    torchscript_path: Path,
    fake: types.ModuleType,
    overrides: dict[str, object],
    keys: tuple[str, ...],
) -> None:
    seg = load_segmenter(fake.make_config(torchscript_path, **overrides))
    (det,) = seg.segment([frame(FRAME_HW)])
    if "class_names" in overrides:
        assert det["class_name"].tolist() == ["c"] * len(keys)
        assert det.class_id.tolist() == [2] * len(keys)
        return
    check_detections(det, keys, FRAME_HW, fake)


def test_low_confidence_lets_noise_through(torchscript_path: Path, fake: types.ModuleType) -> None:
    """The noise anchors (scores < 0.19) are really decoded when the threshold allows them."""
    seg = load_segmenter(fake.make_config(torchscript_path, confidence=0.1))
    (det,) = seg.segment([frame(FRAME_HW)])
    assert len(det) > 4
    assert (det.confidence > 0.1).all()
    assert (np.diff(det.confidence) <= 0).all()
    assert (det.xyxy[:, [0, 2]] >= 0).all() and (det.xyxy[:, [0, 2]] <= FRAME_HW[1]).all()
    assert (det.xyxy[:, [1, 3]] >= 0).all() and (det.xyxy[:, [1, 3]] <= FRAME_HW[0]).all()
    assert len(det.mask) == len(det)


def test_batch_of_frames_of_different_sizes(torchscript_path: Path, fake: types.ModuleType) -> None:
    seg = load_segmenter(fake.make_config(torchscript_path, batch_size=2))
    sizes = [(120, 240), (64, 96), (150, 173)]
    results = seg.segment([frame(hw, seed=i) for i, hw in enumerate(sizes)])
    assert len(results) == 3
    for det, hw in zip(results, sizes, strict=True):
        check_detections(det, fake.EXPECTED_ORDER, hw, fake)
    # 64x96 is the input size: boxes come back as planted
    np.testing.assert_allclose(results[1].xyxy[0], fake.BY_KEY["A"].xyxy, atol=1e-4)
    # same answers one at a time (and through a batch of 3 in one forward)
    single = seg.segment([frame(sizes[2], seed=2)])[0]
    np.testing.assert_array_equal(single.xyxy, results[2].xyxy)
    np.testing.assert_array_equal(single.mask.to_dense(), results[2].mask.to_dense())


def test_empty_frame_keeps_every_field(torchscript_path: Path, fake: types.ModuleType) -> None:
    seg = load_segmenter(fake.make_config(torchscript_path, confidence=0.95))
    (det,) = seg.segment([frame(FRAME_HW)])
    assert len(det) == 0
    assert det.xyxy.shape == (0, 4) and det.xyxy.dtype == np.float32
    assert det.confidence.shape == (0,) and det.class_id.shape == (0,)
    assert det["class_name"].shape == (0,)
    assert isinstance(det.mask, sv.CompactMask) and det.mask.shape == (0, *FRAME_HW)
    assert seg.segment([]) == []


def test_masks_off_gives_none(torchscript_path: Path, fake: types.ModuleType) -> None:
    seg = load_segmenter(fake.make_config(torchscript_path), masks=False)
    (det,) = seg.segment([frame(FRAME_HW)])
    assert len(det) == 4 and det.mask is None


def test_bf16_autocast_on_cpu(torchscript_path: Path, fake: types.ModuleType) -> None:
    seg = load_segmenter(fake.make_config(torchscript_path, precision="bf16"))
    assert seg.info.precision == "bf16"
    (det,) = seg.segment([frame(FRAME_HW)])
    check_detections(det, fake.EXPECTED_ORDER, FRAME_HW, fake)


def test_fp16_on_cpu_falls_back_to_fp32(
    torchscript_path: Path, fake: types.ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="streamseg.models"):
        seg = load_segmenter(fake.make_config(torchscript_path, precision="fp16"))
    assert seg.info.precision == "fp32"
    assert "fp16 needs CUDA" in caplog.text


def test_threads_setting_applies(
    torchscript_path: Path, fake: types.ModuleType, keep_torch_threads: None
) -> None:
    load_segmenter(fake.make_config(torchscript_path, threads=1))
    assert torch.get_num_threads() == 1


def test_unset_threads_leave_cpus_to_the_decoders(
    torchscript_path: Path,
    fake: types.ModuleType,
    keep_torch_threads: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regression: a forward on every core beside the readers ran the pipeline at 0.59x."""
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: set(range(6)))
    load_segmenter(fake.make_config(torchscript_path))
    assert torch.get_num_threads() == 3
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0})
    load_segmenter(fake.make_config(torchscript_path))
    assert torch.get_num_threads() == 1


def test_file_without_names_gets_numbered_classes(tmp_path: Path, fake: types.ModuleType) -> None:
    path = fake.save_torchscript(
        tmp_path / "nameless.torchscript",
        fake.FakeYoloSeg(*fake.build_outputs()),
        fake.ultralytics_metadata(names=None),
    )
    seg = load_segmenter(fake.make_config(path))
    assert seg.info.class_names == ["class_0", "class_1", "class_2"]
    (det,) = seg.segment([frame(FRAME_HW)])
    assert det["class_name"].tolist() == ["class_0", "class_1", "class_2", "class_2"]


def test_rejects_images_that_are_not_bgr_uint8(
    torchscript_path: Path, fake: types.ModuleType
) -> None:
    seg = load_segmenter(fake.make_config(torchscript_path))
    with pytest.raises(
        ValueError,
        match=r"images\[1\]: expected an \(h, w, 3\) uint8 BGR array, "
        r"got uint8 array of shape \(120, 240\)",
    ):
        seg.segment([frame(FRAME_HW), np.zeros((120, 240), dtype=np.uint8)])
    with pytest.raises(ValueError, match="got float32 array"):
        seg.segment([frame(FRAME_HW).astype(np.float32)])


def test_unknown_class_filter_lists_valid_names(
    torchscript_path: Path, fake: types.ModuleType
) -> None:
    with pytest.raises(
        ModelLoadError, match=r"\['horse'\].*valid names: \['person', 'car', 'dog'\]"
    ):
        load_segmenter(fake.make_config(torchscript_path, classes=["horse", "dog"]))

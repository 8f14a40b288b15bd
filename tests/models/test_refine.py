"""Mask refinement on the frame's pixels (streamseg.models.refine) and its place in the runtime."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
import supervision as sv
from helpers import fake_yolo_seg as fake

from streamseg.config import ConfigError, load_pipeline_text
from streamseg.config.model import MaskRefineConfig, ModelConfig
from streamseg.models import load_segmenter
from streamseg.models.refine import guided_filter, refine_detections, refine_masks
from streamseg.models.segmenter import MaskRefine

H, W = 96, 160


def _reference_guided_filter(
    guide: npt.NDArray[np.float64], source: npt.NDArray[np.float64], radius: int, eps: float
) -> npt.NDArray[np.float64]:
    """He et al.'s colour guided filter written out per window, in float64 (slow, obvious)."""
    h, w = source.shape
    pad_g = np.pad(guide, ((radius, radius), (radius, radius), (0, 0)), mode="symmetric")
    pad_s = np.pad(source, radius, mode="symmetric")
    a = np.zeros((h, w, 3))
    b = np.zeros((h, w))
    size = 2 * radius + 1
    for y in range(h):
        for x in range(w):
            window = pad_g[y : y + size, x : x + size].reshape(-1, 3)
            values = pad_s[y : y + size, x : x + size].reshape(-1)
            mean_i, mean_p = window.mean(axis=0), values.mean()
            cov = (window - mean_i).T @ (window - mean_i) / len(values)
            cov_ip = (window * values[:, None]).mean(axis=0) - mean_i * mean_p
            a[y, x] = np.linalg.solve(cov + eps * np.eye(3), cov_ip)
            b[y, x] = mean_p - a[y, x] @ mean_i
    pad_a = np.pad(a, ((radius, radius), (radius, radius), (0, 0)), mode="symmetric")
    pad_b = np.pad(b, radius, mode="symmetric")
    out = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            mean_a = pad_a[y : y + size, x : x + size].reshape(-1, 3).mean(axis=0)
            out[y, x] = mean_a @ guide[y, x] + pad_b[y : y + size, x : x + size].mean()
    return out


def test_guided_filter_matches_the_written_out_definition() -> None:
    rng = np.random.default_rng(3)
    guide = rng.random((14, 17, 3))
    source = (rng.random((14, 17)) > 0.6).astype(np.float64)
    ours = guided_filter(guide.astype(np.float32), source.astype(np.float32), 2, 1e-3)
    np.testing.assert_allclose(ours, _reference_guided_filter(guide, source, 2, 1e-3), atol=2e-3)


def _scene() -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """A white sheep-like shape (body and legs) on textured green grass, and its true mask."""
    rng = np.random.default_rng(0)
    image = np.zeros((H, W, 3), dtype=np.uint8)
    image[:] = (40, 140, 60)  # BGR grass
    image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
    truth = np.zeros((H, W), dtype=np.uint8)
    cv2.ellipse(truth, (80, 45), (26, 12), 0, 0, 360, 1, -1)
    for x in (60, 70, 88, 98):
        cv2.rectangle(truth, (x, 50), (x + 6, 70), 1, -1)
    image[truth > 0] = (235, 235, 230)
    return image, truth.astype(bool)


def _coarse(truth: npt.NDArray[np.bool_], stride: int = 4) -> npt.NDArray[np.bool_]:
    """The mask as a stride-4 prototype grid sees it: averaged per cell, upsampled bilinearly."""
    small = cv2.resize(
        truth.astype(np.float32), (W // stride, H // stride), interpolation=cv2.INTER_AREA
    )
    return cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR) > 0.5


def _iou(a: npt.NDArray[np.bool_], b: npt.NDArray[np.bool_]) -> float:
    return float((a & b).sum() / (a | b).sum())


def _compact(masks: npt.NDArray[np.bool_], xyxy: npt.NDArray[np.float64]) -> sv.CompactMask:
    return sv.CompactMask.from_dense(masks, xyxy, (H, W))


def test_refinement_snaps_a_coarse_mask_to_the_object() -> None:
    image, truth = _scene()
    coarse = _coarse(truth)
    box = np.array([[54.0, 33.0, 106.0, 70.0]])
    refined = refine_masks(image, _compact(coarse[None], box), radius=4, eps=1e-3).to_dense()[0]
    wrong_before, wrong_after = int((coarse ^ truth).sum()), int((refined ^ truth).sum())
    assert wrong_after < 0.7 * wrong_before, (wrong_before, wrong_after)
    assert _iou(refined, truth) > _iou(coarse, truth) + 0.02


def test_refinement_keeps_a_mask_it_would_empty() -> None:
    """A speck on a flat background would be smoothed away; the detection keeps its pixels."""
    image = np.full((H, W, 3), 128, dtype=np.uint8)
    speck = np.zeros((1, H, W), dtype=bool)
    speck[0, 40, 50] = True
    out = refine_masks(image, _compact(speck, np.array([[50.0, 40, 50, 40]])), 4, 1e-3)
    np.testing.assert_array_equal(out.to_dense(), speck)


def test_masks_refined_together_equal_masks_refined_one_at_a_time() -> None:
    """The crops share one canvas; none may leak into another, however close they lie and
    whatever their sizes."""
    image, truth = _scene()
    boxes = [
        (54, 33, 106, 70),
        (110, 30, 139, 59),
        (5, 5, 18, 26),
        (20, 60, 41, 71),
        (140, 70, 153, 93),
    ]
    masks = np.zeros((len(boxes), H, W), dtype=bool)
    masks[0] = _coarse(truth)
    for k, (x1, y1, x2, y2) in enumerate(boxes[1:], start=1):
        image[y1 + 2 : y2 - 1, x1 + 1 : x2 - 2] = (20 + 40 * k, 20, 200 - 30 * k)
        masks[k, y1:y2, x1 : x2 - 1] = True  # coarse: a little wider than the painted patch
    xyxy = np.array(boxes, dtype=np.float64)
    for subsample in (1, 2, 3):
        together = refine_masks(image, _compact(masks, xyxy), 2, 1e-3, subsample).to_dense()
        for k in range(len(boxes)):
            alone = refine_masks(
                image, _compact(masks[k : k + 1], xyxy[k : k + 1]), 2, 1e-3, subsample
            )
            np.testing.assert_array_equal(
                together[k], alone.to_dense()[0], err_msg=f"{subsample} {k}"
            )


def test_refine_detections_changes_only_the_masks_and_returns_a_fresh_object() -> None:
    image, truth = _scene()
    xyxy = np.array([[54.0, 33, 106, 70], [5.0, 5, 20, 20]])
    masks = np.stack([_coarse(truth), np.zeros((H, W), bool)])
    masks[1, 8:15, 8:15] = True
    dets = sv.Detections(
        xyxy=xyxy,
        mask=masks,  # dense masks are accepted too
        confidence=np.array([0.9, 0.3]),
        class_id=np.array([1, 0]),
        data={"class_name": np.array(["sheep", "cow"])},
    )
    out = refine_detections(image, dets, 4, 1e-3)
    assert out is not dets
    assert isinstance(out.mask, sv.CompactMask) and len(out.mask) == 2
    np.testing.assert_array_equal(out.xyxy, xyxy)
    np.testing.assert_array_equal(out.confidence, dets.confidence)
    np.testing.assert_array_equal(out.class_id, dets.class_id)
    assert list(out.data["class_name"]) == ["sheep", "cow"]
    assert _iou(out.mask.to_dense()[0], truth) > _iou(masks[0], truth)
    assert dets.mask is masks  # the caller's object is untouched

    no_masks = sv.Detections(xyxy=xyxy)
    copied = refine_detections(image, no_masks, 4, 1e-3)
    assert copied is not no_masks and copied.mask is None and len(copied) == 2
    assert len(refine_detections(image, sv.Detections.empty(), 4, 1e-3)) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image": np.zeros((H, W), np.uint8)}, "image: expected"),
        ({"image": np.zeros((H, W + 1, 3), np.uint8)}, "image: expected"),
        ({"image": np.zeros((H, W, 3), np.float32)}, "image: expected"),
        ({"radius": 0}, "radius: expected >= 1"),
        ({"eps": 0.0}, "eps: expected > 0"),
        ({"subsample": 0}, "subsample: expected >= 1"),
    ],
)
def test_refine_masks_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "image": np.zeros((H, W, 3), np.uint8),
        "radius": 4,
        "eps": 1e-3,
        "subsample": 1,
    }
    args.update(kwargs)
    mask = _compact(np.ones((1, H, W), bool), np.array([[0.0, 0, W - 1, H - 1]]))
    with pytest.raises(ValueError, match=message):
        refine_masks(
            args["image"],  # type: ignore[arg-type]
            mask,
            args["radius"],  # type: ignore[arg-type]
            args["eps"],  # type: ignore[arg-type]
            args["subsample"],  # type: ignore[arg-type]
        )


def test_pipeline_yaml_turns_refinement_off_and_checks_its_values() -> None:
    base = "sources: [{id: cam, type: file, path: a.mp4}]\n"
    assert load_pipeline_text(base).model.mask_refine == MaskRefineConfig()
    off = load_pipeline_text(base + "model: {mask_refine: {enabled: false}}\n")
    assert off.model.mask_refine.enabled is False
    with pytest.raises(ConfigError, match="radius"):
        load_pipeline_text(base + "model: {mask_refine: {radius: 0}}\n")
    with pytest.raises(ConfigError, match="strength"):
        load_pipeline_text(base + "model: {mask_refine: {strength: 2}}\n")


def test_segmenter_refines_with_a_radius_scaled_to_the_frame(
    torchscript_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``radius`` is in model input pixels: a frame twice the input's size gets twice the window."""
    import streamseg.models.segmenter as segmenter_module

    seen: list[tuple[int, int]] = []

    def spy(
        image: object, dets: sv.Detections, radius: int, eps: float, subsample: int
    ) -> sv.Detections:
        seen.append((radius, subsample))
        return refine_detections(image, dets, radius, eps, subsample)  # type: ignore[arg-type]

    monkeypatch.setattr(segmenter_module, "refine_detections", spy)
    on = load_segmenter(fake.make_config(torchscript_path, mask_refine={"radius": 3}))
    assert on.refine == MaskRefine(3, 0.001)
    off = load_segmenter(fake.make_config(torchscript_path))
    assert off.refine is None
    in_h, in_w = on.info.input_hw
    frames = [np.zeros((in_h, in_w, 3), np.uint8), np.zeros((2 * in_h, 2 * in_w, 3), np.uint8)]
    refined = on.segment(frames)
    # Fitted at half the input's resolution: shrunk 2 and 4 times, a window of 1.5 fit pixels.
    assert seen == [(2, 2), (2, 4)]
    plain = off.segment(frames)
    assert [len(d) for d in refined] == [len(d) for d in plain]
    np.testing.assert_array_equal(refined[0].xyxy, plain[0].xyxy)
    assert (
        load_segmenter(fake.make_config(torchscript_path, mask_refine={}), masks=False).refine
        is None
    )


@pytest.mark.parametrize(
    ("gain", "expected"),
    [
        (1.0, (2, 2)),  # the input's size: fitted at half of it, with half the window
        (352 / 360, (2, 2)),  # 640x360 into 640x352
        (384 / 360, (2, 2)),  # 640x360 into 704x384: still shrunk twice (1.875, rounded)
        (416 / 360, (2, 2)),  # 640x360 into 736x416 (1.73)
        (352 / 1080, (2, 6)),  # 1920x1080: fitted on a sixth of the pixels each way
        (352 / 720, (2, 4)),  # 1280x720
        (2.0, (2, 1)),  # a frame half the input's size: fitted at its own resolution
        (8.0, (1, 1)),
    ],
)
def test_the_window_follows_the_frame_size(gain: float, expected: tuple[int, int]) -> None:
    assert MaskRefine(4, 0.001).for_frame(gain) == expected


def test_the_fast_filter_on_a_twice_larger_frame_agrees_with_the_full_one() -> None:
    image, truth = _scene()
    big = cv2.resize(image, (2 * W, 2 * H), interpolation=cv2.INTER_LINEAR)
    coarse = _coarse(truth).repeat(2, 0).repeat(2, 1)
    truth_big = truth.repeat(2, 0).repeat(2, 1)
    mask = sv.CompactMask.from_dense(
        coarse[None], np.array([[100.0, 60, 216, 146]]), (2 * H, 2 * W)
    )
    full = refine_masks(big, mask, 8, 1e-3).to_dense()[0]
    fast = refine_masks(big, mask, 4, 1e-3, subsample=2).to_dense()[0]
    assert _iou(fast, full) > 0.9
    assert _iou(fast, truth_big) > _iou(coarse, truth_big) + 0.02


def test_model_config_defaults_to_refinement() -> None:
    assert ModelConfig().mask_refine.enabled is True

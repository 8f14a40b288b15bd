"""Held-out evaluation of a network in the runtime layout: the sets, the predictions, the mAP.

Predictions are scored by :mod:`streamseg.train.scoring` (pycocotools ``COCOeval``).

Seeds (training vs held-out, disjoint by construction):

* training sample ``k`` of a run with seed ``s`` draws everything from
  ``numpy.random.default_rng([TRAIN_SEED_STREAM, s, k])`` (``TRAIN_SEED_STREAM`` = 0); its
  synthetic frame is either a ``random_training_frame`` over ``streamseg.synth``'s background
  pool or a frame of the fresh scene ``SceneRenderer(seed=TRAIN_SCENE_SEED_BASE + k // 32)``
  (``TRAIN_SCENE_SEED_BASE`` = 1e9);
* held-out frame ``j`` of each scene kind is a frame of ``SceneRenderer(kind,
  seed=EVAL_SCENE_SEED_BASE + j)`` (``EVAL_SCENE_SEED_BASE`` = 1e12): a layout, background,
  set of objects and motion no training sample has; held-out samples of a non-synthetic source
  use ``[EVAL_SEED_STREAM, 0, j]`` (``EVAL_SEED_STREAM`` = 1).

Evaluation frames are rendered at a camera-like resolution (default 640x360) and letterboxed
into the input like the runtime does; masks are scored at frame resolution.

The decoder here is deliberately simple (per-class greedy NMS, coefficient x prototype,
box crop, bilinear resize); it scores the network, not the runtime's decoder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from streamseg.train.augment import NO_AUGMENT, letterbox_params, make_example
from streamseg.train.data import EVAL_SEED_STREAM
from streamseg.train.scoring import FrameDetections, mask_map
from streamseg.train.sources import (
    EVAL_SCENE_SEED_BASE,
    Sample,
    SampleSource,
    synth_frame_to_sample,
)

logger = logging.getLogger(__name__)

#: A forward in the runtime layout: [B, 3, H, W] RGB 0..1 -> (output0, output1).
RuntimeForward = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
#: Named groups of evaluation samples (e.g. one per scene kind).
EvalSet = Mapping[str, Sequence[Sample]]


@dataclass(frozen=True)
class DecodeConfig:
    """Evaluation decode thresholds (low confidence, as usual for mAP)."""

    confidence: float = 0.01
    iou: float = 0.6
    max_detections: int = 100
    mask_threshold: float = 0.5


def greedy_nms(xyxy: torch.Tensor, scores: torch.Tensor, iou: float) -> torch.Tensor:
    """Indices kept by greedy NMS, highest score first (one class).

    Args:
        xyxy: (N, 4) boxes.
        scores: (N,) scores.
        iou: suppression threshold.

    Returns:
        (K,) int64 indices into the inputs.
    """
    order = scores.argsort(descending=True)
    boxes = xyxy[order]
    area = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    lt = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    ious = inter / (area[:, None] + area[None, :] - inter + 1e-7)
    keep = torch.ones(len(order), dtype=torch.bool)
    for i in range(len(order)):
        if keep[i]:
            keep[i + 1 :] &= ious[i, i + 1 :] <= iou
    return order[keep]


def decode_frame(
    out0: torch.Tensor,
    protos: torch.Tensor,
    src_hw: tuple[int, int],
    input_hw: tuple[int, int],
    cfg: DecodeConfig,
) -> FrameDetections:
    """Decode one image's runtime outputs into frame-pixel detections.

    Args:
        out0: [4 + nc + nm, A] (cx, cy, w, h input pixels; sigmoid scores; coefficients).
        protos: [nm, H/4, W/4].
        src_hw: (h, w) of the frame that was letterboxed into the input.
        input_hw: (H, W) network input.
        cfg: thresholds.

    Returns:
        Detections with full-frame boolean masks.
    """
    nm = protos.shape[0]
    nc = out0.shape[0] - 4 - nm
    pred = out0.float().T  # [A, C]
    scores, cls = pred[:, 4 : 4 + nc].max(1)
    sel = scores > cfg.confidence
    pred, scores, cls = pred[sel], scores[sel], cls[sel]
    if len(scores) > 3000:
        top = scores.topk(3000).indices
        pred, scores, cls = pred[top], scores[top], cls[top]
    xy, wh = pred[:, :2], pred[:, 2:4]
    boxes = torch.cat((xy - wh / 2, xy + wh / 2), 1)
    keep_all = []
    for c in cls.unique():
        idx = (cls == c).nonzero().view(-1)
        keep_all.append(idx[greedy_nms(boxes[idx], scores[idx], cfg.iou)])
    h, w = src_hw
    if not keep_all:
        return FrameDetections(
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros(0, np.int64),
            np.zeros((0, h, w), bool),
        )
    keep = torch.cat(keep_all)
    keep = keep[scores[keep].argsort(descending=True)][: cfg.max_detections]
    boxes, scores, cls, coef = boxes[keep], scores[keep], cls[keep], pred[keep, 4 + nc :]

    r, px, py = letterbox_params(src_hw, input_hw)
    ph, pw = protos.shape[1:]
    masks = (coef @ protos.float().view(nm, -1)).view(-1, ph, pw).sigmoid()
    # Sample the prototype grid at frame pixel centres through the letterbox.
    fx = ((torch.arange(w, dtype=torch.float32) + 0.5) * r + px) / input_hw[1] * 2 - 1
    fy = ((torch.arange(h, dtype=torch.float32) + 0.5) * r + py) / input_hw[0] * 2 - 1
    gy, gx = torch.meshgrid(fy, fx, indexing="ij")
    grid = torch.stack((gx, gy), -1).unsqueeze(0).expand(len(masks), -1, -1, -1)
    full = F.grid_sample(masks.unsqueeze(1), grid, mode="bilinear", align_corners=False)
    frame_boxes = (boxes - torch.tensor([px, py, px, py])) / r
    # Crop to the box at frame resolution (pixel centres inside the box).
    fys = torch.arange(h, dtype=torch.float32).view(1, -1, 1) + 0.5
    fxs = torch.arange(w, dtype=torch.float32).view(1, 1, -1) + 0.5
    fb = frame_boxes
    inside = (
        (fxs >= fb[:, 0, None, None])
        & (fxs < fb[:, 2, None, None])
        & (fys >= fb[:, 1, None, None])
        & (fys < fb[:, 3, None, None])
    )
    full_masks = ((full[:, 0] > cfg.mask_threshold) & inside).numpy()
    return FrameDetections(
        frame_boxes.numpy().astype(np.float32),
        scores.numpy().astype(np.float32),
        cls.numpy().astype(np.int64),
        full_masks,
    )


def predict_samples(
    forward: RuntimeForward,
    samples: Sequence[Sample],
    input_hw: tuple[int, int],
    cfg: DecodeConfig,
    batch: int = 8,
) -> list[FrameDetections]:
    """Letterbox, run and decode a list of samples (no augmentation)."""
    out: list[FrameDetections] = []
    rng = np.random.default_rng(0)  # unused by NO_AUGMENT, required by the signature
    for i in range(0, len(samples), batch):
        chunk = samples[i : i + batch]
        images = torch.stack([make_example(s, input_hw, NO_AUGMENT, rng).image for s in chunk])
        x = (images.float() / 255.0).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            out0, out1 = forward(x)
        for j, s in enumerate(chunk):
            src_hw = (int(s.image.shape[0]), int(s.image.shape[1]))
            out.append(decode_frame(out0[j], out1[j], src_hw, input_hw, cfg))
    return out


def _group_scores(name: str, m: Mapping[str, float]) -> dict[str, float]:
    """``{name}/map50`` and ``{name}/map`` of one evaluation group."""
    return {f"{name}/map50": round(m["map50"], 4), f"{name}/map": round(m["map"], 4)}


def _with_summary(res: dict[str, float], seconds: float) -> dict[str, float]:
    """Add the mean and worst mAP@0.5 over groups and the evaluation time."""
    per = [v for k, v in res.items() if k.endswith("/map50")]
    res["map50"] = round(float(np.mean(per)), 4) if per else 0.0
    res["map50_min"] = round(float(np.min(per)), 4) if per else 0.0
    res["eval_s"] = round(seconds, 2)
    return res


def evaluate(
    forward: RuntimeForward,
    eval_set: EvalSet,
    input_hw: tuple[int, int],
    class_names: Sequence[str],
    cfg: DecodeConfig | None = None,
) -> dict[str, float]:
    """Mask mAP of ``forward`` on every group of ``eval_set``.

    Returns:
        ``{"<group>/map50": ..., "<group>/map": ..., "map50": mean over groups,
        "map50_min": worst group, "eval_s": seconds}``.
    """
    t0 = time.perf_counter()
    cfg = cfg or DecodeConfig()
    res: dict[str, float] = {}
    for name, samples in eval_set.items():
        dets = predict_samples(forward, samples, input_hw, cfg)
        res.update(_group_scores(name, mask_map(samples, dets, class_names)))
    return _with_summary(res, time.perf_counter() - t0)


def synth_eval_set(
    frames_per_kind: int, resolution_wh: tuple[int, int] = (640, 360)
) -> dict[str, list[Sample]]:
    """The fixed held-out synthetic set: ``frames_per_kind`` frames of each scene kind.

    Frame ``j`` of a kind is frame ``20 + (7 * j) % 60`` of the scene
    ``SceneRenderer(kind, seed=EVAL_SCENE_SEED_BASE + j, difficulty=easy if j is even else
    occlusion)``: unseen layouts and backgrounds, since training scenes use other seeds.

    Args:
        frames_per_kind: frames (one per scene) of each kind.
        resolution_wh: resolution to render at (letterboxed into the input at evaluation).

    Returns:
        ``{kind: samples}`` for every kind of ``streamseg.synth.SCENE_KINDS``.
    """
    from streamseg import synth

    out: dict[str, list[Sample]] = {}
    for kind in synth.SCENE_KINDS:
        frames = []
        for j in range(frames_per_kind):
            renderer = synth.SceneRenderer(
                kind,
                seed=EVAL_SCENE_SEED_BASE + j,
                resolution_wh=resolution_wh,
                difficulty=synth.DIFFICULTIES[j % len(synth.DIFFICULTIES)],
            )
            frames.append(synth_frame_to_sample(next(renderer.frames(1, start=20 + (7 * j) % 60))))
        out[kind] = frames
    return out


def source_eval_set(source: SampleSource, count: int, name: str = "val") -> dict[str, list[Sample]]:
    """An evaluation set of the first ``count`` samples of a source (e.g. a COCO val split)."""
    samples = [source.get(j, np.random.default_rng([EVAL_SEED_STREAM, 0, j])) for j in range(count)]
    return {name: samples}


def predict_runtime(
    weights: str,
    eval_set: EvalSet,
    cfg: DecodeConfig | None = None,
    batch: int = 8,
    mask_threshold: float | None = None,
    refine: bool = True,
    class_names: Sequence[str] | None = None,
) -> Iterator[tuple[str, list[FrameDetections]]]:
    """Run an exported file through the runtime (``streamseg.models``) on each group.

    This is what ships: the runtime's loader, letterbox, decoder and ``CompactMask`` output,
    rather than this module's decoder. Groups are yielded one at a time, so only one group's
    dense masks are held at once.

    Args:
        weights: ``"builtin"`` or a ``.torchscript`` / ``.onnx`` path.
        eval_set: held-out groups.
        cfg: confidence / IoU / max detections passed to the runtime.
        batch: frames per ``segment`` call.
        mask_threshold: the runtime's mask threshold; None uses the file's calibrated one, as a
            pipeline does (``cfg.mask_threshold`` is this module's own decoder's).
        refine: refine the masks on the frame as a pipeline does by default
            (``model.mask_refine``); False scores the decoded masks as they are.
        class_names: the data's classes; when the model's differ, its detections get the data's
            class ids by name (those of classes the data lacks are left out). ``None``: by id.

    Yields:
        ``(group name, one FrameDetections per sample)``, in the order of ``eval_set``.
    """
    from types import SimpleNamespace

    from streamseg.config.model import MaskRefineConfig
    from streamseg.models import load_segmenter

    cfg = cfg or DecodeConfig()
    settings = SimpleNamespace(
        weights=weights,
        format="auto",
        device="cpu",
        precision="fp32",
        confidence=cfg.confidence,
        iou=cfg.iou,
        max_detections=cfg.max_detections,
        mask_threshold=mask_threshold,
        classes=None,
        class_names=None,
        batch_size=batch,
        batch_timeout_ms=0.0,
        threads=None,
        mask_refine=MaskRefineConfig(enabled=refine),
    )
    segmenter = load_segmenter(settings)
    to_data = _class_map(list(segmenter.info.class_names), class_names)
    for name, samples in eval_set.items():
        dets: list[FrameDetections] = []
        for i in range(0, len(samples), batch):
            chunk = samples[i : i + batch]
            for s, d in zip(chunk, segmenter.segment([s.image for s in chunk]), strict=True):
                h, w = s.image.shape[:2]
                mask: Any = d.mask
                if mask is None or not len(d):
                    masks = np.zeros((0, h, w), bool)
                elif hasattr(mask, "to_dense"):  # supervision.CompactMask
                    masks = np.asarray(mask.to_dense(), dtype=bool)
                else:
                    masks = np.asarray(mask, dtype=bool)
                ids = np.asarray(d.class_id, np.int64)
                keep = np.ones(len(ids), bool)
                if to_data is not None:  # the data's ids; classes the data lacks are left out
                    ids = to_data[ids] if len(ids) else ids
                    keep = ids >= 0
                dets.append(
                    FrameDetections(
                        np.asarray(d.xyxy, np.float32)[keep],
                        np.asarray(d.confidence, np.float32)[keep],
                        ids[keep],
                        masks[keep],
                    )
                )
        yield name, dets


def _class_map(
    model_names: list[str], data_names: Sequence[str] | None
) -> npt.NDArray[np.int64] | None:
    """Model class id -> the data's class id of the same name (-1: the data has no such class),
    or ``None`` when the names are the same list (or the data's are not given).

    Raises:
        ValueError: the model and the data share no class name (scored by id, a model of other
            classes scored as if its first class were the data's first).
    """
    if data_names is None or list(data_names) == model_names:
        return None
    index = {name: i for i, name in enumerate(data_names)}
    mapping = np.array([index.get(name, -1) for name in model_names], np.int64)
    if not (mapping >= 0).any():
        raise ValueError(
            f"the model's classes {model_names} share no name with the data's "
            f"{list(data_names)}; nothing to score"
        )
    missing = [name for name in data_names if name not in model_names]
    logger.info(
        "scoring by class name: the model's %s against the data's %s%s",
        [n for n in model_names if n in index],
        list(data_names),
        f" (the model has no {missing}: their AP is 0)" if missing else "",
    )
    return mapping


def evaluate_runtime(
    weights: str,
    eval_set: EvalSet,
    class_names: Sequence[str],
    cfg: DecodeConfig | None = None,
    batch: int = 8,
    mask_threshold: float | None = None,
) -> dict[str, float]:
    """Mask mAP of an exported file run through the runtime (see :func:`predict_runtime`).

    Args:
        weights: ``"builtin"`` or a ``.torchscript`` / ``.onnx`` path.
        eval_set: held-out groups.
        class_names: the data's names by class id; the model's classes are matched to them by
            name.
        cfg: confidence / IoU / max detections passed to the runtime.
        batch: frames per ``segment`` call.
        mask_threshold: the runtime's mask threshold (None: the file's).

    Returns:
        The same keys as :func:`evaluate`.

    Raises:
        ValueError: the model's classes share no name with the data's.
    """
    t0 = time.perf_counter()
    res: dict[str, float] = {}
    for name, dets in predict_runtime(
        weights, eval_set, cfg, batch, mask_threshold, class_names=class_names
    ):
        res.update(_group_scores(name, mask_map(eval_set[name], dets, class_names)))
    return _with_summary(res, time.perf_counter() - t0)

"""Scoring detections against ground-truth instances with pycocotools ``COCOeval``.

:func:`mask_map` gives the mask mAP@0.5 and mAP@[.5:.95] that training and ``bench/model.py``
report; :func:`ap50_breakdown` splits AP@0.5 by class and by object size, for masks and for
boxes, so a run shows where a model loses its mAP. Ground truth is scored at frame resolution,
each object by its visible mask (its box is that mask's box).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from streamseg.train.data import Sample


@dataclass(frozen=True)
class FrameDetections:
    """Detections of one frame, frame pixels.

    Attributes:
        xyxy: (N, 4) float32.
        scores: (N,) float32.
        class_ids: (N,) int64.
        masks: (N, h, w) bool at frame resolution.
    """

    xyxy: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    class_ids: npt.NDArray[np.int64]
    masks: npt.NDArray[np.bool_]


def _rle(mask: npt.NDArray[np.bool_]) -> dict[str, object]:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return dict(rle)


#: Object-size bands of :func:`ap50_breakdown`, in visible-mask pixels at frame resolution.
AREA_BANDS: tuple[tuple[str, float, float], ...] = (
    ("< 100 px", 0.0, 100.0),
    ("100-400 px", 100.0, 400.0),
    ("400-1600 px", 400.0, 1600.0),
    (">= 1600 px", 1600.0, 1e10),
)


@dataclass(frozen=True)
class AP50Row:
    """One row of :func:`ap50_breakdown`.

    Attributes:
        label: a class name or an area band.
        mask: mask AP@0.5 (NaN when the row has no ground truth).
        box: box AP@0.5 of the same detections, against the objects' visible-mask boxes.
        count: ground-truth objects in the row.
    """

    label: str
    mask: float
    box: float
    count: int


def _coco_inputs(
    samples: Sequence[Sample],
    detections: Sequence[FrameDetections],
) -> tuple[list[dict[str, object]], list[dict[str, object]], list[dict[str, object]]]:
    """COCO images, ground-truth annotations and results (mask and box) of a detection run."""
    images: list[dict[str, object]] = []
    anns: list[dict[str, object]] = []
    results: list[dict[str, object]] = []
    for i, (s, det) in enumerate(zip(samples, detections, strict=True)):
        h, w = int(s.image.shape[0]), int(s.image.shape[1])
        images.append({"id": i + 1, "height": h, "width": w})
        for m, c in zip(s.masks, s.class_ids, strict=True):
            ys, xs = np.nonzero(m)
            if len(xs) == 0:
                continue
            x0, y0 = float(xs.min()), float(ys.min())
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": int(c) + 1,
                    "segmentation": _rle(m),
                    "area": float(m.sum()),
                    "bbox": [x0, y0, float(xs.max()) + 1 - x0, float(ys.max()) + 1 - y0],
                    "iscrowd": 0,
                }
            )
        for m, c, sc, (x1, y1, x2, y2) in zip(
            det.masks, det.class_ids, det.scores, det.xyxy.tolist(), strict=True
        ):
            results.append(
                {
                    "image_id": i + 1,
                    "category_id": int(c) + 1,
                    "segmentation": _rle(m),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(sc),
                }
            )
    return images, anns, results


def _coco_eval(
    images: list[dict[str, object]],
    anns: list[dict[str, object]],
    results: list[dict[str, object]],
    class_names: Sequence[str],
    iou_type: str,
    area_bands: Sequence[tuple[str, float, float]] = (),
) -> Any:
    """Run ``COCOeval`` (evaluate + accumulate) quietly; area range 0 is always "all"."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    # loadRes takes a result's box over its mask when it has both: give it one of the two.
    keep = {"image_id", "category_id", "score", "segmentation" if iou_type == "segm" else "bbox"}
    # pycocotools reports progress with print(); keep it out of our output.
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {
            "images": images,
            "annotations": anns,
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(class_names)],
        }
        gt.createIndex()
        dt = gt.loadRes([{k: v for k, v in r.items() if k in keep} for r in results])
        ev = COCOeval(gt, dt, iouType=iou_type)
        ev.params.maxDets = [1, 10, 100]
        if area_bands:
            ev.params.areaRng = [[0.0, 1e10], *([lo, hi] for _, lo, hi in area_bands)]
            ev.params.areaRngLbl = ["all", *(label for label, _, _ in area_bands)]
        ev.evaluate()
        ev.accumulate()
    return ev


def mask_map(
    samples: Sequence[Sample],
    detections: Sequence[FrameDetections],
    class_names: Sequence[str],
) -> dict[str, float]:
    """COCO mask mAP of detections against the samples' instances.

    Args:
        samples: ground truth (frame resolution).
        detections: one entry per sample.
        class_names: names by class id (categories of the evaluation).

    Returns:
        ``{"map50": ..., "map": ...}`` (mAP@0.5 and mAP@0.5:0.95, averaged over the classes
        that have ground truth); both 0.0 when there is no ground truth at all.
    """
    images, anns, results = _coco_inputs(samples, detections)
    if not anns or not results:
        return {"map50": 0.0, "map": 0.0}
    ev = _coco_eval(images, anns, results, class_names, "segm")
    with contextlib.redirect_stdout(io.StringIO()):
        ev.summarize()
    return {"map50": max(0.0, float(ev.stats[1])), "map": max(0.0, float(ev.stats[0]))}


def _ap50(precision: npt.NDArray[np.float64], classes: Sequence[int], area: int) -> float:
    """Mean AP@0.5 over ``classes`` (indices) at area range ``area`` of ``COCOeval.eval``'s
    precision array [T, R, K, A, M] (IoU 0.5, 100 detections); NaN when none has ground truth."""
    aps = [
        float(p[p > -1].mean())
        for p in (precision[0, :, k, area, -1] for k in classes)
        if (p > -1).any()
    ]
    return float(np.mean(aps)) if aps else float("nan")


def ap50_breakdown(
    samples: Sequence[Sample],
    detections: Sequence[FrameDetections],
    class_names: Sequence[str],
) -> list[AP50Row]:
    """Mask and box AP@0.5 per class and per object size, where a model loses its mAP.

    A row whose box AP is well above its mask AP is lost to mask quality; one where both are low
    is lost to detection. Boxes are scored against each object's visible-mask box.

    Returns:
        One row per class with ground truth (class order), then one per band of
        :data:`AREA_BANDS` with ground truth (AP averaged over the classes present in the band);
        empty when there is no ground truth or no detection.
    """
    images, anns, results = _coco_inputs(samples, detections)
    if not anns or not results:
        return []
    evals = {
        t: _coco_eval(images, anns, results, class_names, t, AREA_BANDS) for t in ("segm", "bbox")
    }
    counts = np.zeros((len(class_names), len(AREA_BANDS)), dtype=int)
    for sample in samples:
        for m, c in zip(sample.masks, sample.class_ids, strict=True):
            area = float(m.sum())
            if area:
                band = next(b for b, (_, lo, hi) in enumerate(AREA_BANDS) if lo <= area < hi)
                counts[int(c), band] += 1
    rows: list[AP50Row] = []
    for k, name in enumerate(class_names):
        if counts[k].sum():
            ap = {t: _ap50(ev.eval["precision"], [k], 0) for t, ev in evals.items()}
            rows.append(AP50Row(name, ap["segm"], ap["bbox"], int(counts[k].sum())))
    for b, (label, _, _) in enumerate(AREA_BANDS):
        if counts[:, b].sum():
            present = [k for k in range(len(class_names)) if counts[k, b]]
            ap = {t: _ap50(ev.eval["precision"], present, b + 1) for t, ev in evals.items()}
            rows.append(AP50Row(label, ap["segm"], ap["bbox"], int(counts[:, b].sum())))
    return rows

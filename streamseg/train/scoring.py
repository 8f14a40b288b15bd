"""Scoring detections against ground-truth instances with pycocotools ``COCOeval``.

:func:`mask_map` gives the mask mAP@0.5 and mAP@[.5:.95] that training and ``bench/model.py``
report; :func:`ap50_breakdown` splits AP@0.5 by class and by object size, for masks and for
boxes, so a run shows where a model loses its mAP. :class:`CocoScores` gives both from one set
of COCO inputs and one evaluation per kind. Ground truth is scored at frame resolution,
each object by its visible mask (its box is that mask's box).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from streamseg.train.sources import Sample

logger = logging.getLogger(__name__)


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
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """COCO images, ground-truth annotations and results (mask and box) of a detection run."""
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
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
                    "area": float(len(xs)),
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


class CocoScores:
    """One detection run scored against its ground truth: the COCO inputs are built once and
    each kind of evaluation (masks, boxes) runs once, whatever is asked of it.

    Args:
        samples: ground truth (frame resolution).
        detections: one entry per sample.
        class_names: names by class id (categories of the evaluation).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        detections: Sequence[FrameDetections],
        class_names: Sequence[str],
    ) -> None:
        self.class_names = list(class_names)
        self.images, self.anns, self.results = _coco_inputs(samples, detections)
        self._evals: dict[str, Any] = {}

    @property
    def empty(self) -> bool:
        """True when there is no ground truth or no detection (nothing to score)."""
        return not self.anns or not self.results

    def _eval(self, iou_type: str) -> Any:
        """``COCOeval`` (evaluated and accumulated, area range 0 "all", then :data:`AREA_BANDS`)
        of ``iou_type`` ("segm" or "bbox"), run on first use."""
        if iou_type not in self._evals:
            self._evals[iou_type] = _coco_eval(
                self.images, self.anns, self.results, self.class_names, iou_type
            )
        return self._evals[iou_type]

    def mask_map(self) -> dict[str, float]:
        """``{"map50": ..., "map": ...}``: mask mAP@0.5 and mAP@0.5:0.95 averaged over the classes
        that have ground truth (what ``COCOeval.summarize`` prints first); both 0.0 when
        :attr:`empty`."""
        if self.empty:
            return {"map50": 0.0, "map": 0.0}
        precision = self._eval("segm").eval["precision"][:, :, :, 0, -1]  # all areas, 100 dets

        def mean(p: npt.NDArray[np.float64]) -> float:
            valid = p[p > -1]
            return max(0.0, float(valid.mean())) if valid.size else 0.0

        return {"map50": mean(precision[0]), "map": mean(precision)}

    def ap50_breakdown(self) -> list[AP50Row]:
        """Mask and box AP@0.5 per class and per object size, where a model loses its mAP.

        A row whose box AP is well above its mask AP is lost to mask quality; one where both are
        low is lost to detection. Boxes are scored against each object's visible-mask box.

        Returns:
            One row per class with ground truth (class order), then one per band of
            :data:`AREA_BANDS` with ground truth (AP averaged over the classes present in the
            band); empty when :attr:`empty`.
        """
        if self.empty:
            return []
        precision = {t: self._eval(t).eval["precision"] for t in ("segm", "bbox")}
        counts = np.zeros((len(self.class_names), len(AREA_BANDS)), dtype=int)
        for a in self.anns:
            band = next(b for b, (_, lo, hi) in enumerate(AREA_BANDS) if lo <= a["area"] < hi)
            counts[a["category_id"] - 1, band] += 1
        rows: list[AP50Row] = []
        for k, name in enumerate(self.class_names):
            if counts[k].sum():
                ap = {t: _ap50(p, [k], 0) for t, p in precision.items()}
                rows.append(AP50Row(name, ap["segm"], ap["bbox"], int(counts[k].sum())))
        for b, (label, _, _) in enumerate(AREA_BANDS):
            if counts[:, b].sum():
                present = [k for k in range(len(self.class_names)) if counts[k, b]]
                ap = {t: _ap50(p, present, b + 1) for t, p in precision.items()}
                rows.append(AP50Row(label, ap["segm"], ap["bbox"], int(counts[:, b].sum())))
        return rows


def _coco_eval(
    images: list[dict[str, Any]],
    anns: list[dict[str, Any]],
    results: list[dict[str, Any]],
    class_names: Sequence[str],
    iou_type: str,
) -> Any:
    """Run ``COCOeval`` (evaluate + accumulate) quietly over area range "all" and
    :data:`AREA_BANDS`, at most 100 detections per image."""
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
        ev.params.areaRng = [[0.0, 1e10], *([lo, hi] for _, lo, hi in AREA_BANDS)]
        ev.params.areaRngLbl = ["all", *(label for label, _, _ in AREA_BANDS)]
        ev.evaluate()
        ev.accumulate()
    return ev


def _ap50(precision: npt.NDArray[np.float64], classes: Sequence[int], area: int) -> float:
    """Mean AP@0.5 over ``classes`` (indices) at area range ``area`` of ``COCOeval.eval``'s
    precision array [T, R, K, A, M] (IoU 0.5, 100 detections); NaN when none has ground truth."""
    aps = [
        float(p[p > -1].mean())
        for p in (precision[0, :, k, area, -1] for k in classes)
        if (p > -1).any()
    ]
    return float(np.mean(aps)) if aps else float("nan")


def mask_map(
    samples: Sequence[Sample],
    detections: Sequence[FrameDetections],
    class_names: Sequence[str],
) -> dict[str, float]:
    """:meth:`CocoScores.mask_map` of one detection run."""
    return CocoScores(samples, detections, class_names).mask_map()


def ap50_breakdown(
    samples: Sequence[Sample],
    detections: Sequence[FrameDetections],
    class_names: Sequence[str],
) -> list[AP50Row]:
    """:meth:`CocoScores.ap50_breakdown` of one detection run."""
    return CocoScores(samples, detections, class_names).ap50_breakdown()

"""Fixtures for the training tests: a tiny sample source of coloured rectangles and ellipses."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from streamseg.train.sources import Sample

SHAPE_NAMES = ("box", "disc", "bar")


class ShapesSource:
    """Rectangles (class 0), ellipses (class 1) and thin bars (class 2) on a noisy background.

    Masks are the visible pixels (later shapes occlude earlier ones), like the synthetic world's.
    """

    def __init__(self, resolution_wh: tuple[int, int] = (96, 64), max_objects: int = 4) -> None:
        self.resolution_wh = resolution_wh
        self.max_objects = max_objects

    @property
    def class_names(self) -> tuple[str, ...]:
        return SHAPE_NAMES

    def get(self, index: int, rng: np.random.Generator) -> Sample:
        w, h = self.resolution_wh
        bg = rng.integers(40, 90, size=3)
        image = np.empty((h, w, 3), np.uint8)
        image[:] = bg
        image = np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)
        n = int(rng.integers(1, self.max_objects + 1))
        labels = np.zeros((h, w), np.int32)  # 0 = background, i + 1 = object i
        classes = []
        for i in range(n):
            cls = int(rng.integers(0, 3))
            colour = tuple(int(c) for c in rng.integers(120, 255, size=3))
            layer = np.zeros((h, w), np.uint8)
            cx, cy = int(rng.integers(8, w - 8)), int(rng.integers(8, h - 8))
            sx = int(rng.integers(w // 12, w // 4))
            sy = int(rng.integers(h // 12, h // 4))
            if cls == 0:
                cv2.rectangle(layer, (cx - sx, cy - sy), (cx + sx, cy + sy), 1, -1)
            elif cls == 1:
                cv2.ellipse(layer, (cx, cy), (sx, sy), 0, 0, 360, 1, -1)
            else:
                cv2.rectangle(layer, (cx - sx, cy - 2), (cx + sx, cy + 2), 1, -1)
            on = layer.astype(bool)
            image[on] = colour
            labels[on] = i + 1
            classes.append(cls)
        masks, ids = [], []
        for i, cls in enumerate(classes):
            m = labels == i + 1
            if m.sum() >= 4:
                masks.append(m)
                ids.append(cls)
        if not masks:
            return Sample(image, np.zeros((0, h, w), bool), np.zeros((0,), np.int64))
        return Sample(image, np.stack(masks), np.array(ids, np.int64))


@pytest.fixture
def shapes_source() -> ShapesSource:
    """A 96x64 source of up to four shapes per image."""
    return ShapesSource()


@pytest.fixture
def coco_dataset(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray, np.ndarray]:
    """Two images: one with a polygon and an RLE object, one with an uncompressed-RLE object."""
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    h, w = 60, 80
    a = np.full((h, w, 3), 30, np.uint8)
    poly_mask = np.zeros((h, w), np.uint8)
    pts = np.array([[10, 10], [40, 10], [40, 30], [10, 30]], np.int32)
    cv2.fillPoly(poly_mask, [pts], 1)
    rle_mask = np.zeros((h, w), np.uint8)
    cv2.circle(rle_mask, (60, 45), 8, 1, -1)
    a[poly_mask > 0] = (0, 0, 200)
    a[rle_mask > 0] = (0, 200, 0)
    cv2.imwrite(str(img_dir / "a.png"), a)
    b = np.full((h, w, 3), 30, np.uint8)
    un_mask = np.zeros((h, w), np.uint8)
    un_mask[5:20, 50:70] = 1
    b[un_mask > 0] = (200, 0, 0)
    cv2.imwrite(str(img_dir / "b.png"), b)
    rle = mask_utils.encode(np.asfortranarray(rle_mask))
    rle["counts"] = rle["counts"].decode("ascii")
    # Uncompressed RLE: run lengths over the column-major flattening, starting with zeros.
    flat = [int(v) for v in un_mask.flatten(order="F")]
    runs: list[int] = []
    cur, n = 0, 0
    for v in flat:
        if v == cur:
            n += 1
        else:
            runs.append(n)
            cur, n = v, 1
    runs.append(n)
    data = {
        "images": [
            {"id": 1, "file_name": "a.png", "height": h, "width": w},
            {"id": 2, "file_name": "b.png", "height": h, "width": w},
        ],
        "categories": [{"id": 3, "name": "cube"}, {"id": 7, "name": "ball"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 3,
                "segmentation": [pts.reshape(-1).astype(float).tolist()],
                "area": 600.0,
                "bbox": [10, 10, 30, 20],
                "iscrowd": 0,
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 7,
                "segmentation": rle,
                "area": float(rle_mask.sum()),
                "bbox": [52, 37, 17, 17],
                "iscrowd": 0,
            },
            {
                "id": 3,
                "image_id": 2,
                "category_id": 7,
                "segmentation": {"size": [h, w], "counts": runs},
                "area": float(un_mask.sum()),
                "bbox": [50, 5, 20, 15],
                "iscrowd": 0,
            },
        ],
    }
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(data))
    return ann, img_dir, poly_mask.astype(bool), rle_mask.astype(bool), un_mask.astype(bool)

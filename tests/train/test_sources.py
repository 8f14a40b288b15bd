"""COCO sample source: polygon and RLE masks, and errors that name the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamseg.train.sources import CocoSource

CocoFiles = Any  # (ann.json, images dir, polygon mask, RLE mask, uncompressed-RLE mask)


def test_coco_reader_polygon_and_rle(coco_dataset: CocoFiles) -> None:
    ann, img_dir, poly, rle, un = coco_dataset
    src = CocoSource(ann, img_dir)
    assert src.class_names == ("cube", "ball")
    rng = np.random.default_rng(0)
    s0 = src.get(0, rng)
    assert s0.image.shape == (60, 80, 3)
    assert list(s0.class_ids) == [0, 1]
    # polygon rasterization may differ from cv2.fillPoly on the border only
    inter = (s0.masks[0] & poly).sum() / (s0.masks[0] | poly).sum()
    assert inter > 0.9
    assert np.array_equal(s0.masks[1], rle)
    s1 = src.get(1, rng)
    assert list(s1.class_ids) == [1]
    assert np.array_equal(s1.masks[0], un)
    assert np.array_equal(src.get(2, rng).masks, s0.masks)  # indices wrap around


def test_coco_reader_errors_name_the_problem(coco_dataset: CocoFiles, tmp_path: Path) -> None:
    ann, img_dir, *_ = coco_dataset
    with pytest.raises(FileNotFoundError, match="expected a folder"):
        CocoSource(ann, tmp_path / "missing")
    (img_dir / "b.png").unlink()
    with pytest.raises(FileNotFoundError, match="cannot read"):
        CocoSource(ann, img_dir).get(1, np.random.default_rng(0))

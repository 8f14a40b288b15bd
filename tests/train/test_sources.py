"""COCO sample source: polygon and RLE masks, and errors that name the problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from streamseg.train.coco import CocoSource

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
    src = CocoSource(ann, img_dir)
    (img_dir / "b.png").unlink()  # after load: found when read
    with pytest.raises(FileNotFoundError, match="cannot read"):
        src.get(1, np.random.default_rng(0))


# --- COCO files checked at load (audit findings): each test failed on the lazy reader ---

CATS = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
SQUARE = [[20, 10, 60, 10, 60, 40, 20, 40]]  # x 20..60, y 10..40 of a 96x64 image


def _image(img_id: int, **extra: Any) -> dict[str, Any]:
    """A 96x64 image entry named ``<id>.png``."""
    return {"id": img_id, "file_name": f"{img_id}.png", "width": 96, "height": 64, **extra}


def _ann(ann_id: int, img_id: int = 1, seg: Any = SQUARE, **extra: Any) -> dict[str, Any]:
    """A non-crowd annotation of category 1."""
    return {
        "id": ann_id,
        "image_id": img_id,
        "category_id": 1,
        "segmentation": seg,
        "iscrowd": 0,
        **extra,
    }


def _write_coco(
    root: Path,
    images: list[dict[str, Any]],
    annotations: list[dict[str, Any]],
    categories: list[dict[str, Any]] = CATS,
    file_hw: tuple[int, int] = (64, 96),
    skip_files: tuple[int, ...] = (),
) -> tuple[Path, Path]:
    """Write ``ann.json`` and a ``file_hw`` PNG per image (except ``skip_files`` ids)."""
    img_dir = root / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    for info in images:
        if info["id"] not in skip_files:
            cv2.imwrite(str(img_dir / info["file_name"]), np.full((*file_hw, 3), 90, np.uint8))
    ann = root / "ann.json"
    data = {"images": images, "annotations": annotations, "categories": categories}
    ann.write_text(json.dumps(data))
    return ann, img_dir


def _rle(hw: tuple[int, int]) -> dict[str, Any]:
    """A compressed RLE (``counts`` a str, as in JSON) of a box in a ``hw`` grid."""
    m = np.zeros(hw, np.uint8)
    m[5:20, 10:30] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    return {"size": list(hw), "counts": rle["counts"].decode("ascii")}


@pytest.mark.parametrize(
    ("segmentation", "error"),
    [
        (
            [[20, 10, 60, 40]],
            r"polygon 0 has 4 numbers; expected at least 6 \(3 points\)",
        ),  # pycocotools read it as a box: TypeError 'bb'
        ([[20, 10]], "polygon 0 has 2 numbers"),  # "input type is not supported"
        ([[]], "polygon 0 has 0 numbers"),
        (SQUARE[0], r"flat list of 8 numbers; expected a list of polygons \[\[x1, y1"),
        ([[20, 10, 60, "x", 60, 40]], "polygon 0 is .*expected a list of numbers"),
        ([[20, 10, 60, 10, 60, 40, 5]], "polygon 0 has 7 numbers; expected x, y pairs"),
        ({"counts": "abc"}, "RLE segmentation lacks size"),
        ({"size": [64, 96]}, "RLE segmentation lacks counts"),
        ({"size": [64, 96], "counts": [10, 20]}, "run lengths add up to 30; expected .* 6144"),
        # Compressed RLE garbage passed the load and failed in pycocotools mid-training.
        ({"size": [64, 96], "counts": "hello world!!"}, "RLE counts holds ' '"),
        ({"size": [64, 96], "counts": "Pl9"}, "not a valid compressed RLE of size"),  # 10112 px
        ({"size": [64, 96], "counts": "0l"}, "ends inside a run"),
        ("polygon", "segmentation is a str; expected a list of polygons"),
    ],
)
def test_bad_segmentation_is_an_error_at_load_naming_the_annotation(
    tmp_path: Path, segmentation: Any, error: str
) -> None:
    """Bad segmentations crashed in pycocotools when first sampled, naming no annotation."""
    ann, img_dir = _write_coco(tmp_path, [_image(1)], [_ann(1, seg=segmentation)])
    with pytest.raises(ValueError, match=r"ann\.json: annotation 1 \(image 1\): .*" + error):
        CocoSource(ann, img_dir)


def test_problems_are_listed_together_first_ten_then_a_count(tmp_path: Path) -> None:
    """One error lists the first problems and counts the rest (not one crash per run)."""
    anns = [_ann(i, seg=[[1, 2]]) for i in range(1, 14)] + [_ann(99)]
    ann, img_dir = _write_coco(tmp_path, [_image(1)], anns)
    with pytest.raises(ValueError, match="13 problems") as info:
        CocoSource(ann, img_dir)
    assert "annotation 10 (image 1)" in str(info.value)
    assert "annotation 11 (image 1)" not in str(info.value)
    assert "... and 3 more" in str(info.value)


def test_short_polygon_next_to_a_valid_one_is_dropped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 2-point polygon before a valid one was read as a box by pycocotools (TypeError)."""
    ann, img_dir = _write_coco(tmp_path, [_image(1)], [_ann(1, seg=[[1, 1, 3, 3], *SQUARE])])
    with caplog.at_level("WARNING", logger="streamseg.train.coco"):
        src = CocoSource(ann, img_dir)
    assert "dropped 1 polygon with fewer than 6 numbers" in caplog.text
    sample = src.get(0, np.random.default_rng(0))
    assert sample.masks.shape == (1, 64, 96)
    assert sample.masks[0].sum() == 1200 and sample.masks[0, 10:40, 20:60].all()


def test_missing_image_files_are_listed_at_load(tmp_path: Path) -> None:
    """A missing image file was found only when first sampled, hours into a run."""
    images = [_image(i) for i in range(1, 5)]
    ann, img_dir = _write_coco(tmp_path, images, [_ann(1)], skip_files=(2, 4))
    with pytest.raises(FileNotFoundError, match=r"2 image files of 4 missing") as info:
        CocoSource(ann, img_dir)
    assert f"image 2: {img_dir / '2.png'} does not exist" in str(info.value)
    assert "image 4:" in str(info.value) and "image 3:" not in str(info.value)


def test_annotation_without_iscrowd_is_used(tmp_path: Path) -> None:
    """pycocotools' getAnnIds raised KeyError 'iscrowd'; missing means 0."""
    a = _ann(1)
    del a["iscrowd"]
    ann, img_dir = _write_coco(tmp_path, [_image(1)], [a, _ann(2, iscrowd=None)])
    sample = CocoSource(ann, img_dir).get(0, np.random.default_rng(0))
    assert list(sample.class_ids) == [0, 0]


def test_image_without_width_height_decodes_at_the_file_size(tmp_path: Path) -> None:
    """annToMask raised KeyError 'height' for an image entry without width/height."""
    images = [{"id": 1, "file_name": "1.png"}, {"id": 2, "file_name": "2.png"}]
    anns = [_ann(1), _ann(2, img_id=2, seg=_rle((64, 96)))]
    ann, img_dir = _write_coco(tmp_path, images, anns)
    src = CocoSource(ann, img_dir)
    rng = np.random.default_rng(0)
    assert src.get(0, rng).masks.shape == (1, 64, 96)
    assert src.get(0, rng).masks[0].sum() == 1200
    assert src.get(1, rng).masks[0].sum() == 15 * 20


def test_unknown_category_names_the_annotation(tmp_path: Path) -> None:
    """An unknown category_id was a raw KeyError: 7 when its image was sampled."""
    ann, img_dir = _write_coco(tmp_path, [_image(1)], [_ann(1), _ann(5, category_id=7)])
    with pytest.raises(ValueError, match=r"annotation 5 \(image 1\): category_id 7 is not among"):
        CocoSource(ann, img_dir)


@pytest.mark.parametrize(
    ("images", "annotations", "error"),
    [
        ([_image(1), _image(1, file_name="2.png")], [_ann(1)], r"duplicate image ids: 1 \(2 times"),
        ([_image(1), _image(2)], [_ann(3), _ann(3, img_id=2)], "duplicate annotation ids: 3"),
    ],
)
def test_duplicate_ids_are_an_error(
    tmp_path: Path, images: list[dict[str, Any]], annotations: list[dict[str, Any]], error: str
) -> None:
    """Duplicate annotation ids swapped masks between images; duplicate image ids dropped one."""
    ann, img_dir = _write_coco(tmp_path, images, annotations)
    with pytest.raises(ValueError, match=error):
        CocoSource(ann, img_dir)


def test_rle_size_must_be_the_image_size(tmp_path: Path) -> None:
    """An RLE of a 48x32 grid on a 96x64 image was accepted and decoded at the wrong scale."""
    ann, img_dir = _write_coco(tmp_path, [_image(1)], [_ann(1, seg=_rle((32, 48)))])
    with pytest.raises(
        ValueError,
        match=r"annotation 1 \(image 1\): RLE size \[32, 48\] differs from the image's "
        r"\[height, width\] \[64, 96\]",
    ):
        CocoSource(ann, img_dir)
    # An image without width/height is checked against its file when read.
    images = [{"id": 1, "file_name": "1.png"}]
    ann, img_dir = _write_coco(tmp_path / "nowh", images, [_ann(1, seg=_rle((32, 48)))])
    src = CocoSource(ann, img_dir)
    with pytest.raises(ValueError, match=r"annotation 1 \(image 1\): RLE size \[32, 48\] differs"):
        src.get(0, np.random.default_rng(0))


def test_detection_only_file_is_an_error(tmp_path: Path) -> None:
    """Box-only annotations were dropped in silence: the run trained on pure background."""
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [20, 10, 40, 30], "iscrowd": 0},
        _ann(2, seg=[]),
        _ann(3, seg=[[20, 10, 40, 10, 60, 10]]),  # zero area
    ]
    ann, img_dir = _write_coco(tmp_path, [_image(1)], anns)
    with pytest.raises(
        ValueError, match=r"detection-only COCO file .* cannot train a segmentation model"
    ) as info:
        CocoSource(ann, img_dir)
    assert "2 without a segmentation" in str(info.value)
    assert "1 with a zero-area segmentation" in str(info.value)


def test_unused_annotations_are_counted_in_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Unused annotations (box only, crowd, image not in the file) went unmentioned."""
    crowd = _ann(3, seg={"size": [64, 96], "counts": [100, 200, 5844]}, iscrowd=1)
    anns = [_ann(1), _ann(2, seg=[]), crowd, _ann(4, img_id=9)]
    ann, img_dir = _write_coco(tmp_path, [_image(1)], anns)
    with caplog.at_level("WARNING", logger="streamseg.train.coco"):
        src = CocoSource(ann, img_dir)
    warnings = [r.getMessage() for r in caplog.records if "not used for training" in r.getMessage()]
    assert warnings == [
        "ann.json: 3 of 4 annotations not used for training: 1 without a segmentation (box only "
        "or empty), 1 crowd (iscrowd 1, skipped by design), 1 whose image_id is not among the "
        "images"
    ]
    assert list(src.get(0, np.random.default_rng(0)).class_ids) == [0]


def test_valid_masks_decode_like_pycocotools(coco_dataset: CocoFiles) -> None:
    """Polygon, compressed and uncompressed RLE masks are what annToMask gives."""
    ann, img_dir, *_ = coco_dataset
    src = CocoSource(ann, img_dir)
    rng = np.random.default_rng(0)
    for index, img_id in enumerate(src.image_ids):
        ann_ids = src.coco.getAnnIds(imgIds=img_id, iscrowd=False)
        expected = [src.coco.annToMask(a).astype(bool) for a in src.coco.loadAnns(ann_ids)]
        assert len(expected) > 0
        assert np.array_equal(src.get(index, rng).masks, np.stack(expected))


def test_compressed_rle_from_pycocotools_passes_and_its_area_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The load-time check reads compressed RLE as pycocotools does (a zero-area one is
    counted as such, a real one used)."""
    mask = np.zeros((64, 96), np.uint8)
    mask[10:30, 20:50] = 1
    full = mask_utils.encode(np.asfortranarray(mask))
    empty = mask_utils.encode(np.asfortranarray(np.zeros_like(mask)))
    segs = [{"size": [64, 96], "counts": r["counts"].decode()} for r in (full, empty)]
    ann, img_dir = _write_coco(tmp_path, [_image(1)], [_ann(1, seg=segs[0]), _ann(2, seg=segs[1])])
    with caplog.at_level("WARNING", logger="streamseg.train.coco"):
        source = CocoSource(ann, img_dir)
    assert [r.getMessage() for r in caplog.records if "not used" in r.getMessage()] == [
        "ann.json: 1 of 2 annotations not used for training: 1 with a zero-area segmentation "
        "(or wholly outside its image)"
    ]
    sample = source.get(0, np.random.default_rng(0))
    assert len(sample.masks) == 1 and int(sample.masks[0].sum()) == 600


def test_categories_sharing_a_name_are_an_error(tmp_path: Path) -> None:
    """Two categories named alike trained two classes of one name: a pipeline's
    ``classes: [worker]`` then picked both."""
    cats = [{"id": 1, "name": "worker"}, {"id": 4, "name": "worker"}, {"id": 5, "name": "cow"}]
    ann, img_dir = _write_coco(tmp_path, [_image(1)], [_ann(1)], categories=cats)
    with pytest.raises(ValueError, match=r"categories share a name: 'worker' \(ids 1, 4\)"):
        CocoSource(ann, img_dir)


def test_a_category_without_annotations_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """It became a class the model never saw, without a word."""
    cats = [{"id": 1, "name": "cow"}, {"id": 9, "name": "ghost"}]
    ann, img_dir = _write_coco(tmp_path, [_image(1)], [_ann(1)], categories=cats)
    with caplog.at_level("WARNING", logger="streamseg.train.coco"):
        source = CocoSource(ann, img_dir)
    assert source.class_names == ("cow", "ghost")
    assert [r.getMessage() for r in caplog.records] == [
        "ann.json: category 'ghost' (id 9) has no usable annotation: the model learns nothing "
        "of it (remove it from the categories, or label some)"
    ]


def test_a_polygon_wholly_outside_its_image_is_not_trained_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """It passed the load and was decoded to an empty mask (a sample teaching "nothing here"
    where the object was); now it is counted with the zero-area ones."""
    outside = [[200, 10, 260, 10, 260, 40, 200, 40]]  # x 200..260 of a 96 px wide image
    ann, img_dir = _write_coco(tmp_path, [_image(1)], [_ann(1), _ann(2, seg=outside)])
    with caplog.at_level("WARNING", logger="streamseg.train.coco"):
        source = CocoSource(ann, img_dir)
    assert any(
        "1 of 2 annotations not used" in r.getMessage() and "outside its image" in r.getMessage()
        for r in caplog.records
    )
    assert len(source.get(0, np.random.default_rng(0)).masks) == 1


def test_images_whose_size_contradicts_their_entry_are_listed_at_load(tmp_path: Path) -> None:
    """Regression: an image resized after labelling was found only when first sampled, which
    ended the run hours in on a large set. Now every such image is listed before training."""
    images = [_image(1), _image(2), _image(3, width=None, height=None)]
    ann, img_dir = _write_coco(tmp_path, images, [_ann(1), _ann(2, img_id=2)], file_hw=(64, 96))
    cv2.imwrite(str(img_dir / "2.png"), np.full((32, 48, 3), 90, np.uint8))  # resized
    with pytest.raises(ValueError, match="1 image of 3 not the size") as info:
        CocoSource(ann, img_dir)
    assert f"image 2: states 96x64, {img_dir / '2.png'} is 48x32" in str(info.value)
    # The stated size of a JPEG turned a quarter by its EXIF orientation is the turned one, as
    # OpenCV decodes it: no error.
    from PIL import Image

    rotated = Image.new("RGB", (64, 96), (90, 90, 90))  # stored 64 wide, 96 high
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned: 96 wide, 64 high
    rotated.save(img_dir / "2.jpg", exif=exif)
    images[1]["file_name"] = "2.jpg"
    ann.write_text(json.dumps({"images": images, "annotations": [_ann(1)], "categories": CATS}))
    src = CocoSource(ann, img_dir)
    assert src.get(1, np.random.default_rng(0)).image.shape[:2] == (64, 96)

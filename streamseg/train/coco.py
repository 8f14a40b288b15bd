"""A COCO instance-segmentation dataset as a training sample source (:class:`CocoSource`).

The user's file is checked whole when the source is built (:func:`_validate_coco`), so a bad
annotation or a missing image stops ``streamseg train`` before training starts, with an error
that names the annotation or image, instead of a pycocotools traceback hours in.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeGuard

import cv2
import numpy as np
import numpy.typing as npt

from streamseg.train.sources import Sample

logger = logging.getLogger(__name__)

#: A polygon needs at least this many numbers (3 points, an x and a y each) to enclose an area.
MIN_POLYGON_NUMBERS = 6
#: Problems of a COCO file listed in one error; the rest are counted.
MAX_LISTED_PROBLEMS = 10


class CocoSource:
    """A COCO-format instance-segmentation dataset (polygon or RLE segmentations).

    The whole file is checked once, at construction, so a bad annotation or a missing image
    stops the run before training starts instead of hours in (cheap checks only: masks are
    decoded and images read when sampled; of the image files only their headers are read):

    * every problem is collected and reported in one ``ValueError`` that names the file and the
      annotation and/or image id: duplicate image or annotation ids, an unknown ``category_id``,
      a flat polygon ``[x, y, ...]`` (COCO wants ``[[x, y, ...], ...]``), an annotation whose
      polygons all have fewer than 6 numbers (3 points), an RLE without ``size``/``counts`` or
      whose ``size`` is not the image's ``[height, width]``;
    * image files that do not exist are listed in one ``FileNotFoundError``;
    * images whose stated ``width`` and ``height`` are not their file's (read from the file's
      header, EXIF orientation applied, as OpenCV decodes it) are listed in one ``ValueError``;
    * a file with no usable annotation (a detection-only file: boxes, no masks) is a
      ``ValueError``.

    Tolerated, with one warning each at load: polygons with fewer than 6 numbers next to valid
    ones are dropped; annotations with no segmentation (box only, ``[]``), a zero-area
    segmentation, an ``image_id`` not among the images, or ``iscrowd`` set are not used (crowd
    regions are skipped by design). A missing ``iscrowd`` means 0. Images may omit ``width`` and
    ``height`` (masks are decoded at the size of the image file); when given they must match it.

    Category ids are mapped to contiguous class ids in increasing category-id order. Images
    without annotations are kept (they teach background).

    Args:
        annotations: path of the COCO JSON file.
        images_dir: folder the ``file_name`` of each image is relative to.

    Raises:
        FileNotFoundError: the JSON file, the images folder or image files do not exist.
        ValueError: the file is not valid COCO instance segmentation (see above).
    """

    def __init__(self, annotations: str | Path, images_dir: str | Path) -> None:
        from pycocotools.coco import COCO

        ann_path = Path(annotations)
        if not ann_path.is_file():
            raise FileNotFoundError(f"COCO annotations: expected a JSON file, got {ann_path}")
        self.images_dir = Path(images_dir)
        if not self.images_dir.is_dir():
            raise FileNotFoundError(f"COCO images: expected a folder, got {self.images_dir}")
        self.ann_path = ann_path
        data = _read_coco_json(ann_path)
        cat_names = _validate_coco(data, ann_path, self.images_dir)
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            self.coco = COCO()
            self.coco.dataset = data
            self.coco.createIndex()
        cat_ids = sorted(cat_names)
        self.cat_to_class = {c: i for i, c in enumerate(cat_ids)}
        self._names = tuple(cat_names[c] for c in cat_ids)
        self.image_ids: list[int] = sorted(self.coco.imgs)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Category names in class-id order."""
        return self._names

    def __len__(self) -> int:
        return len(self.image_ids)

    def get(self, index: int, rng: np.random.Generator) -> Sample:
        """Image ``index % len(self)`` with its decoded masks (crowd annotations skipped)."""
        img_id = self.image_ids[index % len(self.image_ids)]
        image = self._read_image(img_id)
        h, w = image.shape[:2]
        masks, cls = [], []
        for ann in self.coco.imgToAnns[img_id]:
            if ann.get("iscrowd") or not ann.get("segmentation"):
                continue
            m = self._decode(ann, h, w)
            if m.any():
                masks.append(m)
                cls.append(self.cat_to_class[int(ann["category_id"])])
        if masks:
            return Sample(image, np.stack(masks), np.array(cls, dtype=np.int64))
        return Sample(image, np.zeros((0, h, w), bool), np.zeros((0,), np.int64))

    def _read_image(self, img_id: int) -> npt.NDArray[np.uint8]:
        """Read image ``img_id`` as (H, W, 3) uint8 BGR and check its stated width and height."""
        info = self.coco.imgs[img_id]
        path = self.images_dir / str(info["file_name"])
        raw = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if raw is None:
            raise FileNotFoundError(f"COCO image {img_id}: cannot read {path}")
        image = np.asarray(raw, dtype=np.uint8)
        h, w = image.shape[:2]
        stated_h, stated_w = info.get("height"), info.get("width")
        if (stated_h is not None and int(stated_h) != h) or (
            stated_w is not None and int(stated_w) != w
        ):
            raise ValueError(
                f"COCO image {img_id}: annotation says {stated_w}x{stated_h}, "
                f"file {path} is {w}x{h}"
            )
        return image

    def _decode(self, ann: dict[str, Any], h: int, w: int) -> npt.NDArray[np.bool_]:
        """Decode ``ann``'s segmentation at the image file's size: (h, w) bool."""
        seg = ann["segmentation"]
        if isinstance(seg, dict) and [int(v) for v in seg["size"]] != [h, w]:
            # Only reachable for an image without width/height: the others are checked at load.
            raise ValueError(
                f"{self.ann_path.name}: annotation {ann['id']} (image {ann['image_id']}): RLE size "
                f"{seg['size']} differs from the image file's [height, width] [{h}, {w}]"
            )
        return _decode_segmentation(seg, h, w)


def _decode_segmentation(seg: list[Any] | dict[str, Any], h: int, w: int) -> npt.NDArray[np.bool_]:
    """Rasterize a checked COCO segmentation (polygons or RLE) to an (h, w) bool mask.

    Polygons with fewer than :data:`MIN_POLYGON_NUMBERS` numbers are left out (pycocotools
    would read one of 4 numbers as a box). Gives what pycocotools' ``COCO.annToMask`` gives.
    """
    from pycocotools import mask as mask_utils

    if isinstance(seg, list):
        polygons = [p for p in seg if len(p) >= MIN_POLYGON_NUMBERS]
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, h, w))
    elif isinstance(seg["counts"], list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(seg, h, w)
    else:
        rle = seg
    return np.asarray(mask_utils.decode(rle), dtype=bool)


class _SegmentationCheck(NamedTuple):
    """What checking one segmentation found (problems raise instead)."""

    zero_area: bool  # no pixel to learn from
    short_polygons: int  # polygons with fewer than MIN_POLYGON_NUMBERS numbers, dropped


@dataclass
class _AnnotationTally:
    """How a COCO file's annotations are used, for the warnings at load."""

    total: int = 0
    usable: int = 0
    crowd: int = 0
    no_segmentation: int = 0
    zero_area: int = 0
    no_image: int = 0
    short_polygons: int = 0
    short_polygon_anns: list[str] = field(default_factory=list)
    usable_categories: set[int] = field(default_factory=set)

    def unused_reasons(self) -> list[str]:
        """``"N why"`` for each reason an annotation is not used, most common COCO first."""
        reasons = (
            (self.no_segmentation, "without a segmentation (box only or empty)"),
            (self.zero_area, "with a zero-area segmentation (or wholly outside its image)"),
            (self.crowd, "crowd (iscrowd 1, skipped by design)"),
            (self.no_image, "whose image_id is not among the images"),
        )
        return [f"{n} {why}" for n, why in reasons if n]


def _read_coco_json(path: Path) -> dict[str, Any]:
    """Load a COCO JSON file: an object whose images, annotations and categories are lists."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"COCO annotations {path}: not a JSON file: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"COCO annotations {path}: expected a JSON object with images, annotations and "
            f"categories, got a {type(data).__name__}"
        )
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key, []), list):
            raise ValueError(
                f"COCO annotations {path}: {key} is a {type(data[key]).__name__}; expected a list"
            )
    data.setdefault("annotations", [])
    return data


def _validate_coco(data: dict[str, Any], path: Path, images_dir: Path) -> dict[int, str]:
    """Check a loaded COCO file for training; return its category names by category id.

    Normalizes ``iscrowd`` in place (missing or null means 0). Logs one warning with the
    annotations it will not use and one with the short polygons it drops.

    Raises:
        ValueError: every problem found, in one message (see :class:`CocoSource`), or no usable
            annotation at all.
        FileNotFoundError: image files that do not exist, all in one message.
    """
    problems: list[str] = []
    name = path.name
    cat_names = _check_categories(data.get("categories", []), name, problems)
    images = _check_images(data.get("images", []), name, problems)
    tally = _check_annotations(data["annotations"], images, cat_names, name, problems)
    missing = [
        f"{name}: image {img_id}: {images_dir / str(info['file_name'])} does not exist"
        for img_id, info in images.items()
        if not (images_dir / str(info["file_name"])).is_file()
    ]
    if problems:
        lines = problems + missing
        raise ValueError(_listing(path, _count(len(lines), "problem"), lines))
    if missing:
        header = f"{_count(len(missing), 'image file')} of {len(images)} missing"
        raise FileNotFoundError(_listing(path, header, missing))
    resized = _size_mismatches(images, images_dir, name)
    if resized:
        header = f"{_count(len(resized), 'image')} of {len(images)} not the size the file states"
        raise ValueError(
            _listing(path, header, resized)
            + "\n(images resized after labelling? the annotations are in the stated size: "
            "train on the images as they were labelled, or export the annotations again from "
            "these)"
        )
    if tally.usable == 0:
        found = "; ".join(tally.unused_reasons()) or "no annotations"
        raise ValueError(
            f"COCO annotations {path}: no annotation with a usable mask "
            f"({_count(tally.total, 'annotation')}: {found}): a detection-only COCO file (boxes, "
            "no masks) cannot train a segmentation model"
        )
    _warn_unused(name, tally)
    empty = [
        f"{cat_names[c]!r} (id {c})" for c in sorted(cat_names) if c not in tally.usable_categories
    ]
    if empty:
        # A class the model gets an output for but never sees: it learns nothing of it, and
        # a pipeline's rule on it would stay silent.
        logger.warning(
            "%s: %s no usable annotation: the model learns nothing of %s (remove %s from the "
            "categories, or label some)",
            name,
            f"categories {', '.join(empty)} have" if len(empty) > 1 else f"category {empty[0]} has",
            "them" if len(empty) > 1 else "it",
            "them" if len(empty) > 1 else "it",
        )
    return cat_names


EXIF_ORIENTATION = 0x0112
"""The EXIF tag of a JPEG's orientation; 5-8 turn the picture a quarter (width and height swap),
as OpenCV applies when it reads the image (a phone's portrait photo)."""


def _file_size_wh(path: Path) -> tuple[int, int] | None:
    """(width, height) of an image file as OpenCV will decode it, from its header (Pillow reads
    no pixels); ``None`` when Pillow does not know the format (OpenCV may: checked when read)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            # Only a JPEG's EXIF is in its header (a PNG's may follow the pixels).
            orientation = image.getexif().get(EXIF_ORIENTATION, 1) if image.format == "JPEG" else 1
    except (UnidentifiedImageError, OSError, SyntaxError):
        return None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _size_mismatches(images: dict[int, dict[str, Any]], images_dir: Path, name: str) -> list[str]:
    """Images whose stated width and height are not their file's (one line each).

    Their annotations are in the stated size, so training on them would fail when one is
    sampled (hours in, on a large set); headers only, so a large set is checked in seconds.
    """
    lines = []
    for img_id, info in images.items():
        stated = _stated_hw(info)
        if stated is None:
            continue
        file = images_dir / str(info["file_name"])
        size = _file_size_wh(file)
        if size is not None and (size[1], size[0]) != stated:
            lines.append(
                f"{name}: image {img_id}: states {stated[1]}x{stated[0]}, {file} is "
                f"{size[0]}x{size[1]}"
            )
    return lines


def _listing(path: Path, header: str, lines: list[str]) -> str:
    """One error message: the file and ``header``, the first lines, then how many more."""
    shown = lines[:MAX_LISTED_PROBLEMS]
    more = f"\n  ... and {len(lines) - len(shown)} more" if len(lines) > len(shown) else ""
    return f"COCO annotations {path}: {header}:\n  " + "\n  ".join(shown) + more


def _count(n: int, noun: str) -> str:
    """``"1 problem"``, ``"2 problems"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _warn_unused(name: str, tally: _AnnotationTally) -> None:
    """Log what will not be trained on: one line for unused annotations, one for polygons."""
    unused = tally.total - tally.usable
    if unused:
        logger.warning(
            "%s: %d of %s not used for training: %s",
            name,
            unused,
            _count(tally.total, "annotation"),
            ", ".join(tally.unused_reasons()),
        )
    if tally.short_polygons:
        logger.warning(
            "%s: dropped %s with fewer than %d numbers (%d points) from %s, e.g. %s",
            name,
            _count(tally.short_polygons, "polygon"),
            MIN_POLYGON_NUMBERS,
            MIN_POLYGON_NUMBERS // 2,
            _count(len(tally.short_polygon_anns), "annotation"),
            ", ".join(tally.short_polygon_anns[:3]),
        )


def _is_int(value: object) -> TypeGuard[int]:
    """Whether a JSON value is an integer (``true``/``false`` are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _duplicates(ids: list[Any]) -> str:
    """``"1 (2 times), 5 (3 times)"`` for the ids that occur more than once, or ``""``."""
    counts = Counter(ids)
    dups = [f"{i} ({n} times)" for i, n in counts.items() if n > 1]
    more = f" and {len(dups) - MAX_LISTED_PROBLEMS} more" if len(dups) > MAX_LISTED_PROBLEMS else ""
    return ", ".join(dups[:MAX_LISTED_PROBLEMS]) + more


def _check_categories(cats: list[Any], name: str, problems: list[str]) -> dict[int, str]:
    """Category names by id; each problem (bad entry, duplicate ids) goes to ``problems``."""
    if not cats:
        problems.append(f"{name}: expected categories, found none")
    names: dict[int, str] = {}
    for k, cat in enumerate(cats):
        if not isinstance(cat, dict) or not _is_int(cat.get("id")) or "name" not in cat:
            problems.append(f"{name}: categories[{k}] is {cat!r:.80}; expected {{id, name}}")
            continue
        names[cat["id"]] = str(cat["name"])
    dups = _duplicates([c["id"] for c in cats if isinstance(c, dict) and _is_int(c.get("id"))])
    if dups:
        problems.append(f"{name}: duplicate category ids: {dups}")
    ids_by_name: dict[str, list[int]] = {}
    for cat_id, cat_name in names.items():
        ids_by_name.setdefault(cat_name, []).append(cat_id)
    shared = [
        f"{n!r} (ids {', '.join(map(str, ids))})" for n, ids in ids_by_name.items() if len(ids) > 1
    ]
    if shared:
        # Two classes of one name: the model could not tell them apart by name, and a
        # pipeline's `classes: [name]` would pick both.
        problems.append(
            f"{name}: categories share a name: {', '.join(shared)}; expected one category per "
            "name (merge them, or rename one)"
        )
    return names


def _check_images(images: list[Any], name: str, problems: list[str]) -> dict[int, dict[str, Any]]:
    """Image entries by id; each problem (bad entry, duplicate ids) goes to ``problems``."""
    if not images:
        problems.append(f"{name}: expected images, found none")
    by_id: dict[int, dict[str, Any]] = {}
    for k, info in enumerate(images):
        if not isinstance(info, dict) or not _is_int(info.get("id")):
            problems.append(f"{name}: images[{k}] has no integer id: {info!r:.80}")
            continue
        where = f"{name}: image {info['id']}"
        file_name = info.get("file_name")
        if not isinstance(file_name, str) or not file_name:
            problems.append(f"{where}: file_name {file_name!r}; expected a path under the images")
            continue
        for key in ("width", "height"):
            value = info.get(key)
            if value is not None and not (_is_int(value) and value > 0):
                problems.append(f"{where}: {key} {value!r}; expected a positive integer")
        by_id[info["id"]] = info
    dups = _duplicates([i["id"] for i in images if isinstance(i, dict) and _is_int(i.get("id"))])
    if dups:
        problems.append(f"{name}: duplicate image ids: {dups}")
    return by_id


def _check_annotations(
    anns: list[Any],
    images: dict[int, dict[str, Any]],
    cat_names: dict[int, str],
    name: str,
    problems: list[str],
) -> _AnnotationTally:
    """Check every annotation; tally how each is used, each problem goes to ``problems``.

    Sets a missing or null ``iscrowd`` to 0 in place. Segmentations of crowd annotations and of
    annotations whose image is not in the file are not checked: they are not used.
    """
    tally = _AnnotationTally(total=len(anns))
    for k, ann in enumerate(anns):
        if not isinstance(ann, dict) or not _is_int(ann.get("id")) or "image_id" not in ann:
            problems.append(f"{name}: annotations[{k}] has no integer id or no image_id")
            continue
        img_id = ann["image_id"]
        where = f"{name}: annotation {ann['id']} (image {img_id})"
        if ann.get("category_id") not in cat_names:
            problems.append(
                f"{where}: category_id {ann.get('category_id')!r} is not among the categories "
                f"(ids {sorted(cat_names)})"
            )
            continue
        if ann.get("iscrowd") is None:
            ann["iscrowd"] = 0
        if ann["iscrowd"] not in (0, 1):
            problems.append(f"{where}: iscrowd {ann['iscrowd']!r}; expected 0 or 1")
            continue
        if ann["iscrowd"]:
            tally.crowd += 1
            continue
        info = images.get(img_id)
        if info is None:
            tally.no_image += 1
            continue
        if not ann.get("segmentation"):
            tally.no_segmentation += 1
            continue
        try:
            check = _check_segmentation(ann["segmentation"], _stated_hw(info))
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if check.short_polygons:
            tally.short_polygons += check.short_polygons
            tally.short_polygon_anns.append(f"annotation {ann['id']} (image {img_id})")
        if check.zero_area:
            tally.zero_area += 1
        else:
            tally.usable += 1
            tally.usable_categories.add(ann["category_id"])
    dups = _duplicates([a["id"] for a in anns if isinstance(a, dict) and _is_int(a.get("id"))])
    if dups:
        problems.append(f"{name}: duplicate annotation ids: {dups}")
    return tally


def _stated_hw(info: dict[str, Any]) -> tuple[int, int] | None:
    """The image's (height, width) when its entry gives both, else None."""
    h, w = info.get("height"), info.get("width")
    return (h, w) if _is_int(h) and _is_int(w) else None


def _check_segmentation(seg: Any, image_hw: tuple[int, int] | None) -> _SegmentationCheck:
    """Check a non-empty segmentation: a list of polygons or an RLE dict.

    Args:
        seg: the annotation's ``segmentation``.
        image_hw: the image's (height, width) when its entry states them.

    Raises:
        ValueError: what is wrong, without the annotation's name (the caller adds it).
    """
    if isinstance(seg, list):
        return _check_polygons(seg, image_hw)
    if isinstance(seg, dict):
        return _check_rle(seg, image_hw)
    raise ValueError(
        f"segmentation is a {type(seg).__name__}; expected a list of polygons "
        "[[x1, y1, x2, y2, ...], ...] or an RLE {'size': [height, width], 'counts': ...}"
    )


def _check_polygons(
    polygons: list[Any], image_hw: tuple[int, int] | None = None
) -> _SegmentationCheck:
    """Check a non-empty polygon list ``[[x1, y1, x2, y2, ...], ...]``.

    Polygons with fewer than :data:`MIN_POLYGON_NUMBERS` numbers are counted (the decoder
    drops them); an annotation made only of such polygons is an error. With the image's size
    known, a polygon wholly outside the image covers none of its pixels: it adds no area (an
    annotation of only such polygons is counted as zero-area, not trained on as an empty mask).
    """
    if all(isinstance(v, (int, float)) for v in polygons):
        raise ValueError(
            f"segmentation is a flat list of {len(polygons)} numbers; expected a list of "
            "polygons [[x1, y1, x2, y2, ...], ...]"
        )
    short: list[int] = []
    area = 0.0
    for i, poly in enumerate(polygons):
        xy = _polygon_numbers(poly, i)
        if xy.size < MIN_POLYGON_NUMBERS:
            short.append(i)
        elif area == 0.0 and not _outside(xy, image_hw):  # one polygon with an area will do
            area = _polygon_area(xy)
    if len(short) == len(polygons):
        more = f" (and {len(short) - 1} more as short)" if len(short) > 1 else ""
        raise ValueError(
            f"polygon {short[0]} has {len(polygons[short[0]])} numbers; expected at least "
            f"{MIN_POLYGON_NUMBERS} ({MIN_POLYGON_NUMBERS // 2} points){more}"
        )
    return _SegmentationCheck(zero_area=area == 0.0, short_polygons=len(short))


def _outside(xy: npt.NDArray[np.float64], image_hw: tuple[int, int] | None) -> bool:
    """Whether a polygon (flat x, y pairs) lies wholly outside an image of ``image_hw``."""
    if image_hw is None:
        return False
    height, width = image_hw
    x, y = xy[0::2], xy[1::2]
    return bool(x.max() <= 0 or y.max() <= 0 or x.min() >= width or y.min() >= height)


def _polygon_numbers(poly: Any, index: int) -> npt.NDArray[np.float64]:
    """Polygon ``index`` as a flat float64 array; raises ValueError unless finite x, y pairs."""
    expected = "expected a list of numbers [x1, y1, x2, y2, ...]"
    if not isinstance(poly, list):
        raise ValueError(f"polygon {index} is {poly!r:.40}; {expected}")
    try:
        # As pycocotools converts it when decoding (so a numeric string passes there and here).
        xy = np.asarray(poly, dtype=np.float64)
    except (TypeError, ValueError):  # a word, a dict, ragged nesting
        raise ValueError(f"polygon {index} is {poly!r:.40}; {expected}") from None
    if xy.ndim != 1:
        raise ValueError(f"polygon {index} is {poly!r:.40}; {expected}")
    if not np.isfinite(xy).all():  # null converts to NaN
        raise ValueError(f"polygon {index} holds a null, NaN or infinite number")
    if xy.size >= MIN_POLYGON_NUMBERS and xy.size % 2:
        raise ValueError(f"polygon {index} has {xy.size} numbers; expected x, y pairs")
    return xy


def _polygon_area(xy: npt.NDArray[np.float64]) -> float:
    """Area of a polygon given as flat x, y pairs (shoelace formula)."""
    x, y = xy[0::2], xy[1::2]
    closing = x[-1] * y[0] - x[0] * y[-1]  # the edge from the last point back to the first
    return abs(float(x[:-1] @ y[1:] - x[1:] @ y[:-1] + closing)) / 2


def _check_rle(rle: dict[str, Any], image_hw: tuple[int, int] | None) -> _SegmentationCheck:
    """Check an RLE ``{'size': [height, width], 'counts': str | list[int]}``.

    ``size`` must be the image's (height, width) when its entry gives them (images without
    them are checked against the file when read); uncompressed run lengths must add up to
    height x width.
    """
    lacks = [key for key in ("size", "counts") if key not in rle]
    if lacks:
        raise ValueError(
            f"RLE segmentation lacks {' and '.join(lacks)}; expected "
            "{'size': [height, width], 'counts': ...}"
        )
    size = rle["size"]
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) for v in size)):
        raise ValueError(f"RLE size {size!r:.40}; expected [height, width]")
    if image_hw is not None and tuple(size) != image_hw:
        raise ValueError(
            f"RLE size {size} differs from the image's [height, width] {list(image_hw)}"
        )
    counts = rle["counts"]
    if isinstance(counts, str):
        runs = _compressed_runs(counts)
        if any(run < 0 for run in runs) or sum(runs) > size[0] * size[1]:
            raise ValueError(
                "RLE counts is not a valid compressed RLE of size "
                f"{size} (pycocotools' mask.encode writes one)"
            )
        return _SegmentationCheck(zero_area=sum(runs[1::2]) == 0, short_polygons=0)
    if not isinstance(counts, list) or not all(_is_int(c) and c >= 0 for c in counts):
        raise ValueError(
            "RLE counts: expected a string (compressed RLE) or a list of non-negative run "
            "lengths (uncompressed RLE)"
        )
    if sum(counts) != size[0] * size[1]:
        raise ValueError(
            f"uncompressed RLE run lengths add up to {sum(counts)}; expected height x width = "
            f"{size[0] * size[1]}"
        )
    return _SegmentationCheck(zero_area=sum(counts[1::2]) == 0, short_polygons=0)


def _compressed_runs(counts: str) -> list[int]:
    """The run lengths of a compressed COCO RLE string (pycocotools' ``rleFrString``): each run
    in 5-bit groups, lowest first, as characters from ``0`` (0x20 marks a group that another
    follows; the last group's 0x10 bit is the sign), from the third run on as the difference
    to the run two before. Garbage decodes to negative or too many pixels (the caller checks),
    or ends inside a run.

    Raises:
        ValueError: the string ends inside a run, or holds a character below ``0``.
    """
    runs: list[int] = []
    pos = 0
    while pos < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(counts):
                raise ValueError("RLE counts ends inside a run; expected a compressed RLE string")
            code = ord(counts[pos]) - 48
            if code < 0:
                raise ValueError(f"RLE counts holds {counts[pos]!r}; expected a compressed RLE")
            value |= (code & 0x1F) << shift
            more = bool(code & 0x20)
            pos += 1
            shift += 5
            if not more and code & 0x10:
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs

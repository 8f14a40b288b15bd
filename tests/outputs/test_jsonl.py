"""JSONL detections: one line per frame, masks as crop RLE that decode to the same pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from streamseg.outputs.jsonl import JsonlWriter
from streamseg.rle import decode_crop_rle
from streamseg.types import Frame


def _frame(index: int) -> Frame:
    return Frame("cam", index, index / 25.0, 1000.0 + index, np.zeros((48, 64, 3), np.uint8))


def _detections() -> sv.Detections:
    dense = np.zeros((2, 48, 64), dtype=bool)
    dense[0, 5:20, 10:30] = True
    dense[1, 30:40, 40:60] = True
    dense[1, 35, 45] = False
    xyxy = np.array([[10, 5, 29, 19], [40, 30, 59, 39]], dtype=np.float32)
    return sv.Detections(
        xyxy=xyxy,
        confidence=np.array([0.9, 0.4], np.float32),
        class_id=np.array([0, 2]),
        mask=sv.CompactMask.from_dense(dense, xyxy, image_shape=(48, 64)),
        data={"class_name": np.array(["person", "truck"])},
    )


def test_lines_and_masks_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "det.jsonl"
    writer = JsonlWriter(path, masks=True)
    detections = _detections()
    writer.write(_frame(0), detections)
    writer.write(_frame(1), sv.Detections.empty())
    writer.close()

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["index"] for line in lines] == [0, 1]
    assert lines[0]["pts_s"] == 0.0 and lines[1]["pts_s"] == 0.04
    assert (lines[0]["width"], lines[0]["height"]) == (64, 48)
    first = lines[0]["detections"]
    assert [d["class_name"] for d in first] == ["person", "truck"]
    assert first[1]["class_id"] == 2
    assert first[0]["xyxy"] == [10.0, 5.0, 29.0, 19.0]
    dense = np.asarray(detections.mask)
    for i, record in enumerate(first):
        mask = record["mask"]
        crop = decode_crop_rle(mask["counts"], tuple(mask["size_hw"]))
        x1, y1 = mask["offset_xy"]
        h, w = crop.shape
        rebuilt = np.zeros((48, 64), dtype=bool)
        rebuilt[y1 : y1 + h, x1 : x1 + w] = crop
        np.testing.assert_array_equal(rebuilt, dense[i])
    assert lines[1]["detections"] == []


def test_masks_off_and_tracker_ids(tmp_path: Path) -> None:
    path = tmp_path / "det.jsonl"
    writer = JsonlWriter(path, masks=False)
    detections = _detections()
    detections.tracker_id = np.array([7, 9])
    writer.write(_frame(0), detections)
    writer.close()
    record = json.loads(path.read_text())["detections"][0]
    assert "mask" not in record
    assert record["tracker_id"] == 7


def test_a_non_finite_confidence_is_written_as_null(tmp_path: Path) -> None:
    """Regression: Python's json wrote a bare NaN, which strict readers (jq, JavaScript, Go)
    reject; a custom stage can hand such a confidence to the sinks."""
    path = tmp_path / "det.jsonl"
    writer = JsonlWriter(path)
    detections = _detections()
    detections.confidence = np.array([np.nan, np.inf], np.float32)
    writer.write(_frame(0), detections)
    writer.close()
    line = path.read_text().strip()
    record = json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in {line}"))
    assert [d["confidence"] for d in record["detections"]] == [None, None]


def test_the_last_runs_results_go_only_when_a_new_line_comes(tmp_path: Path) -> None:
    """Regression: the file was emptied at start, so a run whose input was missing (nothing
    analysed) wiped the last run's results."""
    path = tmp_path / "det.jsonl"
    path.write_text('{"last": "run"}\n')
    JsonlWriter(path).close()  # a run that analysed nothing
    assert path.read_text() == '{"last": "run"}\n'

    writer = JsonlWriter(path)  # a run that did
    writer.write(_frame(0), _detections())
    writer.write(_frame(1), _detections())
    writer.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["index"] for line in lines] == [0, 1]


def test_a_path_that_cannot_be_written_fails_at_once(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(IsADirectoryError):
        JsonlWriter(tmp_path / "out")

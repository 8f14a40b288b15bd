"""The MOTS sink: disjoint masks, tracked objects only, 1-based frames, read back by TrackEval."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest
import supervision as sv
from helpers.fake_yolo_seg import FakeYoloSeg, build_outputs, save_torchscript, ultralytics_metadata
from pycocotools import mask as mask_utils

from streamseg.config import OutputsConfig, load_pipeline_text
from streamseg.outputs.mots import OTHER_CLASS_BASE, MotsWriter, mots_rows
from streamseg.runtime.analytics import AnalyticsStage
from streamseg.runtime.pipeline import Pipeline
from streamseg.synth import MOTS_CLASS_IDS
from streamseg.track.evaluate import ALL_CLASSES, evaluate_tracking
from streamseg.types import Frame

H, W = 40, 60


def decode(height: int, width: int, counts: str) -> np.ndarray:
    return mask_utils.decode({"size": [height, width], "counts": counts.encode()}).astype(bool)


def dense_detections() -> sv.Detections:
    """Three overlapping rectangles: ids 5 (conf 0.5), 6 (0.9), -1 (0.99, untracked)."""
    masks = np.zeros((3, H, W), dtype=bool)
    masks[0, 5:20, 5:30] = True
    masks[1, 10:25, 20:40] = True
    masks[2, 0:40, 0:60] = True
    return sv.Detections(
        xyxy=np.array([[5, 5, 29, 19], [20, 10, 39, 24], [0, 0, 59, 39]], dtype=np.float32),
        mask=masks,
        confidence=np.array([0.5, 0.9, 0.99], dtype=np.float32),
        class_id=np.array([0, 3, 1]),
        tracker_id=np.array([5, 6, -1]),
        data={"class_name": np.array(["person", "cow", "excavator"])},
    )


@pytest.mark.parametrize("compact", [False, True])
def test_masks_are_disjoint_and_the_surer_object_keeps_the_overlap(compact: bool) -> None:
    detections = dense_detections()
    if compact:
        detections.mask = sv.CompactMask.from_dense(detections.mask, detections.xyxy, (H, W))
    rows = mots_rows(detections, (W, H))
    assert [(r[0], r[1]) for r in rows] == [(6, MOTS_CLASS_IDS["cow"]), (5, 2)]
    cow, person = (decode(H, W, r[2]) for r in rows)
    assert not (cow & person).any()
    assert cow.sum() == 15 * 20  # untouched: highest confidence of the tracked ones
    assert person.sum() == 15 * 25 - 10 * 10  # lost the overlap rows 10:20, cols 20:30
    assert detections.tracker_id.tolist() == [5, 6, -1]  # input not mutated


def test_boxes_paint_when_there_is_no_mask_and_names_outside_the_table() -> None:
    detections = sv.Detections(
        xyxy=np.array([[2.0, 3.0, 11.0, 7.0], [50.5, 30.2, 70.0, 50.0]], dtype=np.float32),
        class_id=np.array([7, 2]),
        tracker_id=np.array([1, 2]),
    )
    rows = mots_rows(detections, (W, H))
    assert [r[1] for r in rows] == [OTHER_CLASS_BASE + 7, OTHER_CLASS_BASE + 2]
    first, second = (decode(H, W, r[2]) for r in rows)
    assert first.sum() == 10 * 5 and first[3:8, 2:12].all()
    assert second.sum() == (W - 50) * (H - 30)  # clipped to the frame


def test_a_repeated_id_is_written_once_and_empty_masks_not_at_all() -> None:
    masks = np.zeros((3, H, W), dtype=bool)
    masks[0, 0:10, 0:10] = True
    masks[1, 20:30, 20:30] = True
    masks[2, 0:5, 0:5] = True  # inside mask 0, which is surer: nothing left to write
    detections = sv.Detections(
        xyxy=np.array([[0, 0, 9, 9], [20, 20, 29, 29], [0, 0, 4, 4]], dtype=np.float32),
        mask=masks,
        confidence=np.array([0.9, 0.8, 0.7], dtype=np.float32),
        tracker_id=np.array([3, 3, 4]),
    )
    assert [r[0] for r in mots_rows(detections, (W, H))] == [3]


def test_writer_numbers_frames_from_one_and_skips_untracked(tmp_path: Path) -> None:
    writer = MotsWriter(tmp_path / "mots")
    image = np.zeros((H, W, 3), np.uint8)
    writer.write(Frame("cam", 0, 0.0, 0.0, image), dense_detections())
    writer.write(Frame("cam", 1, 0.1, 0.0, image), sv.Detections.empty())
    untracked = dense_detections()
    untracked.tracker_id = None
    writer.write(Frame("cam", 2, 0.2, 0.0, image), untracked)
    writer.write(Frame("cam", 3, 0.3, 0.0, image), dense_detections())
    writer.write(Frame("gate", 7, 0.3, 0.0, image), dense_detections()[1:2])
    writer.close_stream("cam")
    writer.close()
    cam = [line.split(" ") for line in (tmp_path / "mots" / "cam.txt").read_text().splitlines()]
    assert [(r[0], r[1], r[3], r[4]) for r in cam] == [
        ("1", "6", str(H), str(W)),
        ("1", "5", str(H), str(W)),
        ("4", "6", str(H), str(W)),
        ("4", "5", str(H), str(W)),
    ]
    gate = (tmp_path / "mots" / "gate.txt").read_text().split(" ")
    assert gate[:3] == ["8", "6", str(MOTS_CLASS_IDS["cow"])]
    assert writer.rows_written == {"cam": 4, "gate": 1}
    with pytest.raises(RuntimeError, match="closed"):
        writer.write(Frame("cam", 4, 0.4, 0.0, image), dense_detections())


@pytest.mark.parametrize(
    ("section", "error"),
    [
        ({"dir": "runs/mots"}, None),
        ({}, None),
        ({"dir": ""}, "at least 1 character"),
        ({"path": "x"}, "Extra inputs are not permitted"),
    ],
)
def test_outputs_mots_section(section: dict[str, Any], error: str | None) -> None:
    if error is None:
        config = OutputsConfig.model_validate({"mots": section})
        assert config.mots is not None and config.mots.dir == section.get("dir", "out/mots")
    else:
        with pytest.raises(pydantic.ValidationError, match=error):
            OutputsConfig.model_validate({"mots": section})
    assert OutputsConfig().mots is None


class _FixedIds:
    """Stands in for a tracker: the i-th detection of every frame is track i + 1."""

    name = "fixed-ids"

    def process(self, frame: Frame, detections: sv.Detections) -> sv.Detections:
        out = detections[:]
        out.tracker_id = np.arange(1, len(out) + 1)
        return out


def test_pipeline_writes_mots_that_trackeval_reads(
    h264_file: Callable[..., Any], tmp_path: Path
) -> None:
    model = save_torchscript(
        tmp_path / "fake.torchscript", FakeYoloSeg(*build_outputs()), ultralytics_metadata()
    )
    clip = h264_file("in.mp4", frames=6, fps=10, width=96, height=64)
    text = (
        f"sources:\n  - {{id: cam, type: file, path: '{clip.path}'}}\n"
        f"model: {{weights: '{model}', device: cpu}}\n"
        f"outputs:\n  mots: {{dir: '{tmp_path / 'mots'}'}}\n"
    )

    def factory(stream_id: str) -> AnalyticsStage:
        return _FixedIds()

    summary = Pipeline(load_pipeline_text(text), stage_factories=[factory]).run()
    path = tmp_path / "mots" / "cam.txt"
    assert str(path) in summary.outputs
    rows = [line.split(" ") for line in path.read_text().splitlines()]
    assert sorted({int(r[0]) for r in rows}) == list(range(1, 7))
    for number in range(1, 7):
        masks = [decode(64, 96, r[5]) for r in rows if r[0] == str(number)]
        # The fake network plants 4 objects; A and B overlap, so painting must split them.
        assert len(masks) == 4
        assert (np.sum(masks, axis=0) <= 1).all()
    # TrackEval refuses overlapping masks: reading the file as ground truth and prediction
    # proves it is legal, and scores it perfect.
    gt = tmp_path / "gt" / "cam" / "gt"
    gt.mkdir(parents=True)
    shutil.copy(path, gt / "gt.txt")
    scores = evaluate_tracking(tmp_path / "gt", tmp_path / "mots")
    assert scores.combined[ALL_CLASSES].hota == pytest.approx(1.0)
    assert scores.combined[ALL_CLASSES].gt_dets == 24


def test_a_box_wholly_off_the_frame_paints_nothing() -> None:
    """Regression: a mask-less box wholly left of and above the frame got negative slice ends
    (counted from the far edge) and painted most of the frame, so the object behind it lost
    every pixel and was left out of the file."""
    detections = sv.Detections(
        xyxy=np.array([[-30.0, -20.0, -5.0, -3.0], [10.0, 10.0, 19.0, 19.0]], dtype=np.float32),
        confidence=np.array([0.9, 0.5], dtype=np.float32),
        class_id=np.array([0, 0]),
        tracker_id=np.array([1, 2]),
    )
    rows = {r[0]: decode(H, W, r[2]) for r in mots_rows(detections, (W, H))}
    assert 1 not in rows  # no pixel of its box is inside the frame
    assert rows[2].sum() == 100 and rows[2][10:20, 10:20].all()

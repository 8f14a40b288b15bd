"""TrackEval scoring of MOTS tracks: what the figures do when tracks go wrong, and the errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from streamseg.outputs.mots import MotsWriter
from streamseg.synth import SceneRenderer, write_mots, write_seqinfo
from streamseg.track.evaluate import (
    ALL_CLASSES,
    TrackingEvalError,
    evaluate_tracking,
    find_pred_sequences,
)
from streamseg.types import Frame

RESOLUTION_WH = (320, 180)
Tracks = list[tuple[float, sv.Detections]]
FRAMES = 24


def render_gt(
    folder: Path, kind: str = "pitch", seed: int = 3
) -> list[tuple[float, sv.Detections]]:
    """Write one sequence's ground truth as ``streamseg synth`` does; return its detections."""
    renderer = SceneRenderer(kind, seed, RESOLUTION_WH, difficulty="occlusion")
    frames = list(renderer.frames(FRAMES))
    write_mots(frames, folder / "gt" / "gt.txt")
    write_seqinfo(folder / "seqinfo.ini", folder.name, FRAMES, 15.0, RESOLUTION_WH)
    return [(f.pts_s, f.to_detections()) for f in frames]


def write_pred(folder: Path, stream: str, frames: list[tuple[float, sv.Detections]]) -> Path:
    """Tracks through the MOTS sink, as ``outputs.mots`` writes them."""
    writer = MotsWriter(folder)
    image = np.zeros((RESOLUTION_WH[1], RESOLUTION_WH[0], 3), np.uint8)
    for index, (pts_s, detections) in enumerate(frames):
        writer.write(Frame(stream, index, pts_s, 0.0, image), detections)
    writer.close()
    return writer.path_for(stream)


@pytest.fixture(scope="module")
def scene(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, list[tuple[float, sv.Detections]]]:
    folder = tmp_path_factory.mktemp("gt") / "pitch3"
    return folder, render_gt(folder)


def _two_persistent_ids(frames: list[tuple[float, sv.Detections]]) -> tuple[int, int]:
    common = set.intersection(*(set(d.tracker_id.tolist()) for _, d in frames))
    assert len(common) >= 2, "the scene needs two objects visible in every frame"
    a, b = sorted(common)[:2]
    return a, b


def test_ground_truth_scored_against_itself_is_perfect(scene, tmp_path: Path) -> None:
    folder, frames = scene
    for pred in (folder, write_pred(tmp_path / "pred", "pitch3", frames).parent):
        scores = evaluate_tracking(folder, pred)
        combined = scores.combined[ALL_CLASSES]
        assert combined.hota == pytest.approx(1.0)
        assert combined.assa == pytest.approx(1.0) and combined.idf1 == pytest.approx(1.0)
        assert combined.motsa == pytest.approx(1.0) and combined.idsw == 0
        assert combined.gt_dets == combined.pred_dets == sum(len(d) for _, d in frames)
        assert list(scores.sequences[ALL_CLASSES]) == ["pitch3"]


def test_identity_swap_mid_sequence_counts_switches(scene, tmp_path: Path) -> None:
    folder, frames = scene
    a, b = _two_persistent_ids(frames)
    swapped = []
    for k, (pts_s, detections) in enumerate(frames):
        out = detections[:]
        if k >= FRAMES // 2:
            ids = out.tracker_id.copy()
            ids[out.tracker_id == a], ids[out.tracker_id == b] = b, a
            out.tracker_id = ids
        swapped.append((pts_s, out))
    write_pred(tmp_path, "pitch3", swapped)
    combined = evaluate_tracking(folder, tmp_path).combined[ALL_CLASSES]
    assert combined.idsw >= 2
    assert combined.assa < 0.95
    assert combined.deta == pytest.approx(1.0)  # every mask is still found


def test_missing_objects_lower_detection_accuracy(scene, tmp_path: Path) -> None:
    folder, frames = scene
    a, _ = _two_persistent_ids(frames)
    write_pred(tmp_path, "pitch3", [(t, d[d.tracker_id != a]) for t, d in frames])
    combined = evaluate_tracking(folder, tmp_path).combined[ALL_CLASSES]
    assert combined.deta < 0.97
    assert combined.gt_dets - combined.pred_dets == FRAMES
    assert combined.idsw == 0 and combined.assa == pytest.approx(1.0)


def test_class_mistake_is_a_miss_even_class_agnostic(scene, tmp_path: Path) -> None:
    """Regression: the class-agnostic key must not match a prediction of another class."""
    folder, frames = scene
    relabelled = []
    for pts_s, detections in frames:
        out = detections[:]
        out.data["class_name"] = np.array(["cow"] * len(out))
        relabelled.append((pts_s, out))
    write_pred(tmp_path, "pitch3", relabelled)
    scores = evaluate_tracking(folder, tmp_path, classes=[ALL_CLASSES, "person", "cow"])
    assert scores.combined[ALL_CLASSES].hota == 0.0
    assert scores.combined["person"].pred_dets == 0 and scores.combined["person"].gt_dets > 0
    assert scores.combined["cow"].gt_dets == 0 and scores.combined["cow"].pred_dets > 0


def test_per_class_scores_split_the_objects(scene) -> None:
    folder, frames = scene
    scores = evaluate_tracking(folder, folder, classes=["person", "ball"])
    assert scores.classes == ("person", "ball")
    total = sum(len(d) for _, d in frames)
    assert scores.combined["person"].gt_dets + scores.combined["ball"].gt_dets == total
    assert scores.combined["person"].hota == pytest.approx(1.0)


def test_folders_of_sequences_pair_by_name(tmp_path: Path) -> None:
    gt = tmp_path / "gt"
    frames_a = render_gt(gt / "a", "yard", 1)
    frames_b = render_gt(gt / "b", "field", 2)
    pred = tmp_path / "pred"
    write_pred(pred, "a", frames_a)
    write_pred(pred, "b", [(t, d[: len(d) // 2]) for t, d in frames_b])
    scores = evaluate_tracking(gt, pred)
    by_seq = scores.sequences[ALL_CLASSES]
    assert by_seq["a"].hota == pytest.approx(1.0) and by_seq["b"].deta < 0.9
    combined = scores.combined[ALL_CLASSES]
    assert combined.gt_dets == by_seq["a"].gt_dets + by_seq["b"].gt_dets
    assert by_seq["b"].deta < combined.deta < 1.0
    assert set(find_pred_sequences(gt)) == {"a", "b"}  # the gt layout reads as predictions too

    (pred / "b.txt").rename(pred / "c.txt")
    with pytest.raises(
        TrackingEvalError,
        match=r"mismatched sequences: no prediction for b; "
        r"no ground truth for c",
    ):
        evaluate_tracking(gt, pred)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: (root / "nope", root / "gt"), r"--gt .*nope: no such directory"),
        (lambda root: (root / "empty", root / "gt"), r"--gt .*empty: no ground truth found"),
        (lambda root: (root / "gt", root / "nope"), r"--pred .*nope: no such file or directory"),
        (lambda root: (root / "gt", root / "empty"), r"--pred .*empty: no predictions found"),
        (lambda root: (root / "gt", root / "bad"), r"x.txt:1: expected '<frame> <id>"),
        (lambda root: (root / "gt", root / "late"), r"invalid timesteps"),
        (lambda root: (root / "gt", root / "overlap"), r"overlapping masks"),
    ],
)
def test_bad_input_gives_a_clear_error(tmp_path: Path, make, message: str) -> None:
    render_gt(tmp_path / "gt", "pitch", 5)
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.txt").write_text("frame one 2 180 320 abc\n")
    (tmp_path / "late").mkdir()
    gt_line = (tmp_path / "gt" / "gt" / "gt.txt").read_text().splitlines()[0].split(" ")
    late = " ".join([str(FRAMES + 1), *gt_line[1:]])
    (tmp_path / "late" / "x.txt").write_text(late + "\n")
    (tmp_path / "overlap").mkdir()
    first = " ".join(gt_line)
    second = " ".join([gt_line[0], "99999", *gt_line[2:]])
    (tmp_path / "overlap" / "x.txt").write_text(f"{first}\n{second}\n")
    gt, pred = make(tmp_path)
    with pytest.raises(TrackingEvalError, match=message):
        evaluate_tracking(gt, pred)


def test_unknown_class_is_refused(scene) -> None:
    folder, _ = scene
    with pytest.raises(TrackingEvalError, match=r"classes: expected one or more of all, person"):
        evaluate_tracking(folder, folder, classes=["dog"])

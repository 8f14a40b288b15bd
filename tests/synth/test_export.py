"""Exporters, read back by the tools that consume them: PyAV, TrackEval and pycocotools."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import trackeval
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from streamseg.synth import (
    CLASS_NAMES,
    MOTS_CLASS_IDS,
    SceneRenderer,
    SynthFrame,
    render_scene_video,
    write_coco,
    write_mots,
    write_seqinfo,
    write_video,
)

RES = (192, 112)


@pytest.fixture(scope="module")
def frames() -> list[SynthFrame]:
    """Busy pitch frames: people (TrackEval's pedestrian class) crossing and occluding."""
    renderer = SceneRenderer("pitch", 3, RES, difficulty="occlusion", num_objects=12)
    return list(renderer.frames(6))


def test_write_video_decodes_with_pyav(tmp_path: Path, frames: list[SynthFrame]) -> None:
    path = tmp_path / "clip.mp4"
    assert write_video(frames, path, fps=15.0) == len(frames)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.codec_context.width, stream.codec_context.height) == RES
        decoded = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
        assert stream.average_rate == 15
    assert len(decoded) == len(frames)
    for got, want in zip(decoded, frames, strict=True):
        err = np.abs(got.astype(int) - want.image.astype(int)).mean()
        assert err < 8.0  # lossy, but the same picture


def test_write_video_rejects_odd_sizes_and_bad_codecs(tmp_path: Path) -> None:
    frame = next(SceneRenderer("field", 0, (97, 64)).frames(1))
    with pytest.raises(ValueError, match="even width and height, got 97x64"):
        write_video([frame], tmp_path / "odd.mp4", fps=10.0)
    with pytest.raises(ValueError, match="codec must be an encoder PyAV has"):
        write_video([frame], tmp_path / "x.mp4", fps=10.0, codec="no-such-codec")


def _mots_challenge(
    tmp_path: Path, gt_text: Path, seq_len: int
) -> trackeval.datasets.MOTSChallenge:
    """A MOTSChallenge dataset laid out the way TrackEval expects, the GT doubling as tracker."""
    seq = "synth-01"
    gt_root = tmp_path / "gt"
    seq_dir = gt_root / "MOTS-train" / seq
    (seq_dir / "gt").mkdir(parents=True)
    (seq_dir / "gt" / "gt.txt").write_text(gt_text.read_text())
    write_seqinfo(seq_dir / "seqinfo.ini", seq, seq_len, 15.0, RES)
    (gt_root / "seqmaps").mkdir()
    (gt_root / "seqmaps" / "MOTS-train.txt").write_text(f"name\n{seq}\n")
    tracker_dir = tmp_path / "trackers" / "MOTS-train" / "oracle" / "data"
    tracker_dir.mkdir(parents=True)
    (tracker_dir / f"{seq}.txt").write_text(gt_text.read_text())
    config = {
        "GT_FOLDER": str(gt_root),
        "TRACKERS_FOLDER": str(tmp_path / "trackers"),
        "SPLIT_TO_EVAL": "train",
        "PRINT_CONFIG": False,
    }
    return trackeval.datasets.MOTSChallenge(config)


def test_write_mots_is_read_by_trackeval_mots_challenge(
    tmp_path: Path, frames: list[SynthFrame]
) -> None:
    gt = tmp_path / "gt.txt"
    write_mots(frames, gt)
    dataset = _mots_challenge(tmp_path, gt, len(frames))
    raw = dataset._load_raw_file("oracle", "synth-01", is_gt=True)  # also checks no overlaps
    assert raw["num_timesteps"] == len(frames)
    for t, frame in enumerate(frames):
        assert len(raw["gt_dets"][t]) == len(frame.objects)
        for obj, oid, cls, rle in zip(
            frame.objects, raw["gt_ids"][t], raw["gt_classes"][t], raw["gt_dets"][t], strict=True
        ):
            assert cls == MOTS_CLASS_IDS[obj.class_name]
            assert oid == cls * 1000 + obj.track_id
            assert np.array_equal(mask_utils.decode(rle).astype(bool), obj.mask)

    # The whole evaluation runs on our files: people are TrackEval's pedestrians, so the
    # ground truth scored against itself is perfect.
    evaluator = trackeval.Evaluator(
        {
            "USE_PARALLEL": False,
            "PRINT_RESULTS": False,
            "PRINT_CONFIG": False,
            "TIME_PROGRESS": False,
            "OUTPUT_SUMMARY": False,
            "OUTPUT_DETAILED": False,
            "PLOT_CURVES": False,
        }
    )
    results, _ = evaluator.evaluate([dataset], [trackeval.metrics.CLEAR({"PRINT_CONFIG": False})])
    clear = results["MOTSChallenge"]["oracle"]["COMBINED_SEQ"]["pedestrian"]["CLEAR"]
    people = sum(o.class_name == "person" for f in frames for o in f.objects)
    assert people > 10
    assert clear["CLR_TP"] == people
    assert clear["MOTA"] == pytest.approx(1.0)


def test_write_mots_first_frame_zero_is_read_by_kitti_mots(
    tmp_path: Path, frames: list[SynthFrame]
) -> None:
    seq = "0000"
    (tmp_path / "gt" / "label_02").mkdir(parents=True)
    write_mots(frames, tmp_path / "gt" / "label_02" / f"{seq}.txt", first_frame=0)
    (tmp_path / "trk" / "oracle" / "data").mkdir(parents=True)
    write_mots(frames, tmp_path / "trk" / "oracle" / "data" / f"{seq}.txt", first_frame=0)
    dataset = trackeval.datasets.KittiMOTS(
        {
            "GT_FOLDER": str(tmp_path / "gt"),
            "TRACKERS_FOLDER": str(tmp_path / "trk"),
            "SEQ_INFO": {seq: len(frames)},
            "PRINT_CONFIG": False,
        }
    )
    raw = dataset._load_raw_file("oracle", seq, is_gt=False)
    assert [len(d) for d in raw["tracker_dets"]] == [len(f.objects) for f in frames]


def test_write_mots_rejects_track_ids_past_the_stride(tmp_path: Path) -> None:
    frame = next(SceneRenderer("field", 0, RES, num_objects=1).frames(1))
    obj = frame.objects[0]
    big = SynthFrame(
        frame.index,
        frame.pts_s,
        frame.image,
        [type(obj)(1000, obj.class_id, obj.class_name, obj.mask, obj.xyxy)],
    )
    with pytest.raises(ValueError, match=r"track ids must be in 0\.\.999; got track id 1000"):
        write_mots([big], tmp_path / "gt.txt")


def test_write_coco_is_read_by_pycocotools(tmp_path: Path, frames: list[SynthFrame]) -> None:
    path = tmp_path / "coco.json"
    write_coco(frames, path, image_dir=tmp_path / "images", image_ext=".png")
    coco = COCO(str(path))
    assert [coco.cats[i]["name"] for i in sorted(coco.cats)] == list(CLASS_NAMES)
    assert sorted(coco.imgs) == list(range(1, len(frames) + 1))
    for image_id, frame in zip(sorted(coco.imgs), frames, strict=True):
        info = coco.imgs[image_id]
        stored = cv2.imread(str(tmp_path / "images" / info["file_name"]))
        assert stored is not None
        assert np.array_equal(stored, frame.image)  # PNG is lossless
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
        assert len(anns) == len(frame.objects)
        for ann, obj in zip(anns, frame.objects, strict=True):
            assert ann["category_id"] == obj.class_id + 1
            assert ann["track_id"] == obj.track_id
            assert np.array_equal(coco.annToMask(ann).astype(bool), obj.mask)
            x1, y1, x2, y2 = obj.xyxy.tolist()
            assert ann["bbox"] == [x1, y1, x2 - x1 + 1, y2 - y1 + 1]
            assert ann["area"] == int(obj.mask.sum())


def test_render_scene_video_writes_everything(tmp_path: Path) -> None:
    paths = render_scene_video("yard", 4, tmp_path / "yard-4", 5, (160, 96), 10.0, "occlusion")
    assert set(paths) == {"video", "mots", "seqinfo", "coco", "images"}
    with av.open(str(paths["video"])) as container:
        assert sum(1 for _ in container.decode(video=0)) == 5
    rows = paths["mots"].read_text().splitlines()
    assert rows and {int(r.split()[0]) for r in rows} <= set(range(1, 6))
    coco = json.loads(paths["coco"].read_text())
    assert len(coco["images"]) == 5 and len(coco["annotations"]) == len(rows)
    assert len(list(paths["images"].glob("*.jpg"))) == 5
    assert "seqLength=5" in paths["seqinfo"].read_text()
    # Same arguments, same ground truth.
    again = render_scene_video("yard", 4, tmp_path / "again", 5, (160, 96), 10.0, "occlusion")
    assert again["mots"].read_text() == paths["mots"].read_text()


def test_a_rejected_render_leaves_the_previous_one_whole(tmp_path: Path) -> None:
    """Regression: an odd size (or an fps with no video rate) was found at the first frame,
    after gt.txt had been truncated: the previous render's video then came with an empty
    ground truth, which TrackEval scores without a word."""
    out = tmp_path / "seq"
    paths = render_scene_video("pitch", 1, out, 4, RES, 10.0)
    before = {name: path.read_bytes() for name, path in paths.items() if path.is_file()}
    with pytest.raises(ValueError, match="even width and height, got 193x112"):
        render_scene_video("pitch", 2, out, 4, (193, 112), 10.0)
    with pytest.raises(ValueError, match="no video rate close enough"):
        render_scene_video("pitch", 2, out, 4, RES, 0.0004)
    assert {name: path.read_bytes() for name, path in paths.items() if path.is_file()} == before


def test_a_new_render_removes_the_frames_of_the_last(tmp_path: Path) -> None:
    """Regression: 20 old JPEGs stayed beside 10 new ones, and annotations.json's 000001.jpg
    was the old scene's frame (a fine-tune would pair masks with the wrong pictures)."""
    out = tmp_path / "seq"
    render_scene_video("pitch", 1, out, 6, RES, 10.0)
    (out / "images" / "notes.txt").write_text("not ours")
    paths = render_scene_video("pitch", 2, out, 3, RES, 10.0)
    names = sorted(p.name for p in (out / "images").iterdir())
    assert names == ["000001.jpg", "000002.jpg", "000003.jpg", "notes.txt"]
    first = cv2.imread(str(out / "images" / "000001.jpg"))
    expected = next(SceneRenderer("pitch", 2, RES, fps=10.0).frames(1)).image
    assert float(np.abs(first.astype(float) - expected).mean()) < 5.0  # JPEG noise only
    assert len(json.loads(paths["coco"].read_text())["images"]) == 3
    render_scene_video("pitch", 3, out, 2, RES, 10.0, write_images=False)
    assert sorted(p.name for p in (out / "images").iterdir()) == ["notes.txt"]
    # Emptied by a render without images, the folder goes (it stayed, empty).
    (out / "images" / "notes.txt").unlink()
    render_scene_video("pitch", 1, out, 6, RES, 10.0)
    render_scene_video("pitch", 3, out, 2, RES, 10.0, write_images=False)
    assert not (out / "images").exists()


def test_a_folder_name_outside_ascii_is_written_to_seqinfo(tmp_path: Path) -> None:
    """Regression: seqinfo.ini was written as ASCII, so 'café' failed after the whole render
    and left it empty (TrackEval reads the sequence length from it)."""
    paths = render_scene_video("pitch", 1, tmp_path / "café", 2, RES, 10.0)
    assert "name=café" in paths["seqinfo"].read_text(encoding="utf-8")
    assert "seqLength=2" in paths["seqinfo"].read_text(encoding="utf-8")

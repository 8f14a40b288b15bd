"""``streamseg demo`` (what ``make demo`` runs) end to end: the real renderer, the shipped model on
the CPU, the tracker, the rules and every output of ``pipelines/demo.yaml``, in a temporary
folder."""

from __future__ import annotations

import io
import json
from pathlib import Path

import av
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from rich.console import Console

from streamseg.rle import decode_crop_rle
from streamseg.runtime.demo import DEMO_FRAMES, DEMO_RESOLUTION_WH, demo_main

REPO = Path(__file__).resolve().parents[2]


def _demo(said: io.StringIO) -> int:
    """``streamseg demo`` from the current folder: the built-in pipeline (this checkout's)."""
    console = Console(file=said, width=200)
    return demo_main(console, report=console)


def _gt_masks(path: Path, frames: set[int]) -> dict[int, list[np.ndarray]]:
    """MOTS ground truth (1-based frames) as dense masks per 0-based frame index, for the
    0-based ``frames`` only."""
    masks: dict[int, list[np.ndarray]] = {}
    for line in path.read_text().splitlines():
        frame, _, _, h, w, rle = line.split(" ", 5)
        index = int(frame) - 1
        if index not in frames:
            continue
        rle_obj = {"size": [int(h), int(w)], "counts": rle.encode()}
        masks.setdefault(index, []).append(mask_utils.decode(rle_obj).astype(bool))
    return masks


def _detected_masks(record: dict, hw: tuple[int, int]) -> list[np.ndarray]:
    out = []
    for det in record["detections"]:
        if det.get("tracker_id", -1) < 1 or det.get("mask") is None:
            continue
        mask = det["mask"]
        (x, y), (h, w) = mask["offset_xy"], mask["size_hw"]
        full = np.zeros(hw, dtype=bool)
        full[y : y + h, x : x + w] = decode_crop_rle(mask["counts"], (h, w))
        out.append(full)
    return out


@pytest.mark.timeout(240)
def test_the_demo_writes_a_playable_video_whose_tracked_masks_follow_the_objects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    said = io.StringIO()
    assert _demo(said) == 0
    out = tmp_path / "out" / "demo"
    text = said.getvalue()
    assert "rendering a synthetic yard scene" in text
    assert str(Path("out/demo/annotated_yard.mp4")) in text  # it says where the video went

    with av.open(str(out / "annotated_yard.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    width, height = DEMO_RESOLUTION_WH
    assert len(frames) == DEMO_FRAMES and frames[0].shape == (height, width, 3)

    records = [json.loads(line) for line in (out / "detections.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(DEMO_FRAMES))
    sampled = records[::10]
    truth = _gt_masks(out / "scene" / "gt" / "gt.txt", {r["index"] for r in sampled})
    found = total = 0
    for record in sampled:
        detected = _detected_masks(record, (height, width))
        for gt in truth.get(record["index"], []):
            if gt.sum() < 400:  # far and small objects are #3's accuracy, not the demo's
                continue
            total += 1
            ious = [(gt & d).sum() / (gt | d).sum() for d in detected]
            found += max(ious, default=0.0) >= 0.5
    assert total >= 20 and found / total >= 0.8, (found, total)

    events = (out / "events.jsonl").read_text().splitlines()
    assert events and all(json.loads(e)["rule_id"] for e in events)

    clips = sorted((out / "clips").rglob("*.mp4"))
    assert clips and f"wrote {Path('out/demo/clips')}/ ({len(clips)} files)" in text

    # A second run reuses the scene and replaces (not appends to) the events log, and its
    # clips, snapshots and recordings replace the first run's (they piled up).
    said = io.StringIO()
    assert _demo(said) == 0
    assert "reusing the rendered scene" in said.getvalue()
    assert len((out / "events.jsonl").read_text().splitlines()) == len(events)
    assert len(sorted((out / "clips").rglob("*.mp4"))) == len(clips)


def test_the_demo_finds_its_pipeline_outside_the_repository_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: ``streamseg demo`` run anywhere but the repository root (a container's
    working folder, a user's) said pipelines/demo.yaml was not found."""
    from streamseg.runtime import demo

    monkeypatch.chdir(tmp_path)
    found = [p for p in demo.demo_pipeline_candidates() if p.exists()]
    assert found[0].resolve() == REPO / "pipelines" / "demo.yaml"

    nowhere = [tmp_path / "a" / "demo.yaml", tmp_path / "b" / "demo.yaml"]
    monkeypatch.setattr(demo, "demo_pipeline_candidates", lambda: nowhere)
    said = io.StringIO()
    assert demo.demo_main(Console(file=said, width=300)) == 1
    assert (
        f"no demo pipeline (looked in {nowhere[0]}, {nowhere[1]}); pass --pipeline"
        in said.getvalue()
    )

"""Mask-aware tracking against the box peer on synthetic sequences (issue #4).

Accuracy: for every scene kind (yard, field, pitch) and difficulty (``easy``, ``occlusion``),
``--seeds`` scenes of ``--frames`` frames at 15 fps and 640x360 (seeds from 4000, which no
training sample uses). Two kinds of detections, computed once per frame and shared by every
tracker:

- ``degraded``: the ground truth spoiled by :func:`degrade` (seeded; parameters in
  :data:`DEGRADE`, fixed up-front): missed detections, box jitter, mask erosion or dilation,
  whole-detection shifts, false positives and confidence noise;
- ``model``: the built-in model's own output (``model: {weights: builtin}``, CPU).

On identical detections it runs ``MaskTracker`` (``type: mask``), ``MaskTracker`` with ``type:
box`` and ``trackers.ByteTrackTracker`` (the box peer, its defaults with ``frame_rate=15``); the
MaskTrackers also get each frame's image (for ``appearance_weight``; scenes are rendered again for
it, the cache keeps no images). It writes their tracks with the MOTS sink
(``streamseg.outputs.mots.MotsWriter``, the same code ``outputs.mots`` runs) and scores them
against ``write_mots`` ground truth with ``streamseg.track.evaluate.evaluate_tracking``
(TrackEval, class-agnostic and class-consistent), pooling the seeds of each (kind, difficulty).
Targets: on occlusion-heavy sequences HOTA >= 3 points above ByteTrackTracker and IDSW >= 30 %
lower; on easy sequences HOTA never below it. Each (kind, detections) case is judged on its own,
and the target holds only when every case passes.

Speed: ``update()`` per frame (with the frame's image) on ground-truth detections (masks as
CompactMask, confidences noised) of field scenes with exactly 10, 50 and 100 objects; p50/p95
against ByteTrackTracker's. Targets: p50 <= 5 ms at 50 objects; at 10 objects <= 1.5x
ByteTrackTracker's p50. Nothing else should run on the CPU meanwhile (pause background jobs from
the shell; the bench leaves other processes alone).

Run: ``.venv/bin/python bench/tracking.py [--quick] [--speed-only]`` (about 40 minutes on 2
cores, a quarter of it the model's forward over 60 scenes; ``--seeds 3`` takes about 10,
``--quick`` is a smoke run of one short seed). Ten seeds per case is the default because three
were too few to judge a ratio of identity switches: on seeds 4000-4002, yard/occlusion/model
counted 5 switches against ByteTrack's 7, so one switch moved the reduction by 14 points. It
missed the -30 % target by that one switch there, met it on the three tuning sets of 3 seeds
(bases 100, 200, 300), and meets it at -48 % (11 against 21) on seeds 4000-4009.
To tune without fitting the bench's own scenes, run subsets on other seeds, e.g. ``--seeds 3
--seed-base 100 --kinds pitch --difficulties occlusion --detections model --no-speed --cache
/tmp/bench-cache`` (``--cache`` keeps rendered scenes and detections between runs;
``--tracker-option KEY=VALUE`` tries a MaskTracker option; a ``low_threshold`` below
``model.confidence`` also makes the model keep detections down to it, for every tracker, as a
pipeline does).
Ends with one ``key=value`` summary line:
``occl_hota_gain`` and ``easy_hota_min_delta`` are the smallest HOTA gains over ByteTrackTracker
(points) among occlusion and easy cases, ``occl_idsw_reduction`` pools the IDSW of every
occlusion case, ``p50_ms_50`` is MaskTracker's p50 at 50 objects and ``ratio_10`` its p50 at 10
objects over ByteTrackTracker's.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import pickle
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import supervision as sv
import torch
import yaml
from trackers import ByteTrackTracker

import streamseg.synth as synth_package
from streamseg.config import ModelConfig, TrackerConfig
from streamseg.models import load_segmenter
from streamseg.models.loader import resolve_weights
from streamseg.outputs.mots import MotsWriter
from streamseg.rle import crop_rle_counts
from streamseg.synth import (
    CLASS_NAMES,
    DIFFICULTIES,
    KIND_CLASSES,
    SCENE_KINDS,
    SceneRenderer,
    SynthFrame,
    write_mots,
    write_seqinfo,
)
from streamseg.track import MaskTracker
from streamseg.track.evaluate import MotsScores, evaluate_tracking
from streamseg.track.stage import model_for_tracking
from streamseg.types import Frame

RESOLUTION_WH = (640, 360)
FPS = 15.0
SEED_BASE = 4000
"""Scene seeds of the bench: far from training scenes (seeds >= 1e9) and held-out ones (1e12)."""

DEGRADE: dict[str, float] = {
    "miss": 0.10,  # probability that a true object is not detected in a frame
    "box_jitter": 0.04,  # sd of each box edge, as a fraction of the box's width or height
    "shift": 0.02,  # sd of a whole-detection (mask and box) offset, fraction of the box size
    "morph": 0.5,  # probability of eroding or dilating a mask (1 or 2 px, 3x3 kernel)
    "false_pos_rate": 0.3,  # mean false positives per frame (Poisson)
    "conf_mean": 0.8,  # true detections: confidence ~ N(conf_mean, conf_sd), clipped
    "conf_sd": 0.12,
    "fp_conf_max": 0.6,  # false positives: confidence ~ U(0.1, fp_conf_max)
}
"""Parameters of :func:`degrade`, chosen before any tracker was run and fixed since."""

TRACKER_NAMES = ("mask", "box", "bytetrack")
SOURCES = ("degraded", "model")
TIMING_COUNTS = (10, 50, 100)

Image = npt.NDArray[np.uint8]
Tracker = Callable[[sv.Detections, float, Image], sv.Detections]


# ----------------------------------------------------------------------------- detections


def _compact(
    crops: list[tuple[int, int, npt.NDArray[np.bool_]]], image_hw: tuple[int, int]
) -> tuple[sv.CompactMask, list[int]]:
    """CompactMask of (x1, y1, crop) masks clipped to the image; also the indices kept."""
    height, width = image_hw
    rles, shapes, offsets, kept = [], [], [], []
    for i, (x1, y1, crop) in enumerate(crops):
        cx1, cy1 = max(0, x1), max(0, y1)
        cx2, cy2 = min(width, x1 + crop.shape[1]), min(height, y1 + crop.shape[0])
        if cx2 <= cx1 or cy2 <= cy1:
            continue
        part = crop[cy1 - y1 : cy2 - y1, cx1 - x1 : cx2 - x1]
        if not part.any():
            continue
        rles.append(crop_rle_counts(part))
        shapes.append(part.shape)
        offsets.append((cx1, cy1))
        kept.append(i)
    mask = sv.CompactMask(
        rles,
        np.array(shapes, dtype=np.int32).reshape(-1, 2),
        np.array(offsets, dtype=np.int32).reshape(-1, 2),
        (height, width),
    )
    return mask, kept


def _morph(crop: npt.NDArray[np.bool_], rng: np.random.Generator) -> tuple[int, npt.NDArray[Any]]:
    """Erode or dilate a crop by 1-2 px; returns (padding added on each side, new crop)."""
    steps = int(rng.integers(1, 3))
    kernel = np.ones((3, 3), np.uint8)
    if rng.random() < 0.5:
        eroded = cv2.erode(crop.astype(np.uint8), kernel, iterations=steps)
        # A thin object can vanish when eroded: keep the original rather than lose it.
        return 0, (eroded.astype(bool) if eroded.any() else crop)
    padded = np.pad(crop.astype(np.uint8), steps)
    return steps, cv2.dilate(padded, kernel, iterations=steps).astype(bool)


def degrade(
    truth: sv.Detections, kind: str, rng: np.random.Generator, image_hw: tuple[int, int]
) -> sv.Detections:
    """A detector-like version of one frame's ground truth (parameters in :data:`DEGRADE`).

    Each true object is dropped with probability ``miss``; the others move as a whole (mask and
    box) by ``shift`` of their size, get each box edge jittered by ``box_jitter`` of the size,
    have their mask eroded or dilated by 1-2 px with probability ``morph``, and get a confidence
    from N(``conf_mean``, ``conf_sd``) clipped to [0.05, 1]. Poisson(``false_pos_rate``) false
    positives are added: ellipses 10-60 px wide of one of the kind's classes anywhere in the
    frame, confidence U(0.1, ``fp_conf_max``). Ground-truth identities are removed.

    Args:
        truth: ``SynthFrame.to_detections()`` of one frame.
        kind: the scene kind (false positives take its classes).
        rng: the only source of randomness.
        image_hw: (height, width) of the frame.

    Returns:
        New detections (CompactMask masks, no ``tracker_id``), true objects first.
    """
    height, width = image_hw
    p = DEGRADE
    crops: list[tuple[int, int, npt.NDArray[np.bool_]]] = []
    boxes, confs, classes = [], [], []
    assert truth.mask is None or isinstance(truth.mask, sv.CompactMask)
    for i in range(len(truth)):
        if rng.random() < p["miss"] or truth.mask is None:
            continue
        x1, y1, x2, y2 = (float(v) for v in truth.xyxy[i])
        size = np.array([x2 - x1 + 1, y2 - y1 + 1, x2 - x1 + 1, y2 - y1 + 1])
        shift = np.round(rng.normal(0, p["shift"], 2) * size[:2]).astype(int)
        ox, oy = (int(v) for v in truth.mask.offsets[i])
        crop = truth.mask.crop(i)
        pad = 0
        if rng.random() < p["morph"]:
            pad, crop = _morph(crop, rng)
        crops.append((ox - pad + int(shift[0]), oy - pad + int(shift[1]), crop))
        box = truth.xyxy[i] + np.tile(shift, 2) + rng.normal(0, p["box_jitter"], 4) * size
        boxes.append(box)
        confs.append(float(np.clip(rng.normal(p["conf_mean"], p["conf_sd"]), 0.05, 1.0)))
        classes.append(int(truth.class_id[i]) if truth.class_id is not None else 0)
    for _ in range(int(rng.poisson(p["false_pos_rate"]))):
        w, h = (int(v) for v in rng.integers(10, 61, 2))
        x1, y1 = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        blob = np.zeros((h, w), np.uint8)
        cv2.ellipse(blob, (w // 2, h // 2), (w // 2, h // 2), 0, 0, 360, 1, -1)
        crops.append((x1, y1, blob.astype(bool)))
        boxes.append(np.array([x1, y1, x1 + w - 1, y1 + h - 1], dtype=np.float64))
        confs.append(float(rng.uniform(0.1, p["fp_conf_max"])))
        classes.append(CLASS_NAMES.index(str(rng.choice(KIND_CLASSES[kind]))))
    mask, kept = _compact(crops, image_hw)
    if not kept:
        return sv.Detections.empty()
    xyxy = np.stack([boxes[i] for i in kept]).astype(np.float32)
    xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, width - 1)
    xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, height - 1)
    class_id = np.array([classes[i] for i in kept], dtype=int)
    return sv.Detections(
        xyxy=xyxy,
        mask=mask,
        confidence=np.array([confs[i] for i in kept], dtype=np.float32),
        class_id=class_id,
        data={"class_name": np.array([CLASS_NAMES[c] for c in class_id])},
    )


@dataclass
class Clip:
    """One rendered scene: its ground-truth file and the detections of every frame."""

    name: str
    kind: str
    difficulty: str
    pts_s: list[float]
    detections: dict[str, list[sv.Detections]]


def _observe(frames: Iterable[SynthFrame], visit: Callable[[SynthFrame], None]) -> Iterator[Any]:
    for frame in frames:
        visit(frame)
        yield frame


def render_sequence(
    kind: str, difficulty: str, seed: int, frames: int, gt_root: Path, segment: Any
) -> Clip:
    """Render a scene once: write its ground truth and compute both kinds of detections."""
    name = f"{kind}-{difficulty}-{seed}"
    renderer = SceneRenderer(kind, seed, RESOLUTION_WH, fps=FPS, difficulty=difficulty)
    rng = np.random.default_rng([seed, DIFFICULTIES.index(difficulty), 7])
    seq = Clip(name, kind, difficulty, [], {source: [] for source in SOURCES})
    image_hw = (RESOLUTION_WH[1], RESOLUTION_WH[0])

    def visit(frame: SynthFrame) -> None:
        seq.pts_s.append(frame.pts_s)
        seq.detections["degraded"].append(degrade(frame.to_detections(), kind, rng, image_hw))
        seq.detections["model"].append(segment([frame.image])[0])

    folder = gt_root / name
    write_mots(_observe(renderer.frames(frames), visit), folder / "gt" / "gt.txt")
    write_seqinfo(folder / "seqinfo.ini", name, frames, FPS, RESOLUTION_WH)
    return seq


# ----------------------------------------------------------------------------- trackers


TRACKER_OPTIONS: dict[str, Any] = {}
"""``tracker`` options that ``--tracker-option`` sets on both MaskTracker variants (candidates to
measure before they become defaults); empty: the defaults of :class:`TrackerConfig`."""


def make_tracker(name: str) -> Tracker:
    """A fresh tracker as ``f(detections, timestamp, image) -> detections with tracker_id``.

    MaskTracker gets the frame's image (its colour term, ``appearance_weight``, reads it);
    ByteTrackTracker does not use one.
    """
    if name == "bytetrack":
        peer = ByteTrackTracker(frame_rate=FPS)
        return lambda detections, t, image: peer.update(detections, timestamp=t)
    tracker = MaskTracker(TrackerConfig.model_validate({**TRACKER_OPTIONS, "type": name}))
    return lambda detections, t, image: tracker.update(detections, timestamp=t, image=image)


def clip_images(seq: Clip) -> list[Image]:
    """The frames of a scene, rendered again (the renderer is deterministic; the cache keeps
    detections, not images)."""
    seed = int(seq.name.rsplit("-", 1)[1])
    renderer = SceneRenderer(seq.kind, seed, RESOLUTION_WH, fps=FPS, difficulty=seq.difficulty)
    return [frame.image for frame in renderer.frames(len(seq.pts_s))]


def track_to_mots(
    seq: Clip, source: str, tracker_name: str, out_dir: Path, images: list[Image]
) -> float:
    """Track one sequence and write its MOTS file; returns seconds spent in the tracker."""
    tracker = make_tracker(tracker_name)
    writer = MotsWriter(out_dir)
    spent = 0.0
    for index, (pts_s, detections, image) in enumerate(
        zip(seq.pts_s, seq.detections[source], images, strict=True)
    ):
        start = time.perf_counter()
        tracked = tracker(detections, pts_s, image)
        spent += time.perf_counter() - start
        writer.write(Frame(seq.name, index, pts_s, 0.0, image), tracked)
    writer.close()
    return spent


# ----------------------------------------------------------------------------- accuracy


@dataclass(frozen=True)
class Case:
    """Scores of the three trackers on one (kind, difficulty, detections) group of scenes."""

    kind: str
    difficulty: str
    source: str
    scores: dict[str, MotsScores]

    @property
    def hota_gain(self) -> float:
        """HOTA of MaskTracker minus ByteTrackTracker's, in points."""
        return 100 * (self.scores["mask"].hota - self.scores["bytetrack"].hota)

    @property
    def idsw_reduction(self) -> float:
        """1 - IDSW(MaskTracker) / IDSW(ByteTrackTracker); 0 when neither switches, -inf when
        only MaskTracker does."""
        peer, ours = self.scores["bytetrack"].idsw, self.scores["mask"].idsw
        if peer == 0:
            return 0.0 if ours == 0 else -float("inf")
        return 1.0 - ours / peer

    def passed(self) -> bool:
        """The issue's target for this case's difficulty."""
        if self.difficulty == "easy":
            return self.hota_gain >= 0.0
        both_zero = self.scores["bytetrack"].idsw == 0 and self.scores["mask"].idsw == 0
        return self.hota_gain >= 3.0 and (self.idsw_reduction >= 0.3 or both_zero)


@dataclass(frozen=True)
class Selection:
    """Which scenes the accuracy part renders and which cases it scores."""

    seeds: int = 10
    frames: int = 150
    seed_base: int = SEED_BASE
    kinds: tuple[str, ...] = SCENE_KINDS
    difficulties: tuple[str, ...] = DIFFICULTIES
    sources: tuple[str, ...] = SOURCES


def model_config() -> ModelConfig:
    """The model behind the ``model`` detections: the built-in weights with the runtime's
    defaults, as a pipeline with the measured tracker settings (:data:`TRACKER_OPTIONS`) builds
    it: keeping the weak detections down to their ``low_threshold``."""
    tracker = TrackerConfig.model_validate(TRACKER_OPTIONS)
    return model_for_tracking(ModelConfig(weights="builtin", device="cpu"), tracker)


def _inputs_fingerprint(model: ModelConfig) -> str:
    """A short hash of what the cached scenes and detections depend on: the synthetic
    renderer's source, the model file, the model settings and :data:`DEGRADE`."""
    digest = hashlib.sha256()
    synth_dir = Path(synth_package.__file__).parent
    for source in sorted(synth_dir.glob("*.py")):
        digest.update(source.read_bytes())
    digest.update(resolve_weights(model.weights).read_bytes())
    digest.update(model.model_dump_json().encode())
    digest.update(repr(sorted(DEGRADE.items())).encode())
    return digest.hexdigest()[:12]


def _render_all(selection: Selection, root: Path, cache: Path | None) -> list[Clip]:
    """Render and detect every selected scene, or load them from ``cache`` (a folder).

    The cache holds each scene's ground truth and detections (pickled), keyed by kind,
    difficulty, seed, length and :func:`_inputs_fingerprint`, so tracker changes can be
    measured without re-running the model, while a change of the renderer, the model, its
    settings or :data:`DEGRADE` gets fresh entries instead of stale ones.
    """
    segmenter: Any = None
    sequences: list[Clip] = []
    fingerprint = _inputs_fingerprint(model_config()) if cache is not None else ""
    for kind in selection.kinds:
        for difficulty in selection.difficulties:
            gt_root = root / "gt" / f"{kind}-{difficulty}"
            for s in range(selection.seeds):
                seed = selection.seed_base + s
                name = f"{kind}-{difficulty}-{seed}"
                stored = (
                    None if cache is None else cache / f"{name}-{selection.frames}-{fingerprint}"
                )
                if stored is not None and (stored / "clip.pkl").exists():
                    shutil.copytree(stored / "seq", gt_root / name)
                    with open(stored / "clip.pkl", "rb") as f:
                        sequences.append(pickle.load(f))
                    continue
                if segmenter is None:
                    segmenter = load_segmenter(model_config())
                clip = render_sequence(
                    kind, difficulty, seed, selection.frames, gt_root, segmenter.segment
                )
                sequences.append(clip)
                if stored is not None:
                    shutil.copytree(gt_root / name, stored / "seq", dirs_exist_ok=True)
                    with open(stored / "clip.pkl", "wb") as f:
                        pickle.dump(clip, f)
    return sequences


def accuracy(selection: Selection, root: Path, cache: Path | None = None) -> list[Case]:
    """Render, detect, track and score every selected (kind, difficulty, source) case."""
    start = time.perf_counter()
    sequences = _render_all(selection, root, cache)
    print(
        f"rendered and detected {len(sequences)} sequences x {selection.frames} frames "
        f"in {time.perf_counter() - start:.0f} s"
    )
    start = time.perf_counter()
    tracker_s = dict.fromkeys(TRACKER_NAMES, 0.0)
    for seq in sequences:
        images = clip_images(seq)
        for source in selection.sources:
            for name in TRACKER_NAMES:
                out = root / "pred" / source / name / f"{seq.kind}-{seq.difficulty}"
                tracker_s[name] += track_to_mots(seq, source, name, out, images)
    print(
        f"tracked in {time.perf_counter() - start:.0f} s (tracker time: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in tracker_s.items())
        + ")"
    )
    start = time.perf_counter()
    cases = []
    for kind in selection.kinds:
        for difficulty in selection.difficulties:
            group = f"{kind}-{difficulty}"
            for source in selection.sources:
                scores = {
                    name: evaluate_tracking(
                        root / "gt" / group, root / "pred" / source / name / group
                    ).combined["all"]
                    for name in TRACKER_NAMES
                }
                cases.append(Case(kind, difficulty, source, scores))
    print(f"scored with TrackEval in {time.perf_counter() - start:.0f} s")
    return cases


def print_cases(cases: list[Case]) -> None:
    """One block per case: a row per tracker, then the verdict."""
    header = f"    {'tracker':<10} {'HOTA':>6} {'DetA':>6} {'AssA':>6} {'IDF1':>6} {'IDSW':>5}"
    for case in cases:
        truth = case.scores["mask"]
        print(
            f"\n{case.kind}/{case.difficulty}/{case.source}  "
            f"(GT {truth.gt_dets} masks, {truth.gt_ids} ids)"
        )
        print(header)
        for name in TRACKER_NAMES:
            s = case.scores[name]
            print(
                f"    {name:<10} {100 * s.hota:6.1f} {100 * s.deta:6.1f} {100 * s.assa:6.1f} "
                f"{100 * s.idf1:6.1f} {s.idsw:5d}"
            )
        target = (
            "HOTA >= ByteTrack" if case.difficulty == "easy" else "HOTA +3, IDSW -30% vs ByteTrack"
        )
        print(
            f"    mask vs bytetrack: HOTA {case.hota_gain:+.1f} pts, IDSW "
            f"{-100 * case.idsw_reduction:+.0f}%  [{target}] "
            f"{'PASS' if case.passed() else 'FAIL'}"
        )


# ----------------------------------------------------------------------------- speed


def timing_detections(count: int, frames: int) -> list[tuple[float, sv.Detections, Image]]:
    """Ground truth of a field scene with ``count`` objects, confidences noised, ids removed;
    with each frame's image."""
    rng = np.random.default_rng(count)
    out = []
    renderer = SceneRenderer("field", SEED_BASE + count, RESOLUTION_WH, fps=FPS, num_objects=count)
    for frame in renderer.frames(frames):
        detections = frame.to_detections()
        detections.tracker_id = None
        if len(detections):
            noise = rng.normal(DEGRADE["conf_mean"], DEGRADE["conf_sd"], len(detections))
            detections.confidence = np.clip(noise, 0.05, 1.0).astype(np.float32)
        out.append((frame.pts_s, detections, frame.image))
    return out


def time_updates(
    frames: list[tuple[float, sv.Detections, Image]],
) -> dict[str, npt.NDArray[Any]]:
    """Per-frame ``update()`` times in ms by tracker (the first 5 frames are a warm-up).

    The trackers take turns on each frame, so a burst of load from elsewhere hits all of them.
    """
    trackers = {name: make_tracker(name) for name in TRACKER_NAMES}
    times: dict[str, list[float]] = {name: [] for name in TRACKER_NAMES}
    for pts_s, detections, image in frames:
        for name, tracker in trackers.items():
            start = time.perf_counter()
            tracker(detections, pts_s, image)
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: np.array(ms[5:]) for name, ms in times.items()}


def speed(frames: int) -> dict[tuple[str, int], tuple[float, float]]:
    """(tracker, objects) -> (p50, p95) of update() in ms."""
    results = {}
    print(f"\nupdate() per frame, field scenes 640x360, {frames} frames (p50 / p95 ms)")
    print(f"    {'objects':>7} " + " ".join(f"{n:>17}" for n in TRACKER_NAMES) + "  visible")
    for count in TIMING_COUNTS:
        frames_ = timing_detections(count, frames)
        visible = np.mean([len(d) for _, d, _ in frames_])
        cells = []
        by_tracker = time_updates(frames_)
        for name in TRACKER_NAMES:
            ms = by_tracker[name]
            p50, p95 = float(np.percentile(ms, 50)), float(np.percentile(ms, 95))
            results[(name, count)] = (p50, p95)
            cells.append(f"{p50:7.2f} / {p95:7.2f}")
        print(f"    {count:>7} " + " ".join(f"{c:>17}" for c in cells) + f"  {visible:7.1f}")
    return results


def speed_checks(timings: dict[tuple[str, int], tuple[float, float]]) -> dict[str, bool]:
    """The issue's speed targets, by label."""
    ratio_10 = timings[("mask", 10)][0] / timings[("bytetrack", 10)][0]
    return {
        "update() p50 <= 5 ms at 50 objects": timings[("mask", 50)][0] <= 5.0,
        "update() p50 at 10 objects <= 1.5x ByteTrack": ratio_10 <= 1.5,
    }


def speed_summary(timings: dict[tuple[str, int], tuple[float, float]]) -> str:
    """The speed figures of the summary line."""
    ratio_10 = timings[("mask", 10)][0] / timings[("bytetrack", 10)][0]
    return (
        f"p50_ms_50={timings[('mask', 50)][0]:.2f} p95_ms_50={timings[('mask', 50)][1]:.2f} "
        f"p50_ms_100={timings[('mask', 100)][0]:.2f} "
        f"bytetrack_p50_ms_50={timings[('bytetrack', 50)][0]:.2f} ratio_10={ratio_10:.2f}"
    )


def print_checks(checks: dict[str, bool]) -> None:
    """One PASS/FAIL line per target."""
    print()
    for label, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {label}")


# ----------------------------------------------------------------------------- main


def main() -> None:
    """Measure and print; the last line is the key=value summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed x 40 frames")
    parser.add_argument("--seeds", type=int, default=10, help="scenes per kind and difficulty")
    parser.add_argument("--frames", type=int, default=150, help="frames per scene (15 fps)")
    parser.add_argument("--timing-frames", type=int, default=150)
    parser.add_argument("--speed-only", action="store_true", help="only time update()")
    parser.add_argument("--no-speed", action="store_true", help="skip timing update()")
    parser.add_argument(
        "--seed-base",
        type=int,
        default=SEED_BASE,
        help=f"first scene seed (default {SEED_BASE}, the bench's; tune on others, e.g. 100)",
    )
    parser.add_argument("--kinds", nargs="+", choices=SCENE_KINDS, default=list(SCENE_KINDS))
    parser.add_argument(
        "--difficulties", nargs="+", choices=DIFFICULTIES, default=list(DIFFICULTIES)
    )
    parser.add_argument("--detections", nargs="+", choices=SOURCES, default=list(SOURCES))
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="folder that keeps rendered scenes and their detections between runs",
    )
    parser.add_argument(
        "--tracker-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a tracker option (YAML value) on MaskTracker, e.g. high_threshold=0.6",
    )
    args = parser.parse_args()
    for option in args.tracker_option:
        key, sep, value = option.partition("=")
        if not sep:
            parser.error(f"--tracker-option: expected KEY=VALUE, got {option!r}")
        TRACKER_OPTIONS[key] = yaml.safe_load(value)
    TrackerConfig.model_validate(TRACKER_OPTIONS)  # fail now, not after rendering
    if args.quick:
        args.seeds, args.frames, args.timing_frames = 1, 40, 40
    selection = Selection(
        args.seeds,
        args.frames,
        args.seed_base,
        tuple(args.kinds),
        tuple(args.difficulties),
        tuple(args.detections),
    )
    logging.basicConfig(level=logging.WARNING)
    if TRACKER_OPTIONS:
        print(f"MaskTracker options: {TRACKER_OPTIONS}")
    print(
        f"{args.seeds} seed(s) x {args.frames} frames per kind and difficulty, "
        f"{RESOLUTION_WH[0]}x{RESOLUTION_WH[1]} at {FPS:g} fps, torch threads "
        f"{torch.get_num_threads()}; degradation {DEGRADE}"
    )
    if args.speed_only:
        measured = speed(args.timing_frames)
        print_checks(speed_checks(measured))
        print(speed_summary(measured))
        return
    # Timing first, in a fresh process: after the accuracy runs (TrackEval, thousands of masks)
    # every tracker's update() is slower, the mask tracker's most (10 objects: 0.75 ms against
    # 0.67 ms fresh, ByteTrack 0.49 against 0.47), which measures the heap, not the tracker.
    timings = None if args.no_speed else speed(args.timing_frames)
    with tempfile.TemporaryDirectory(prefix="streamseg-bench-tracking-") as tmp:
        cases = accuracy(selection, Path(tmp), args.cache)
    print_cases(cases)

    occlusion = [c for c in cases if c.difficulty == "occlusion"]
    easy = [c for c in cases if c.difficulty == "easy"]
    peer_idsw = sum(c.scores["bytetrack"].idsw for c in occlusion)
    ours_idsw = sum(c.scores["mask"].idsw for c in occlusion)
    pooled_reduction = 1 - ours_idsw / peer_idsw if peer_idsw else 0.0
    checks = {}
    summary = []
    if occlusion:
        label = "occlusion cases: HOTA >= +3 pts and IDSW >= 30 % lower than ByteTrack, each"
        checks[label] = all(c.passed() for c in occlusion)
        summary += [
            f"occl_hota_gain={min(c.hota_gain for c in occlusion):.2f}",
            f"occl_hota_gain_mean={np.mean([c.hota_gain for c in occlusion]):.2f}",
            f"occl_idsw_reduction={pooled_reduction:.3f}",
            f"occl_idsw_reduction_min={min(c.idsw_reduction for c in occlusion):.3f}",
        ]
    if easy:
        checks["easy cases: HOTA >= ByteTrack, each"] = all(c.passed() for c in easy)
        summary.append(f"easy_hota_min_delta={min(c.hota_gain for c in easy):.2f}")
    if timings is not None:
        checks.update(speed_checks(timings))
        summary.append(speed_summary(timings))
    print_checks(checks)
    summary += [
        f"cases_passed={sum(c.passed() for c in cases)}/{len(cases)}",
        f"seeds={args.seeds} seed_base={args.seed_base} frames={args.frames}",
    ]
    print(" ".join(summary))


if __name__ == "__main__":
    main()

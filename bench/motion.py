"""Telling moving machines from still ones by their pixels (``near``'s ``other_moving``).

The synthetic yard's trucks drive and stop (ground truth: each truck's ``state`` attribute,
``driving`` or ``stopped``); its excavators work without pause (dig, swing, dump: always moving).
A machine *moved within the window* when it was driving on any frame of the last ``window_s``.

Each scene runs through the built-in model and the yard pipeline's tracker
(``pipelines/machinery_zone.yaml``); every machine track is matched to the ground-truth object
its mask overlaps most (mask IoU >= 0.5) on each frame. Two measures of motion, on the same
tracks and windows, for every ``min_change``:

- ``mask``: :class:`streamseg.rules.motion.MotionHistory`: ``1 - IoU`` of the track's mask now
  against its masks of the last window, over the pixels no other object covers in either frame
  (what ``near`` uses);
- ``mask, all pixels``: the same over every pixel (a worker hiding part of a parked truck
  changes its mask);
- ``box``: the same on the track's box alone (a box-based tracker's view, as the peers decide
  "stationary" from the box).

Printed per measure and threshold: the share of still-truck frames called moving (false alarms of
``other_moving``, a parked truck raising alerts), and the share of moving-truck and excavator
frames called still (missed: a worker beside a moving machine gets no alert). Ends with one
``key=value`` summary line for the shipped defaults.

Run: ``.venv/bin/python bench/motion.py`` (``--quick``: one short scene).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import supervision as sv
import torch

from streamseg.config import TrackerConfig, load_pipeline
from streamseg.config.model import ModelConfig
from streamseg.config.rules import NearRuleConfig
from streamseg.models import Segmenter, load_segmenter
from streamseg.rules.measures import FrameObjects
from streamseg.rules.motion import MaskSample, MotionHistory, sample_of, visible_change
from streamseg.synth import SceneRenderer
from streamseg.track import MaskTracker
from streamseg.track.stage import model_for_tracking

RESOLUTION = (640, 360)
FPS = 15.0
SCENES = [(2, "occlusion"), (4, "occlusion"), (5, "easy"), (1, "occlusion"), (7, "easy")]
THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.3)
MACHINES = frozenset({"truck", "excavator"})
PIPELINE = Path(__file__).resolve().parent.parent / "pipelines" / "machinery_zone.yaml"


@dataclass
class Tally:
    """Frames by ground truth, and how many of them a measure called moving, per threshold."""

    still: int = 0
    moving: int = 0
    still_called_moving: dict[float, int] = field(default_factory=lambda: defaultdict(int))
    moving_called_still: dict[float, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, truth_moving: bool, change: float) -> None:
        if truth_moving:
            self.moving += 1
        else:
            self.still += 1
        for threshold in THRESHOLDS:
            called = change >= threshold
            if truth_moving and not called:
                self.moving_called_still[threshold] += 1
            elif not truth_moving and called:
                self.still_called_moving[threshold] += 1


def box_samples(pts: float, objects: FrameObjects, indices: list[int]) -> dict[int, MaskSample]:
    """Each object's box as a full mask: the ``box`` measure."""
    samples = {}
    for k in indices:
        x1, y1, x2, y2 = objects.boxes[k]
        crop = np.ones((y2 - y1 + 1, x2 - x1 + 1), dtype=bool)
        samples[objects.track_ids[k]] = MaskSample(pts, (x1, y1, x2, y2), crop)
    return samples


def unmasked_samples(
    pts: float, objects: FrameObjects, indices: list[int]
) -> dict[int, MaskSample]:
    """Each object's mask with every pixel compared, covered by another object or not: the
    ``mask, all pixels`` measure."""
    ids = objects.track_ids
    return {ids[k]: dataclasses.replace(sample_of(objects, k, pts), covered=None) for k in indices}


def _match(objects: FrameObjects, k: int, truth: list[MaskSample]) -> int | None:
    """Index in ``truth`` of the GT mask track ``k`` overlaps most (IoU >= 0.5), else None."""
    mine = MaskSample(0.0, objects.boxes[k], objects.crop(k))
    best, found = 0.5, None
    for index, gt in enumerate(truth):
        iou = 1.0 - visible_change(mine, gt)
        if iou >= best:
            best, found = iou, index
    return found


def run_scene(
    seed: int,
    difficulty: str,
    frames: int,
    window_s: float,
    model: tuple[Segmenter, TrackerConfig],
    tallies: dict[str, Tally],
    timing: list[tuple[int, float]],
) -> None:
    """Run one scene through ``model`` (the segmenter, and the tracker settings for a fresh
    tracker); add its frames to ``tallies`` and, per frame, (machines, seconds of
    :meth:`MotionHistory.observe`) to ``timing``."""
    segmenter, tracker_cfg = model
    tracker = MaskTracker(tracker_cfg)
    histories = {name: MotionHistory(window_s, 0.5) for name in ("mask", "mask, all pixels", "box")}
    driving_at: dict[int, list[float]] = defaultdict(list)
    areas: dict[int, list[tuple[float, int]]] = defaultdict(list)
    renderer = SceneRenderer("yard", seed, RESOLUTION, fps=FPS, difficulty=difficulty)
    for synth in renderer.frames(frames):
        truth = [o for o in synth.objects if o.class_name in MACHINES]
        samples = []
        for obj in truth:
            ys, xs = np.nonzero(obj.mask)
            box = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
            crop = obj.mask[box[1] : box[3] + 1, box[0] : box[2] + 1]
            samples.append(MaskSample(synth.pts_s, box, crop))
            if obj.attributes.get("state") == "driving":
                driving_at[obj.track_id].append(synth.pts_s)
            areas[obj.track_id].append((synth.pts_s, int(crop.sum())))
        detections = segmenter.segment([synth.image])[0]
        tracked = tracker.update(detections, timestamp=synth.pts_s, image=synth.image)
        assert isinstance(tracked, sv.Detections)
        objects = FrameObjects(tracked, RESOLUTION)
        machines = objects.of_classes(MACHINES)
        started = time.perf_counter()
        histories["mask"].observe(synth.pts_s, objects, machines)
        timing.append((len(machines), time.perf_counter() - started))
        histories["mask, all pixels"].observe_samples(
            synth.pts_s, unmasked_samples(synth.pts_s, objects, machines)
        )
        histories["box"].observe_samples(synth.pts_s, box_samples(synth.pts_s, objects, machines))
        for k in machines:
            index = _match(objects, k, samples)
            if index is None:
                continue
            obj = truth[index]
            if obj.class_name == "excavator":
                moved = True
            else:
                since = synth.pts_s - window_s - 1e-6
                moved = any(since <= t <= synth.pts_s for t in driving_at[obj.track_id])
            # A still machine whose visible area changed within the window: something passed
            # in front of it (or it left the frame's edge).
            recent = [a for t, a in areas[obj.track_id] if t >= synth.pts_s - window_s - 1e-6]
            occluded = min(recent) < 0.95 * max(recent)
            for name, history in histories.items():
                change = history.change.get(objects.track_ids[k], 0.0)
                tallies[f"{name} {obj.class_name}"].add(moved, change)
                if obj.class_name == "truck" and not moved:
                    part = "occluded" if occluded else "clear"
                    tallies[f"{name} still truck {part}"].add(False, change)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short scene")
    parser.add_argument("--frames", type=int, default=None, help="frames per scene")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    defaults = NearRuleConfig(
        id="n", type="near", classes=["person"], other_classes=["truck"], max_distance=2
    )
    window_s, default_change = defaults.motion_window_s, defaults.min_motion
    frames = args.frames or (60 if args.quick else 300)
    scenes = SCENES[:1] if args.quick else SCENES
    tallies: dict[str, Tally] = defaultdict(Tally)
    timing: list[tuple[int, float]] = []
    tracker_cfg = load_pipeline(PIPELINE).tracker  # the model loads once, for every scene
    model_cfg = model_for_tracking(ModelConfig(weights="builtin"), tracker_cfg)
    model = (load_segmenter(model_cfg), tracker_cfg)
    for seed, difficulty in scenes:
        run_scene(seed, difficulty, frames, window_s, model, tallies, timing)
        print(f"yard seed {seed} ({difficulty}): {frames} frames", flush=True)
    print(f"window {window_s:g} s; frames: still truck / moving truck / excavator")
    header = "measure           min_change  still truck called moving  moving truck called still  "
    print(header + "excavator called still")
    figures: dict[str, float] = {}
    for measure in ("mask", "mask, all pixels", "box"):
        truck, excavator = tallies[f"{measure} truck"], tallies[f"{measure} excavator"]
        for threshold in THRESHOLDS:
            false_moving = truck.still_called_moving[threshold] / max(truck.still, 1)
            missed_truck = truck.moving_called_still[threshold] / max(truck.moving, 1)
            missed_exc = excavator.moving_called_still[threshold] / max(excavator.moving, 1)
            mark = " <- default" if threshold == default_change else ""
            print(
                f"{measure:16}  {threshold:10.2f}  {false_moving:24.3f}  {missed_truck:25.3f}  "
                f"{missed_exc:22.3f}{mark}"
            )
            if threshold == default_change:
                key = measure.replace(", all pixels", "_all")
                figures[f"{key}_still_called_moving"] = false_moving
                figures[f"{key}_moving_truck_called_still"] = missed_truck
                figures[f"{key}_excavator_called_still"] = missed_exc
        print(f"{measure}: {truck.still} / {truck.moving} / {excavator.moving} frames")
        for part in ("clear", "occluded"):
            still = tallies[f"{measure} still truck {part}"]
            shares = ", ".join(
                f"{t:g}: {still.still_called_moving[t] / max(still.still, 1):.3f}"
                for t in THRESHOLDS
            )
            print(f"  still trucks, view {part} over the window ({still.still} frames): {shares}")
    per_frame = [seconds * 1000 for _, seconds in timing]
    machines = statistics.mean(n for n, _ in timing)
    p50 = statistics.median(per_frame)
    print(f"motion measure: p50 {p50:.3f} ms a frame for {machines:.1f} machines on average")
    figures["observe_p50_ms"] = p50
    print(
        " ".join(f"{key}={value:.3f}" for key, value in figures.items())
        + f" window_s={window_s:g} min_change={default_change:g}"
    )


if __name__ == "__main__":
    main()

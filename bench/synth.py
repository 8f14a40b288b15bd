"""Rendering speed of streamseg.synth, single thread.

Prints ms per frame for each scene kind and difficulty at 384x224 and 640x360 (frames of a
sequence, after the scene is built), then for ``random_training_frame`` (after its background
pool is warm), and ends with one ``key=value`` summary line. Targets: <= 5 ms at 384x224 and
<= 15 ms at 640x360.

    .venv/bin/python bench/synth.py [--frames 60] [--preview /tmp/synth_preview.png]

``--preview`` also writes a contact sheet: one frame per kind (columns) for each difficulty,
each shown plain and with its ground-truth masks, boxes and ids overlaid.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np

from streamseg.synth import (
    DIFFICULTIES,
    SCENE_KINDS,
    SceneRenderer,
    random_training_frame,
    warm_training_pool,
)

RESOLUTIONS = ((384, 224), (640, 360))
TARGET_MS = {(384, 224): 5.0, (640, 360): 15.0}


def _sequence_ms(kind: str, difficulty: str, res: tuple[int, int], frames: int) -> float:
    renderer = SceneRenderer(kind, seed=1, resolution_wh=res, difficulty=difficulty)
    it = renderer.frames(frames + 1)
    next(it)  # first frame pays for the world's spawn
    start = time.perf_counter()
    count = sum(1 for _ in it)
    return (time.perf_counter() - start) / count * 1e3


def _training_ms(res: tuple[int, int], frames: int) -> float:
    warm_training_pool(res)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(frames):
        random_training_frame(rng, res)
    return (time.perf_counter() - start) / frames * 1e3


def contact_sheet(path: str, seed: int = 5, frame: int = 60) -> None:
    """Write one frame per kind and difficulty, plain and with masks overlaid, as one PNG."""
    rows = []
    palette = np.random.default_rng(0).integers(60, 256, size=(256, 3))
    for difficulty in DIFFICULTIES:
        plain, overlaid = [], []
        for kind in SCENE_KINDS:
            renderer = SceneRenderer(kind, seed, (640, 360), difficulty=difficulty)
            shot = next(renderer.frames(1, start=frame))
            paint = shot.image.copy()
            for obj in shot.objects:
                colour = tuple(int(c) for c in palette[obj.track_id % 256])
                paint[obj.mask] = colour
            mixed = cv2.addWeighted(shot.image, 0.45, paint, 0.55, 0.0)
            for obj in shot.objects:
                colour = tuple(int(c) for c in palette[obj.track_id % 256])
                x1, y1, x2, y2 = (int(v) for v in obj.xyxy)
                cv2.rectangle(mixed, (x1, y1), (x2, y2), colour, 1)
                label = f"{obj.class_name}#{obj.track_id}"
                cv2.putText(
                    mixed, label, (x1, max(9, y1 - 2)), cv2.FONT_HERSHEY_PLAIN, 0.7, colour, 1
                )
            cv2.putText(
                shot.image,
                f"{kind} / {difficulty}",
                (6, 352),
                cv2.FONT_HERSHEY_PLAIN,
                1.0,
                (255, 255, 255),
                1,
            )
            plain.append(shot.image)
            overlaid.append(mixed)
        rows += [np.hstack(plain), np.hstack(overlaid)]
    if not cv2.imwrite(path, np.vstack(rows)):
        raise OSError(f"could not write the contact sheet to {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60, help="frames timed per case")
    parser.add_argument("--preview", help="also write a PNG contact sheet with masks here")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    if args.preview:
        contact_sheet(args.preview)
        print(f"contact sheet: {args.preview}")
    summary: dict[str, str] = {}
    ok = True
    for res in RESOLUTIONS:
        tag = f"{res[0]}x{res[1]}"
        per_kind = []
        for kind in SCENE_KINDS:
            for difficulty in DIFFICULTIES:
                ms = _sequence_ms(kind, difficulty, res, args.frames)
                per_kind.append(ms)
                print(f"{tag} {kind:5s} {difficulty:9s} {ms:6.2f} ms/frame")
        train = _training_ms(res, args.frames * 2)
        print(f"{tag} random_training_frame {train:6.2f} ms/frame")
        mean = statistics.fmean(per_kind)
        summary[f"seq_mean_ms_{tag}"] = f"{mean:.2f}"
        summary[f"seq_max_ms_{tag}"] = f"{max(per_kind):.2f}"
        summary[f"train_ms_{tag}"] = f"{train:.2f}"
        ok = ok and mean <= TARGET_MS[res] and train <= TARGET_MS[res]
    summary["targets_met"] = str(ok).lower()
    print(" ".join(f"{k}={v}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

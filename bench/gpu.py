"""The runtime's CUDA path against its CPU path (needs a GPU; see issue #3's notes).

Loads the built-in model (or ``--weights``) once on the CPU and once per precision on CUDA,
segments the same held-out synthetic frames with each, and prints how many CUDA detections match
the CPU ones (box IoU > 0.9 and the same class), the mask IoU of the matched pairs, and the
median ``segment()`` time at batch 1, 4 and 8 on the GPU.

Run: ``.venv/bin/python bench/gpu.py [--weights builtin] [--frames 8]`` on a machine with CUDA;
elsewhere it says so and exits 2. Ends with one ``key=value`` summary line.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import numpy.typing as npt
import supervision as sv
import torch

from streamseg.config.model import ModelConfig
from streamseg.models import Segmenter, load_segmenter
from streamseg.train.evaluate import synth_eval_set


def dense(mask: object) -> npt.NDArray[np.bool_]:
    """(N, H, W) bool of a CompactMask or a dense mask array."""
    to_dense = getattr(mask, "to_dense", None)
    return np.asarray(to_dense() if to_dense is not None else mask, dtype=bool)


def compare(
    ref: list[sv.Detections], got: list[sv.Detections]
) -> tuple[int, int, int, list[float]]:
    """(CPU detections, CUDA detections, matched, mask IoUs of the matched pairs)."""
    n_ref = sum(len(d) for d in ref)
    n_got = sum(len(d) for d in got)
    matched = 0
    ious: list[float] = []
    for r, g in zip(ref, got, strict=True):
        if not len(r) or not len(g):
            continue
        box = sv.box_iou_batch(r.xyxy, g.xyxy)
        best = box.argmax(axis=1)
        ref_class, got_class = np.asarray(r.class_id), np.asarray(g.class_id)
        ok = (box[np.arange(len(r)), best] > 0.9) & (ref_class == got_class[best])
        matched += int(ok.sum())
        a, b = dense(r.mask)[ok], dense(g.mask)[best[ok]]
        inter = (a & b).sum(axis=(1, 2))
        union = np.maximum((a | b).sum(axis=(1, 2)), 1)
        ious.extend((inter / union).tolist())
    return n_ref, n_got, matched, ious


def median_ms(segmenter: Segmenter, batch: list[npt.NDArray[np.uint8]], repeats: int) -> float:
    """Median wall time of one ``segment(batch)`` on the GPU, synchronized."""
    for _ in range(5):
        segmenter.segment(batch)
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        segmenter.segment(batch)
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    """Measure and print; the last line is the key=value summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="builtin")
    parser.add_argument("--frames", type=int, default=8, help="held-out frames per scene kind")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench/gpu.py: torch sees no CUDA device; run it on a machine with a GPU")
        return 2
    frames = [s.image for kind in synth_eval_set(args.frames).values() for s in kind]
    cpu = load_segmenter(ModelConfig(weights=args.weights, device="cpu"))
    ref = [cpu.segment([f])[0] for f in frames]
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, {len(frames)} frames")
    summary: list[str] = []
    for precision in ("fp32", "fp16"):
        gpu = load_segmenter(ModelConfig(weights=args.weights, device="cuda", precision=precision))
        n_ref, n_got, matched, ious = compare(ref, [gpu.segment([f])[0] for f in frames])
        iou_med = float(np.median(ious)) if ious else 0.0
        iou_min = float(np.min(ious)) if ious else 0.0
        print(
            f"cuda {precision}: detections cpu {n_ref}, cuda {n_got}, matched {matched}; "
            f"mask IoU median {iou_med:.4f}, min {iou_min:.4f}"
        )
        summary += [f"{precision}_matched={matched}/{n_ref}", f"{precision}_mask_iou={iou_med:.4f}"]
        for size in (1, 4, 8):
            ms = median_ms(gpu, [frames[i % len(frames)] for i in range(size)], args.repeats)
            print(f"  segment() batch {size}: {ms:.2f} ms ({ms / size:.2f} ms/frame)")
            summary.append(f"{precision}_b{size}_ms={ms:.2f}")
    print(" ".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

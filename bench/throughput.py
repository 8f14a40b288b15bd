"""Pipeline throughput against a bare loop over the same frames (issue #2).

The bare loop is the least a program can do with a video and a model: decode each frame with
PyAV, run the same segmenter (letterbox + forward + decode) at batch 1, nothing else. It is
measured with every torch thread count from 1 to the CPU count, and once more decoding in one
thread while as many threads as the pipeline has inference workers segment frames at once (the
way the pipeline uses the cores); the best is kept, so the ratio is against the fastest bare
loop, not one handicapped by the pipeline's thread choice.
The pipeline is what ``streamseg run`` does with its defaults: a reader thread, the batcher,
the inference workers, the per-stream analytics thread and a JSONL sink. Both use the
same loaded model, the same frames and batch 1; runs alternate and each side keeps its best of
``--repeats``.

Then four files at once through one pipeline (batch 4): total and per-stream fps.

Run: ``.venv/bin/python bench/throughput.py`` (renders its synthetic input on first use).
Ends with one ``key=value`` summary line.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import supervision as sv
import torch

from streamseg.config import TrackerConfig, load_pipeline_text
from streamseg.config.model import ModelConfig
from streamseg.models import Segmenter, load_segmenter
from streamseg.models.device import default_inference_workers
from streamseg.runtime.pipeline import Pipeline
from streamseg.synth import render_scene_video
from streamseg.track.stage import model_for_tracking

CACHE = Path(tempfile.gettempdir()) / "streamseg-bench"


def input_video(kind: str, seed: int, frames: int, resolution_wh: tuple[int, int]) -> Path:
    """A synthetic scene video, rendered once and cached."""
    folder = CACHE / f"{kind}-{seed}-{frames}-{resolution_wh[0]}x{resolution_wh[1]}"
    video = folder / "video.mp4"
    if not video.exists():
        render_scene_video(kind, seed, folder, frames, resolution_wh, write_images=False)
    return video


def _bgr(frame: av.VideoFrame) -> npt.NDArray[np.uint8]:
    """A decoded frame as the (h, w, 3) uint8 BGR array the segmenter takes."""
    return np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)


def bare_loop(segmenter: Segmenter, video: Path) -> tuple[int, float]:
    """Decode + segment every frame at batch 1; returns (frames, seconds)."""
    start = time.perf_counter()
    frames = 0
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            segmenter.segment([_bgr(frame)])
            frames += 1
    return frames, time.perf_counter() - start


def bare_concurrent(segmenter: Segmenter, video: Path, workers: int) -> tuple[int, float]:
    """Decode in this thread, segment on ``workers`` threads at once (batch 1, frames in
    order): the least a program does to use several cores with whole forwards, as the
    pipeline's inference workers do. At most two frames per worker are decoded ahead (as the
    pipeline's bounded queues do), not the whole video."""
    start = time.perf_counter()
    frames = 0
    with av.open(str(video)) as container, ThreadPoolExecutor(workers) as pool:
        pending: deque[Future[list[sv.Detections]]] = deque()
        for frame in container.decode(video=0):
            if len(pending) == 2 * workers:
                pending.popleft().result()
                frames += 1
            pending.append(pool.submit(segmenter.segment, [_bgr(frame)]))
        for future in pending:
            future.result()
            frames += 1
    return frames, time.perf_counter() - start


def pipeline_run(
    segmenter: Segmenter, videos: list[Path], weights: str, batch: int, out: Path
) -> tuple[dict[str, int], float]:
    """One pipeline over ``videos``; returns (frames per stream, seconds)."""
    sources = "\n".join(f"  - {{id: s{i}, type: file, path: '{v}'}}" for i, v in enumerate(videos))
    text = (
        f"sources:\n{sources}\n"
        f"model: {{weights: '{weights}', device: cpu, batch_size: {batch}}}\n"
        f"outputs:\n  jsonl: {{path: '{out}'}}\n"
    )
    pipeline = Pipeline(load_pipeline_text(text), segmenter=segmenter)
    start = time.perf_counter()
    summary = pipeline.run()
    return summary.frames, time.perf_counter() - start


def main() -> None:
    """Measure and print; the last line is the key=value summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="builtin")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--resolution", default="640x360", help="WxH of the rendered input")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--streams", type=int, default=4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    width, height = (int(v) for v in args.resolution.split("x"))

    videos = [
        input_video("yard", 100 + i, args.frames, (width, height)) for i in range(args.streams)
    ]
    # As the pipeline builds it with its default tracker (the weak detections kept for it).
    model = model_for_tracking(
        ModelConfig(weights=args.weights, device="cpu", batch_size=1), TrackerConfig()
    )
    segmenter = load_segmenter(model)
    info = segmenter.info
    print(
        f"model {info.path} input {info.input_hw[1]}x{info.input_hw[0]}, "
        f"torch threads {torch.get_num_threads()}, input {width}x{height}, {args.frames} frames"
    )
    pipeline_threads = torch.get_num_threads()  # what load_segmenter chose (model.threads unset)
    bare_loop(segmenter, videos[0])  # warm-up: first forwards and page cache

    out = CACHE / "out.jsonl"
    thread_counts = range(1, (os.cpu_count() or 1) + 1)
    serial_labels = {t: f"bare loop, {t} torch thread(s)" for t in thread_counts}
    workers = default_inference_workers("cpu", pipeline_threads)  # what the pipeline runs
    concurrent_label = f"bare, {workers} segment threads x {pipeline_threads} torch"
    bare_fps: dict[str, list[float]] = {label: [] for label in serial_labels.values()}
    bare_fps[concurrent_label] = []
    pipe_fps: list[float] = []
    for _ in range(args.repeats):
        for threads in thread_counts:
            torch.set_num_threads(threads)
            n, seconds = bare_loop(segmenter, videos[0])
            bare_fps[serial_labels[threads]].append(n / seconds)
        torch.set_num_threads(pipeline_threads)
        n, seconds = bare_concurrent(segmenter, videos[0], workers)
        bare_fps[concurrent_label].append(n / seconds)
        frames, seconds = pipeline_run(segmenter, videos[:1], args.weights, 1, out)
        pipe_fps.append(sum(frames.values()) / seconds)
    for label, runs in bare_fps.items():
        print(f"{label:<44} {max(runs):7.1f} fps  runs {[round(r, 1) for r in runs]}")
    bare = max(max(runs) for runs in bare_fps.values())
    pipe = max(pipe_fps)
    label = f"pipeline, 1 file, batch 1, {pipeline_threads} thread(s)"
    print(f"{label:<44} {pipe:7.1f} fps  runs {[round(r, 1) for r in pipe_fps]}")
    print(f"{'ratio pipeline / best bare loop':<44} {pipe / bare:7.3f}")

    multi = load_segmenter(model.model_copy(update={"batch_size": 4}))
    frames, seconds = pipeline_run(multi, videos, args.weights, 4, out)
    total = sum(frames.values()) / seconds
    per_stream = {k: v / seconds for k, v in frames.items()}
    print(
        f"{f'pipeline, {args.streams} files, batch 4':<44} {total:7.1f} fps total; per stream "
        + ", ".join(f"{k} {v:.1f}" for k, v in per_stream.items())
    )
    print(
        f"ratio={pipe / bare:.3f} pipeline_fps={pipe:.1f} bare_fps={bare:.1f} "
        f"multi_total_fps={total:.1f} multi_min_stream_fps={min(per_stream.values()):.1f} "
        f"streams={args.streams} pipeline_threads={pipeline_threads}"
    )


if __name__ == "__main__":
    main()

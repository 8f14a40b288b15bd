"""Pipeline throughput with annotated recording on and off (issue #6).

The same 720p synthetic file goes through the same pipeline (reader, batcher, built-in model at
batch 1, tracker, JSONL sink) once per side and repeat: recording off, then recording on with a
:class:`Recorder` added as a sink (continuous, annotated: masks, boxes, labels, traces; the
recording defaults: crf 23, keyframes every 2 s, one encoder thread), once per x264 preset asked
(default: the config's ``ultrafast``, then ``veryfast``). The file source is lossless, so the
recorder never drops a frame: its whole cost shows in the fps. The order of the sides rotates
from repeat to repeat.

Printed per preset: the ratio of the best runs (on / off), the median of the ratios within each
repeat (neighbouring runs see the same machine load), and the ratio of CPU time per frame, which
is what the fps ratio tends to when every core is busy; also the extra CPU per frame, the encoder,
the bit rate, the recorder's drops (0 expected) and the load average.

Run: ``.venv/bin/python bench/recording.py`` (renders its input on first use). Pause other CPU
work for a clean figure. Ends with one ``key=value`` summary line.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from streamseg.config import PipelineConfig, load_pipeline_text
from streamseg.config.model import ModelConfig
from streamseg.config.record import RecordConfig, RecordEncoderConfig
from streamseg.models import Segmenter, load_segmenter
from streamseg.record import Recorder, lossless_stream_ids
from streamseg.runtime.pipeline import Pipeline
from streamseg.synth import render_scene_video

CACHE = Path(tempfile.gettempdir()) / "streamseg-bench"


def input_video(kind: str, seed: int, frames: int, resolution_wh: tuple[int, int]) -> Path:
    """A synthetic scene video, rendered once and cached."""
    folder = CACHE / f"{kind}-{seed}-{frames}-{resolution_wh[0]}x{resolution_wh[1]}"
    video = folder / "video.mp4"
    if not video.exists():
        render_scene_video(kind, seed, folder, frames, resolution_wh, write_images=False)
    return video


def cpu_seconds() -> float:
    """User + system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(
    segmenter: Segmenter, config: PipelineConfig, record: RecordConfig | None
) -> tuple[int, float, float, Recorder | None]:
    """One pipeline run; returns (frames, wall seconds, CPU seconds, the recorder if any).

    The recorder, when there is one, is closed (its files finished) within the timed run.
    """
    recorder = None
    sinks = []
    if record is not None:
        recorder = Recorder(record, lossless_streams=lossless_stream_ids(config))
        sinks.append(recorder)
    # The pipeline builds its own tracker from config.tracker; the recorder rides as an extra
    # sink so both sides share one config.
    pipeline = Pipeline(config, segmenter=segmenter, extra_sinks=sinks)
    cpu = cpu_seconds()
    start = time.perf_counter()
    summary = pipeline.run()  # includes closing the sinks: the recording is finished
    return summary.total_frames, time.perf_counter() - start, cpu_seconds() - cpu, recorder


@dataclass
class Side:
    """One configuration measured: recording off, or on with one preset."""

    name: str
    record: RecordConfig | None
    fps: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    recorder: Recorder | None = None
    size: int = 0
    files: int = 0


def main() -> None:
    """Measure and print; the last line is the key=value summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="builtin")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--resolution", default="1280x720", help="WxH of the rendered input")
    parser.add_argument("--repeats", type=int, default=3)
    default_preset = RecordEncoderConfig().preset
    parser.add_argument(
        "--presets",
        default=f"{default_preset},{'veryfast' if default_preset == 'ultrafast' else 'ultrafast'}",
        help="x264 presets to record with, comma-separated; the first is the headline",
    )
    parser.add_argument("--crf", type=int, default=None, help="x264 crf (default: the config's)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    width, height = (int(v) for v in args.resolution.split("x"))
    load_before = os.getloadavg()

    video = input_video("yard", 200, args.frames, (width, height))
    out = Path(tempfile.mkdtemp(prefix="streamseg-bench-rec-"))
    config = load_pipeline_text(
        f"sources:\n  - {{id: cam, type: file, path: '{video}'}}\n"
        f"model: {{weights: '{args.weights}', device: cpu, batch_size: 1}}\n"
        f"outputs:\n  jsonl: {{path: '{out / 'det.jsonl'}'}}\n"
    )
    sides = [Side("off", None)]
    for preset in args.presets.split(","):
        encoder: dict[str, object] = {"preset": preset}
        if args.crf is not None:
            encoder["crf"] = args.crf
        record = RecordConfig.model_validate(
            {"encoder": encoder, "continuous": {"dir": str(out / "rec"), "annotated": True}}
        )
        sides.append(Side(f"on {preset}", record))
    segmenter = load_segmenter(ModelConfig(weights=args.weights, device="cpu", batch_size=1))
    info = segmenter.info
    print(
        f"model {info.path} input {info.input_hw[1]}x{info.input_hw[0]}, torch threads "
        f"{torch.get_num_threads()}, input {width}x{height}, {args.frames} frames, "
        f"{os.cpu_count()} CPUs"
    )
    run(segmenter, config, None)  # warm-up: first forwards, page cache

    for repeat in range(args.repeats):
        # Rotate the order so no side always runs first (or right after another).
        for side in sides[repeat % len(sides) :] + sides[: repeat % len(sides)]:
            shutil.rmtree(out / "rec", ignore_errors=True)
            frames, wall, cpu, recorder = run(segmenter, config, side.record)
            side.fps.append(frames / wall)
            side.cpu_ms.append(1000 * cpu / frames)
            if recorder is not None:
                side.recorder = recorder
                files = list((out / "rec").rglob("*.mp4"))
                side.files, side.size = len(files), sum(p.stat().st_size for p in files)
    shutil.rmtree(out, ignore_errors=True)

    off = sides[0]
    duration_s = args.frames / 15.0  # render_scene_video's default rate
    for side in sides:
        label = f"pipeline, recording {side.name}"
        print(
            f"{label:<34} {max(side.fps):7.2f} fps  runs {[round(v, 2) for v in side.fps]}  "
            f"CPU {min(side.cpu_ms):6.1f} ms/frame"
        )
    summary: list[str] = []
    for index, side in enumerate(sides[1:]):
        assert side.recorder is not None and side.record is not None
        stats = side.recorder.stats()["cam"]
        ratio = max(side.fps) / max(off.fps)
        # Each repeat's runs are neighbours in time: their ratio sees the same machine load.
        paired = statistics.median(on / o for on, o in zip(side.fps, off.fps, strict=True))
        # With every core busy (other work, more streams), fps follows CPU time per frame.
        cpu_bound = min(off.cpu_ms) / min(side.cpu_ms)
        mbit_s = 8 * side.size / duration_s / 1e6
        print(
            f"{side.name}: ratio {ratio:.3f} (best runs), {paired:.3f} (median per repeat), "
            f"{cpu_bound:.3f} (CPU-bound); encoder {side.recorder.encoder_name} crf "
            f"{side.record.encoder.crf}, +{min(side.cpu_ms) - min(off.cpu_ms):.1f} ms CPU/frame, "
            f"{mbit_s:.2f} Mbit/s, {stats.frames_encoded} encoded, {stats.frames_dropped} dropped"
        )
        suffix = "" if index == 0 else f"_{side.record.encoder.preset}"
        if index == 0:
            summary += [
                f"encoder={side.recorder.encoder_name}",
                f"preset={side.record.encoder.preset}",
                f"crf={side.record.encoder.crf}",
            ]
        summary += [
            f"ratio{suffix}={ratio:.3f}",
            f"paired_ratio{suffix}={paired:.3f}",
            f"cpu_bound_ratio{suffix}={cpu_bound:.3f}",
            f"fps_on{suffix}={max(side.fps):.2f}",
            f"mbit_s{suffix}={mbit_s:.2f}",
            f"dropped{suffix}={stats.frames_dropped}",
        ]
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    summary += [
        f"fps_off={max(off.fps):.2f}",
        f"resolution={width}x{height}",
        f"frames={args.frames}",
        f"load1_before={load_before[0]:.2f}",
        f"load1_after={load_after[0]:.2f}",
    ]
    print(" ".join(summary))


if __name__ == "__main__":
    main()

"""Forward cost of network variants a next training run could try, beside the shipped file.

Each variant is built with random weights, exported like the shipped file (BN folded,
TorchScript at the shipped input size) and timed interleaved with it, so a busy moment of the
host slows every file alike. Weights do not change the cost of this network, only its shape.

    python bench/model_variants.py [--repeats 40] [--threads 2]

Ends with one line of ``key=value`` figures: each variant's median in ms and its ratio to the
shipped file.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from streamseg.config.model import ModelConfig
from streamseg.models import load_segmenter
from streamseg.synth import CLASS_NAMES
from streamseg.train.export import export_torchscript
from streamseg.train.net import NetConfig, SegLite

VARIANTS: dict[str, NetConfig] = {
    "same_shape": NetConfig(p4_head=True),
    "num_masks_32": NetConfig(p4_head=True, num_masks=32),
    "proto_width_64": NetConfig(p4_head=True, proto_width=64),
    "p4_width_16": NetConfig(p4_head=True, p4_width=16),
}
"""Shapes against the shipped one (stage 7: stride-4 level, 24 prototypes, prototype branch 48
wide, stride-4 level 32 wide). ``same_shape`` checks that random weights time like trained ones."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    def forward(weights: str) -> Callable[[torch.Tensor], object]:
        """The file's network as the runtime loads it (what ``bench/model.py`` times)."""
        config = ModelConfig(weights=weights, device="cpu", threads=args.threads)
        return load_segmenter(config).backend

    shipped = load_segmenter(ModelConfig(weights="builtin", device="cpu", threads=args.threads))
    height, width = shipped.info.input_hw
    modules: dict[str, Callable[[torch.Tensor], object]] = {"shipped": shipped.backend}
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg in VARIANTS.items():
            path = export_torchscript(
                SegLite(cfg).eval(), Path(tmp) / f"{name}.torchscript", CLASS_NAMES, (height, width)
            )
            modules[name] = forward(str(path))
    x = torch.rand(1, 3, height, width).contiguous(memory_format=torch.channels_last)
    times: dict[str, list[float]] = {name: [] for name in modules}
    with torch.inference_mode():
        for module in modules.values():
            for _ in range(5):
                module(x)
        for _ in range(args.repeats):
            for name, module in modules.items():
                start = time.perf_counter()
                module(x)
                times[name].append((time.perf_counter() - start) * 1e3)
    base = statistics.median(times["shipped"])
    print(f"forward at batch 1, input {width}x{height}, {args.threads} threads, interleaved:")
    summary = []
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"  {name:16s} median {median:6.1f} ms  min {min(values):6.1f} ms  x{median / base:.3f}"
        )
        summary.append(f"{name}_ms={median:.1f}")
        if name != "shipped":
            summary.append(f"{name}_ratio={median / base:.3f}")
    print(" ".join(summary))


if __name__ == "__main__":
    main()

"""Batch-1 CPU latency of the built-in network at its input size.

Times the eager network (BatchNorm folded), the TorchScript export as the runtime loads it
(``torch.jit.load``), the same frozen, and the ONNX export in onnxruntime; each with a
channels-last float input, and the TorchScript file with bf16 autocast too.

Run: ``.venv/bin/python bench/model_speed.py --imgsz 256 448 --threads 2``
(``--weights FILE.torchscript`` times a trained export instead of a fresh network).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from streamseg.train.export import export_onnx, export_torchscript
from streamseg.train.net import NetConfig, RuntimeHead, SegLite, count_parameters


def _time(fn: Callable[[], object], n: int) -> tuple[float, float]:
    for _ in range(5):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return statistics.median(out), min(out)


def main() -> None:
    """Print median and best latency in milliseconds per variant."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--imgsz", type=int, nargs=2, default=[256, 448], metavar=("H", "W"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-n", type=int, default=50)
    ap.add_argument("--weights", default="", help="a .torchscript export to time")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    h, w = args.imgsz
    x = torch.rand(1, 3, h, w).contiguous(memory_format=torch.channels_last)
    net = SegLite(NetConfig()).eval()
    print(f"parameters {count_parameters(net) / 1e6:.3f} M, input {h}x{w}, {args.threads} threads")
    with tempfile.TemporaryDirectory() as tmp:
        names = [f"c{i}" for i in range(net.cfg.num_classes)]
        ts_path = Path(args.weights) if args.weights else Path(tmp) / "m.torchscript"
        if not args.weights:
            export_torchscript(net, ts_path, names, (h, w))
        onnx_path = export_onnx(net, Path(tmp) / "m.onnx", names, (h, w))
        ts = torch.jit.load(str(ts_path)).eval()
        frozen = torch.jit.freeze(torch.jit.load(str(ts_path)).eval())
        eager = RuntimeHead(SegLite(NetConfig()).eval().fuse()).eval()
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        xn = np.ascontiguousarray(x.numpy())

        def bf16() -> object:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return ts(x)

        variants: dict[str, Callable[[], object]] = {
            "eager (BN folded)": lambda: eager(x),
            "torchscript file": lambda: ts(x),
            "torchscript frozen": lambda: frozen(x),
            "torchscript + bf16": bf16,
            "onnxruntime": lambda: sess.run(None, {"images": xn}),
        }
        with torch.inference_mode():
            for name, fn in variants.items():
                med, best = _time(fn, args.n)
                print(f"{name:22s} median {med:6.1f} ms   best {best:6.1f} ms")


if __name__ == "__main__":
    main()

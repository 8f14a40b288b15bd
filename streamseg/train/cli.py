"""``streamseg train``: train / fine-tune the built-in network, evaluate it, export it.

Examples::

    # from scratch on the synthetic world, in the background, resumable
    nohup nice -n 5 python -m streamseg.train --data synth --out runs/builtin --threads 1 \\
        --resume > runs/builtin.log 2>&1 &
    # fine-tune our weights on a COCO instance-segmentation dataset
    python -m streamseg.train --data ann.json --images imgs/ --init builtin --out runs/coco
    # export the best weights of a run without training
    python -m streamseg.train --out runs/builtin --export
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from streamseg.argtypes import positive_int
from streamseg.train.augment import AugmentConfig
from streamseg.train.coco import CocoSource
from streamseg.train.evaluate import (
    EvalSet,
    evaluate,
    evaluate_runtime,
    source_eval_set,
    synth_eval_set,
)
from streamseg.train.export import export_onnx, export_torchscript
from streamseg.train.loop import (
    InitSource,
    TrainConfig,
    load_checkpoint,
    load_init_source,
    train,
)
from streamseg.train.net import NetConfig, RuntimeHead, SegLite
from streamseg.train.sources import SampleSource, SynthSource

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``streamseg train``."""
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="streamseg train",
        description="Train or fine-tune streamseg's built-in instance-segmentation network.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--data",
        default="synth",
        help="'synth' (render the synthetic world on the fly) or a COCO instance-segmentation "
        "JSON (polygon or RLE)",
    )
    p.add_argument("--images", default=None, help="image folder of a COCO --data")
    p.add_argument("--val", default=None, help="COCO JSON to evaluate on (COCO --data only)")
    p.add_argument("--val-images", default=None, help="image folder of --val")
    p.add_argument("--out", default=d.out, help="run folder (checkpoints, curve, exports)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt if present")
    p.add_argument(
        "--force",
        action="store_true",
        help="start afresh in an --out that holds an earlier run's last.pt (overwriting it)",
    )
    p.add_argument(
        "--init", default=None, help="fine-tune from 'builtin', a .torchscript export or a .pt"
    )
    p.add_argument("--steps", type=int, default=d.steps, help="total optimizer steps")
    p.add_argument("--batch", type=int, default=d.batch, help="images per step")
    p.add_argument(
        "--imgsz",
        type=int,
        nargs=2,
        default=list(d.imgsz),
        metavar=("H", "W"),
        help="network input (multiples of 32)",
    )
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=d.warmup_steps, help="warmup steps")
    p.add_argument("--eval-every", type=int, default=d.eval_every, help="steps between evals")
    p.add_argument("--eval-frames", type=int, default=40, help="held-out frames per scene kind")
    p.add_argument(
        "--eval-resolution",
        type=int,
        nargs=2,
        default=[640, 360],
        metavar=("W", "H"),
        help="resolution held-out synthetic frames are rendered at",
    )
    p.add_argument("--ckpt-every", type=int, default=d.ckpt_every, help="steps between saves")
    p.add_argument("--log-every", type=int, default=d.log_every, help="steps between log lines")
    p.add_argument("--threads", type=int, default=d.threads, help="torch threads")
    p.add_argument("--workers", type=int, default=d.workers, help="data worker processes")
    p.add_argument("--seed", type=int, default=d.seed, help="run seed")
    p.add_argument(
        "--time-limit",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop (with a checkpoint) after this much wall time; --resume continues",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="torch device of the network: 'auto' (cuda when available, else cpu), 'cpu', 'cuda'",
    )
    p.add_argument(
        "--render-widths",
        type=int,
        nargs="+",
        default=None,
        metavar="W",
        help="widths of 16:9 synthetic training frames (default: input width x 1, 8/7, 10/7)",
    )
    p.add_argument(
        "--fresh-scenes",
        type=float,
        default=0.3,
        help="share of synthetic samples drawn from a brand-new scene (new background)",
    )
    p.add_argument("--mosaic", type=float, default=0.0, help="probability of a 2x2 mosaic")
    p.add_argument(
        "--p4-head",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a light detection level at stride 4 (for objects a few pixels across); default: "
        "as the --init network has it (the built-in one does), else none",
    )
    p.add_argument(
        "--num-masks",
        type=positive_int,
        default=None,
        help=f"prototypes (mask coefficients); default: the --init network's, else "
        f"{NetConfig().num_masks}. More than the --init network's start from its own (the extra "
        "coefficients at zero: the same masks)",
    )
    p.add_argument(
        "--mask-grid-gain",
        type=float,
        default=d.mask_grid_gain,
        help="gain of the mask loss at prototype resolution (stride 4)",
    )
    p.add_argument(
        "--mask-roi-gain",
        type=float,
        default=d.mask_roi_gain,
        help="gain of the mask loss at input resolution, on a grid of pixels over each object's "
        "box (0: off)",
    )
    p.add_argument(
        "--export",
        action="store_true",
        help="export <out>/best.pt (else last.pt) to TorchScript + ONNX and exit",
    )
    p.add_argument(
        "--export-imgsz",
        type=int,
        nargs=2,
        default=None,
        metavar=("H", "W"),
        help="with --export: the input size of the exported files (multiples of 32; default: the "
        "checkpoint's training size). A larger input than the training one enlarges small, far "
        "objects at some cost in speed (the network is fully convolutional)",
    )
    p.add_argument(
        "--mask-threshold",
        type=float,
        default=None,
        metavar="T",
        help="with --export: record T in the files as the mask probability threshold the "
        "runtime uses for them (default: none recorded, the runtime uses 0.5); with "
        "--eval-weights: evaluate at T instead of the file's own. Compare a few values with "
        "--eval-weights, then export with the best",
    )
    p.add_argument("--no-export", action="store_true", help="do not export at the end")
    p.add_argument(
        "--eval-weights",
        default=None,
        metavar="FILE",
        help="evaluate 'builtin' or an exported .torchscript/.onnx through the runtime "
        "(streamseg.models) on the held-out set, print per-kind mask mAP and exit",
    )
    return p


def _net_config(args: argparse.Namespace, init: InitSource | None) -> NetConfig:
    """The new network's shape: ``--p4-head`` and ``--num-masks`` as given, else as the
    ``--init`` network has them (a fine-tune of the built-in weights keeps its stride-4 level
    without being told), else the defaults."""
    default = NetConfig()
    source = init.net if init is not None else None
    p4_head = args.p4_head
    if p4_head is None:
        p4_head = source.p4_head if source is not None else default.p4_head
    num_masks = args.num_masks
    if num_masks is None:
        num_masks = source.num_masks if source is not None else default.num_masks
    if source is not None and (args.p4_head is None or args.num_masks is None):
        logger.info(
            "network shape from --init %s: stride-4 level %s, %d prototypes",
            init.path if init is not None else "",
            "on" if p4_head else "off",
            num_masks,
        )
    return NetConfig(p4_head=p4_head, num_masks=num_masks)


def _resolve_init(init: str | None) -> str | None:
    if init != "builtin":
        return init
    from streamseg.models.builtin import builtin_weights_path

    return str(builtin_weights_path())


VAL_IMAGES = 200
"""Images of ``--val`` evaluated (the first ones): an evaluation pass stays minutes, not hours."""


def _sources(args: argparse.Namespace, imgsz: tuple[int, int]) -> tuple[SampleSource, EvalSet]:
    if args.data == "synth" and args.val:
        raise SystemExit(
            "streamseg train: --val goes with a COCO --data (the synthetic world holds out its "
            "own scenes: --eval-frames)"
        )
    if args.data == "synth":
        # 16:9 frames (letterboxed with a few rows of padding, like camera frames) at the input
        # width and larger, so the downscale path of the runtime is trained too.
        widths = args.render_widths or [imgsz[1], imgsz[1] * 8 // 7, imgsz[1] * 10 // 7]
        source: SampleSource = SynthSource(
            [(2 * (w // 2), 2 * round(w * 9 / 32)) for w in widths],
            fresh_scene_prob=args.fresh_scenes,
        )
        eval_set: EvalSet = synth_eval_set(args.eval_frames, tuple(args.eval_resolution))
        return source, eval_set
    if args.images is None:
        raise SystemExit("streamseg train: --data is a COCO JSON, so --images DIR is required")
    coco = _coco_source(args.data, args.images)
    if args.val:
        val = _coco_source(args.val, args.val_images or args.images)
        _use_training_classes(coco, val, args.val)
        if len(val) > VAL_IMAGES:
            logger.info(
                "--val %s: evaluating its first %d of %d images", args.val, VAL_IMAGES, len(val)
            )
        try:
            return coco, source_eval_set(val, min(len(val), VAL_IMAGES))
        except (OSError, ValueError) as exc:  # an image of --val that cannot be read
            raise SystemExit(f"streamseg train: --val {args.val}: {exc}") from None
    logger.warning(
        "no --val: the run is not evaluated and keeps no best.pt (--export then exports last.pt)"
    )
    return coco, {}


def _coco_source(annotations: str, images: str) -> CocoSource:
    """The COCO file as a source; a problem with it ends the command with its message (which
    names the annotations and images), not a traceback."""
    try:
        return CocoSource(annotations, images)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"streamseg train: {exc}") from None


def _use_training_classes(train: CocoSource, val: CocoSource, val_path: str) -> None:
    """Give the validation file's categories the training file's class ids.

    Each file numbers its own categories; a val split listing only some of them would have
    its classes shifted onto other training classes. Categories are matched by id, and the
    names must agree.
    """

    def name(source: CocoSource, cat: int) -> str:
        return source.class_names[source.cat_to_class[cat]]

    for cat in val.cat_to_class:
        if cat not in train.cat_to_class:
            raise SystemExit(
                f"streamseg train: --val {val_path}: category {cat} ({name(val, cat)!r}) is not "
                f"a category of the training data (its categories: {train.class_names})"
            )
        if name(val, cat) != name(train, cat):
            raise SystemExit(
                f"streamseg train: --val {val_path}: category {cat} is {name(val, cat)!r}, but "
                f"{name(train, cat)!r} in the training data"
            )
    val.cat_to_class = {cat: train.cat_to_class[cat] for cat in val.cat_to_class}


def _class_names(args: argparse.Namespace, source: SampleSource) -> list[str]:
    if args.data == "synth":
        from streamseg.synth import CLASS_NAMES

        return list(CLASS_NAMES)
    return list(source.class_names)


def _export(
    out: Path, imgsz_arg: Sequence[int] | None = None, mask_threshold: float | None = None
) -> int:
    path = out / "best.pt" if (out / "best.pt").is_file() else out / "last.pt"
    if not path.is_file():
        logger.error("no checkpoint in %s (expected best.pt or last.pt)", out)
        return 2
    ckpt = load_checkpoint(path)
    net = SegLite(NetConfig.from_dict(ckpt["net_config"]))
    net.load_state_dict(ckpt["ema"])
    h, w = imgsz_arg or ckpt["train_config"]["imgsz"]
    names = list(ckpt["class_names"])
    carried = ""
    if mask_threshold is None and ckpt.get("mask_threshold") is not None:
        # Calibrated for the run's --init weights and carried over (train.loop.train).
        mask_threshold = float(ckpt["mask_threshold"])
        carried = " (carried over from the run's --init weights; --mask-threshold sets another)"
    try:
        ts = export_torchscript(net, out / "seglite.torchscript", names, (h, w), mask_threshold)
        ox = export_onnx(net, out / "seglite.onnx", names, (h, w), mask_threshold=mask_threshold)
    except ValueError as exc:
        logger.error("streamseg train --export: %s", exc)
        return 2
    recorded = "" if mask_threshold is None else f", mask threshold {mask_threshold:g}{carried}"
    print(f"exported step {ckpt['step']} of {path} at {h}x{w} (HxW){recorded}: {ts} {ox}")
    return 0


def _resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; anything else is checked."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise SystemExit(f"streamseg train: --device {name!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"streamseg train: --device {name!r}: torch sees no CUDA device")
    return name


def _argument_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the training arguments, found before any data is read."""
    h, w = args.imgsz
    if h < 32 or w < 32 or h % 32 or w % 32:
        return f"--imgsz {h} {w}: expected multiples of 32 (e.g. 256 448)"
    if args.batch < 1:
        return f"--batch {args.batch}: expected at least 1"
    if args.steps < 1:
        return f"--steps {args.steps}: expected at least 1"
    if args.warmup >= args.steps and not args.resume:
        logger.warning(
            "--warmup %d is not below --steps %d: the learning rate never reaches --lr",
            args.warmup,
            args.steps,
        )
    return None


def train_main(argv: list[str]) -> int:
    """Entry point of ``streamseg train``.

    Args:
        argv: command-line arguments after ``train``.

    Returns:
        Process exit status (0: done or stopped cleanly with a checkpoint).
    """
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    out = Path(args.out)
    if args.export:
        return _export(out, args.export_imgsz, args.mask_threshold)
    if args.export_imgsz is not None:
        logger.error("--export-imgsz goes with --export (the end-of-training export uses --imgsz)")
        return 2
    if args.mask_threshold is not None and not args.eval_weights:
        logger.error("--mask-threshold goes with --export or --eval-weights")
        return 2
    imgsz = (int(args.imgsz[0]), int(args.imgsz[1]))
    if args.eval_weights:
        source, held_out = _sources(args, imgsz)
        if not held_out:
            logger.error("--eval-weights needs a held-out set: --data synth, or --val with COCO")
            return 2
        names = _class_names(args, source)
        try:
            res = evaluate_runtime(
                args.eval_weights, held_out, names, mask_threshold=args.mask_threshold
            )
        except ValueError as exc:
            logger.error("streamseg train --eval-weights %s: %s", args.eval_weights, exc)
            return 2
        print(json.dumps(res))
        return 0
    problem = _argument_problem(args)
    if problem is not None:
        logger.error("streamseg train: %s", problem)
        return 2
    device = _resolve_device(args.device)
    earlier = out / "last.pt"
    if earlier.is_file() and not (args.resume or args.force):
        logger.error(
            "%s holds an earlier run's checkpoint: --resume continues it, --force starts "
            "afresh over it, or choose another --out",
            earlier,
        )
        return 2
    init_source: InitSource | None = None
    if args.init is not None and not (args.resume and earlier.is_file()):
        try:
            init_source = load_init_source(_resolve_init(args.init) or "")
        except (ValueError, RuntimeError) as exc:  # RuntimeError: torch cannot read the file
            logger.error("streamseg train: %s", exc)
            return 2
    cfg = TrainConfig(
        out=str(out),
        steps=args.steps,
        batch=args.batch,
        imgsz=imgsz,
        lr=args.lr,
        warmup_steps=args.warmup,
        ckpt_every=args.ckpt_every,
        eval_every=args.eval_every,
        log_every=args.log_every,
        threads=args.threads,
        workers=args.workers,
        seed=args.seed,
        device=device,
        export=not args.no_export,
        augment=dataclasses.replace(AugmentConfig(), mosaic=args.mosaic),
        mask_grid_gain=args.mask_grid_gain,
        mask_roi_gain=args.mask_roi_gain,
        net=_net_config(args, init_source),
    )
    source, eval_set = _sources(args, imgsz)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.warning("signal %d: stopping after this step (checkpoint follows)", signum)
        stop.set()

    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = train(
            cfg,
            source,
            eval_set or None,
            resume=args.resume,
            init=init_source,
            stop=stop,
            deadline=None if args.time_limit is None else time.time() + args.time_limit,
        )
    except (ValueError, OSError, FloatingPointError) as exc:
        # Bad data met mid-run (an image whose size contradicts its annotation, a file that
        # cannot be read; a data worker's error arrives with its traceback as the message),
        # a resumed run on other data, a loss that diverged: the cause, not a traceback.
        message = str(exc).strip().splitlines()
        logger.debug("training failed", exc_info=True)
        logger.error("streamseg train: %s", message[-1] if message else type(exc).__name__)
        return 1
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if eval_set and not result.last_eval and not result.stopped:
        ckpt = load_checkpoint(result.checkpoint)
        net = SegLite(NetConfig.from_dict(ckpt["net_config"]))
        net.load_state_dict(ckpt["ema"])
        result.last_eval = evaluate(RuntimeHead(net.eval()), eval_set, imgsz, source.class_names)
    exported = (
        f"exports of the final (EMA) weights of step {result.step}: "
        f"{[str(p) for p in result.exports]} (train --export exports best.pt when there is one)"
        if result.exports
        else "no export"
    )
    print(
        f"{'stopped' if result.stopped else 'finished'} at step {result.step}; checkpoint "
        f"{result.checkpoint}; eval {result.last_eval}; {exported}",
        file=sys.stderr,
    )
    return 0

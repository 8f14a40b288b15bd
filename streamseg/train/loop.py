"""The training loop: AdamW, warmup + cosine, EMA, checkpoints, periodic mask mAP, curve log.

Design for slow CPUs (see PLATFORM.md): the optimizer steps on every batch (no gradient
accumulation), data is rendered on the fly by DataLoader workers while the main process trains,
and a run is a pure function of (seed, step): :func:`train` resumes from ``<out>/last.pt`` and
continues with exactly the batches, learning rates and EMA it would have had without the stop.

Files under ``out``:

* ``last.pt``: checkpoint (model, EMA, optimizer, scheduler, step, torch RNG, configs), written
  every ``ckpt_every`` steps, on SIGINT/SIGTERM and at the end; atomically (tmp + rename).
  Loadable with ``torch.load(weights_only=True)``.
* ``best.pt``: the checkpoint with the best mean mask mAP@0.5 so far.
* ``curve.jsonl``: one JSON object per log point (``step``, ``time_s``, ``lr``, losses,
  ``it_s``) and per evaluation (``step``, ``map50``, per-group mAP).
* ``seglite.torchscript`` / ``seglite.onnx``: exports of the EMA weights (``export=True``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from streamseg.train.augment import AugmentConfig
from streamseg.train.data import RangeSampler, TrainDataset, collate, images_to_input, worker_init
from streamseg.train.evaluate import EvalSet, evaluate
from streamseg.train.export import export_onnx, export_torchscript, load_runtime_export
from streamseg.train.loss import LossWeights, Targets, segment_loss
from streamseg.train.net import (
    NetConfig,
    RuntimeHead,
    SegLite,
    count_parameters,
    is_class_layer,
)
from streamseg.train.sources import SampleSource

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "streamseg-seglite-ckpt-1"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run (stored in its checkpoint).

    Attributes:
        out: run folder.
        steps: total optimizer steps of the run (the cosine schedule ends here).
        batch: images per step.
        imgsz: (H, W) network input, multiples of 32.
        lr: peak learning rate (AdamW).
        final_lr_ratio: learning rate at the last step, as a fraction of ``lr``.
        warmup_steps: linear warmup length.
        weight_decay: AdamW decay on convolution weights (not on BN / biases).
        ema_decay: EMA decay once warmed up.
        ema_tau: EMA warm-up constant in steps (decay * (1 - exp(-updates / tau))).
        grad_clip: gradient-norm clip.
        ckpt_every: steps between checkpoints.
        eval_every: steps between evaluations (0: never during training).
        log_every: steps between curve records / log lines.
        threads: torch threads of the training process.
        workers: DataLoader worker processes rendering data (0: render in the main process).
        seed: run seed (data and initialization).
        device: torch device of the network ("cpu", "cuda", "cuda:1"); data is rendered on the
            CPU by the workers either way.
        worker_timeout_s: a batch that takes a data worker longer than this is an error (a
            stuck worker must not hang the run).
        export: export TorchScript + ONNX of the EMA weights at the end.
        mask_grid_gain: gain of the mask loss at prototype resolution (stride 4).
        mask_roi_gain: gain of the mask loss at input resolution on each object's point grid
            (0: off, as in the runs behind the first shipped weights).
        net: network shape.
        augment: augmentation strengths.
    """

    out: str = "runs/builtin"
    steps: int = 60_000
    batch: int = 8
    imgsz: tuple[int, int] = (256, 448)
    lr: float = 2e-3
    final_lr_ratio: float = 0.02
    warmup_steps: int = 300
    weight_decay: float = 5e-4
    ema_decay: float = 0.9995
    ema_tau: float = 1000.0
    grad_clip: float = 10.0
    ckpt_every: int = 200
    eval_every: int = 1000
    log_every: int = 20
    threads: int = 1
    workers: int = 1
    seed: int = 0
    device: str = "cpu"
    worker_timeout_s: int = 600
    export: bool = True
    mask_grid_gain: float = 7.5
    mask_roi_gain: float = 0.0
    net: NetConfig = field(default_factory=NetConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (for ``weights_only`` checkpoints and the curve log)."""
        d = dataclasses.asdict(self)
        d["imgsz"] = list(self.imgsz)
        d["net"] = self.net.to_dict()
        return d


class WarmupCosine:
    """LR factor: linear warmup from 0.01, then cosine from 1 to ``final`` at ``total`` steps.

    A callable object (not a closure) so ``LambdaLR.state_dict`` stores its fields.
    """

    def __init__(self, warmup: int, total: int, final: float) -> None:
        self.warmup = warmup
        self.total = total
        self.final = final

    def __call__(self, step: int) -> float:
        """Factor for ``step`` (0-based count of steps taken)."""
        if step < self.warmup:
            return 0.01 + 0.99 * step / max(1, self.warmup)
        t = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.final + (1 - self.final) * 0.5 * (1 + math.cos(math.pi * t))


class ModelEMA:
    """Exponential moving average of a model's weights and buffers (YOLO-style warm-up)."""

    def __init__(self, model: nn.Module, decay: float, tau: float) -> None:
        self.ema = copy.deepcopy(model).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.tau = tau
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend ``model`` into the average."""
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        msd = model.state_dict()
        for k, v in self.ema.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(msd[k].detach(), alpha=1 - d)
            else:
                v.copy_(msd[k])


def build_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with weight decay on conv / linear weights only."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim == 4 and not name.endswith(".bias") else no_decay).append(p)
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=lr,
        betas=(0.9, 0.999),
    )


CURVE_FILE = "curve.jsonl"
"""The run's learning curve in its ``--out``: one JSON line per log step and per evaluation."""

EARLIER_RUN_FILES = ("best.pt", "seglite.torchscript", "seglite.onnx")
"""What a run starting afresh in an old ``--out`` removes (with :data:`CURVE_FILE`); its own
``last.pt`` it overwrites."""


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """``torch.save`` to ``path`` via a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`train` (``weights_only=True``).

    Raises:
        ValueError: the file is not a streamseg training checkpoint.
    """
    ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        got = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path}: expected a checkpoint of format {CHECKPOINT_FORMAT}, got {got}")
    return ckpt


def _to_device(targets: Targets, device: torch.device) -> Targets:
    """Move every tensor of a batch's targets (the optional ones may be None)."""
    return Targets._make(None if t is None else t.to(device, non_blocking=True) for t in targets)


@dataclass(frozen=True)
class InitSource:
    """What ``--init`` names: weights, the network's shape and the classes they were trained on.

    Attributes:
        path: the file.
        weights: the state dict (a checkpoint's EMA, or an export's network).
        net: the source network's shape; ``None`` for a checkpoint that does not record it.
        class_names: the classes of its class layer; ``None`` when not recorded.
        mask_threshold: the calibrated mask threshold its export records (or its checkpoint
            carries over from its own ``--init``); ``None``: none (the runtime's 0.5).
    """

    path: Path
    weights: dict[str, torch.Tensor]
    net: NetConfig | None
    class_names: list[str] | None
    mask_threshold: float | None = None


def load_init_source(init: str) -> InitSource:
    """Read a ``.pt`` checkpoint of :func:`train` or one of our ``.torchscript`` exports.

    Raises:
        ValueError: the file is missing, or is neither (the message names it and says what
            ``--init`` takes).
    """
    path = Path(init)
    if not path.is_file():
        raise ValueError(f"--init {init}: no such file")
    if path.suffix == ".pt":
        ckpt = load_checkpoint(path)
        net_cfg = ckpt.get("net_config")
        names = ckpt.get("class_names")
        threshold = ckpt.get("mask_threshold")
        return InitSource(
            path,
            ckpt["ema"],
            NetConfig.from_dict(net_cfg) if net_cfg is not None else None,
            list(names) if names is not None else None,
            float(threshold) if threshold is not None else None,
        )
    if path.suffix == ".torchscript":
        net, names, meta = load_runtime_export(path)
        threshold = meta.get("mask_threshold")
        return InitSource(
            path,
            net.state_dict(),
            net.cfg,
            list(names),
            float(threshold) if isinstance(threshold, int | float) else None,
        )
    raise ValueError(
        f"--init {init}: expected 'builtin', a .torchscript export of streamseg train or a .pt "
        "checkpoint of it (an .onnx file cannot seed training)"
    )


def init_weights(
    net: SegLite, init: str | InitSource, class_names: list[str] | None = None
) -> None:
    """Copy weights into ``net`` from a checkpoint (its EMA) or one of our TorchScript exports.

    The class layers are copied class by class, by name: a class the source knows keeps what
    it learned (in this network's order), a new class starts fresh. Without names on either
    side (an old checkpoint), they are copied when their shapes agree.
    Other tensors whose shape differs keep their fresh initialization; they are logged. One
    exception: a network with more prototypes (``num_masks``) than the source's gets the
    source's prototypes and coefficients as its first ones (:func:`_grow_mask_rows`), and
    starts out predicting the same masks.

    Args:
        net: the network to fill.
        init: path of a ``.pt`` checkpoint or a ``.torchscript`` export, or the source read.
        class_names: ``net``'s classes, in order.

    Raises:
        ValueError: see :func:`load_init_source`.
    """
    source = load_init_source(init) if isinstance(init, str) else init
    src = source.weights
    dst = net.state_dict()
    grown = _grow_mask_rows(src, dst)
    by_name: dict[str, torch.Tensor] = {}
    if class_names is not None and source.class_names is not None:
        by_name = _class_rows_by_name(src, dst, source.class_names, class_names)
        kept = [name for name in class_names if name in source.class_names]
        fresh = [name for name in class_names if name not in source.class_names]
        logger.info(
            "class layer: %d of %d classes carried over by name%s%s",
            len(kept),
            len(class_names),
            f" ({', '.join(kept)})" if kept else "",
            f"; fresh: {', '.join(fresh)}" if fresh else "",
        )
    copied = {
        k: v
        for k, v in src.items()
        if k in dst
        and v.shape == dst[k].shape
        and k not in grown
        and k not in by_name
        and not (by_name and is_class_layer(k))
    }
    skipped = [k for k in dst if k not in copied and k not in grown and k not in by_name]
    dst.update(copied)
    dst.update(grown)
    dst.update(by_name)
    net.load_state_dict(dst)
    unused = [k for k in src if k not in dst]
    if grown:
        logger.info("%d mask tensors widened to %d prototypes", len(grown), net.cfg.num_masks)
    logger.info(
        "initialized from %s (%d tensors kept fresh: %s)", source.path, len(skipped), skipped[:6]
    )
    if unused:
        # A layer the source has and this network lacks (its stride-4 level without
        # --p4-head): what it learned is lost; say so, it is rarely meant.
        logger.warning(
            "%d tensors of %s have no place in this network and are left out: %s",
            len(unused),
            source.path,
            ", ".join(sorted({k.split(".")[0] for k in unused})),
        )


def _class_rows_by_name(
    src: dict[str, torch.Tensor],
    dst: dict[str, torch.Tensor],
    src_names: list[str],
    dst_names: list[str],
) -> dict[str, torch.Tensor]:
    """The class-layer tensors of ``dst`` with each class's row taken from the source's row of
    the same name (the others as initialized)."""
    out: dict[str, torch.Tensor] = {}
    pairs = [(i, src_names.index(name)) for i, name in enumerate(dst_names) if name in src_names]
    for key, new in dst.items():
        old = src.get(key)
        if old is None or not is_class_layer(key) or old.shape[1:] != new.shape[1:]:
            continue
        if old.shape[0] != len(src_names) or new.shape[0] != len(dst_names):
            continue
        rows = new.clone()
        for i, j in pairs:
            rows[i] = old[j]
        out[key] = rows
    return out


def _grow_mask_rows(
    src: dict[str, torch.Tensor], dst: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Mask tensors of ``dst`` (more prototypes) filled from ``src`` (fewer).

    The prototype layer (``proto.out``) and every mask-coefficient layer (``*.coef.*``) have one
    row per prototype along dim 0. Their first rows are copied from ``src``; the extra
    prototypes keep their fresh initialization and the extra coefficients are zero, so the
    masks (coefficients x prototypes) are the source's until training moves them. Class and box
    layers are never widened this way: their rows mean different things in another dataset.
    """
    out: dict[str, torch.Tensor] = {}
    for key, new in dst.items():
        old = src.get(key)
        mask_layer = key.startswith("proto.out.") or ".coef." in key
        if old is None or not mask_layer or old.shape == new.shape:
            continue
        if old.shape[1:] != new.shape[1:] or old.shape[0] > new.shape[0]:
            continue
        grown = new.clone() if key.startswith("proto.out.") else torch.zeros_like(new)
        grown[: old.shape[0]] = old
        out[key] = grown
    return out


@dataclass
class TrainResult:
    """What a call to :func:`train` did.

    Attributes:
        step: steps completed in total (including earlier sessions).
        stopped: True when a stop request ended the call before ``steps``.
        last_eval: the last evaluation's metrics (empty if none ran).
        checkpoint: path of ``last.pt``.
        exports: paths of exported files.
    """

    step: int
    stopped: bool
    last_eval: dict[str, float]
    checkpoint: Path
    exports: list[Path] = field(default_factory=list)


class _Progress:
    """A rich progress bar when stderr is a terminal; periodic log lines otherwise."""

    def __init__(self, total: int, start: int) -> None:
        self.live = sys.stderr.isatty()
        self._bar: Any = None
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self._task = self._bar.add_task("train", total=total, completed=start, info="")
            self._bar.start()

    def update(self, step: int, info: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=step, info=info)

    def note(self, text: str) -> None:
        """A line above the bar (a log record written to stderr would land inside it);
        logged at INFO without a bar."""
        if self._bar is not None:
            self._bar.console.print(text, highlight=False, soft_wrap=True)
        else:
            logger.info("%s", text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def train(
    cfg: TrainConfig,
    source: SampleSource,
    eval_set: EvalSet | None = None,
    *,
    resume: bool = False,
    init: str | InitSource | None = None,
    stop: threading.Event | None = None,
    on_step: Callable[[int, float], None] | None = None,
    deadline: float | None = None,
) -> TrainResult:
    """Train (or continue training) a :class:`SegLite` on ``source``.

    Args:
        cfg: the run's configuration. On resume, the checkpoint's network shape wins; ``steps``
            may be raised to extend a run (the cosine is recomputed for the new total).
        source: training samples.
        eval_set: held-out groups for periodic mask mAP (None: no evaluation).
        resume: continue from ``<out>/last.pt`` when it exists.
        init: fine-tune from this checkpoint / TorchScript export (ignored when resuming).
        stop: when set, the loop checkpoints after the current step and returns.
        on_step: called as ``on_step(step, loss)`` after every step (tests, tools).
        deadline: a ``time.time()`` after which the loop checkpoints and returns, as on ``stop``
            (a session's time box; the data workers are never signalled).

    Returns:
        What happened (:class:`TrainResult`).
    """
    torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "last.pt"
    class_names = list(source.class_names)
    ckpt = load_checkpoint(ckpt_path) if resume and ckpt_path.is_file() else None
    if ckpt is None:
        # A fresh run in an old folder: the earlier run's best.pt would outlive it and be what
        # --export picks (with that run's classes) if this run never evaluates; its exports
        # would pass for this run's if it is stopped or exports nothing; its curve would run
        # on into this one's.
        stale = [out / name for name in (*EARLIER_RUN_FILES, CURVE_FILE)]
        removed = [path.name for path in stale if path.is_file()]
        for name in removed:
            (out / name).unlink()
        if removed:
            logger.info("%s: removed an earlier run's %s (this run starts afresh)", out, removed)
    net_cfg = (
        NetConfig.from_dict(ckpt["net_config"])
        if ckpt is not None
        else dataclasses.replace(cfg.net, num_classes=len(class_names))
    )
    if net_cfg.num_classes != len(class_names):
        raise ValueError(
            f"{ckpt_path}: the checkpoint's network has {net_cfg.num_classes} classes, the data "
            f"has {len(class_names)} ({class_names})"
        )
    if ckpt is not None and list(ckpt["class_names"]) != class_names:
        raise ValueError(
            f"{ckpt_path}: the checkpoint was trained on classes {list(ckpt['class_names'])}, the "
            f"data has {class_names}; resume with the same data, or train afresh in another --out"
        )
    torch.manual_seed(cfg.seed)
    net = SegLite(net_cfg)
    # The mask threshold calibrated for the --init weights goes on with the run (recorded in
    # its checkpoints, used by its exports): a fine-tune keeps the masks' calibration.
    mask_threshold: float | None = None
    if ckpt is not None:
        recorded = ckpt.get("mask_threshold")
        mask_threshold = float(recorded) if recorded is not None else None
    elif init:
        init_source = load_init_source(init) if isinstance(init, str) else init
        init_weights(net, init_source, class_names)
        mask_threshold = init_source.mask_threshold
        if mask_threshold is not None:
            logger.info(
                "mask threshold %g of %s carried over (its exports record it; train --export "
                "--mask-threshold sets another)",
                mask_threshold,
                init_source.path,
            )
    net = net.to(device=device, memory_format=torch.channels_last).train()  # type: ignore[call-overload]
    ema = ModelEMA(net, cfg.ema_decay, cfg.ema_tau)
    opt = build_optimizer(net, cfg.lr, cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, WarmupCosine(cfg.warmup_steps, cfg.steps, cfg.final_lr_ratio)
    )
    step = 0
    best = -1.0
    if ckpt is not None:
        net.load_state_dict(ckpt["model"])
        ema.ema.load_state_dict(ckpt["ema"])
        ema.updates = int(ckpt["ema_updates"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        # The schedule follows this run's arguments: a longer --steps extends the cosine, and
        # a new --lr or --warmup applies from here on (the state dict holds the old ones).
        lam = sched.lr_lambdas[0]
        assert isinstance(lam, WarmupCosine)
        lam.total = cfg.steps
        lam.warmup = cfg.warmup_steps
        sched.base_lrs = [cfg.lr for _ in sched.base_lrs]
        for group in opt.param_groups:
            group["initial_lr"] = cfg.lr
            group["lr"] = cfg.lr * lam(sched.last_epoch)
        torch.set_rng_state(ckpt["torch_rng"])
        step = int(ckpt["step"])
        best = float(ckpt.get("best_map50", -1.0))
        logger.info("resumed %s at step %d", ckpt_path, step)
    logger.info(
        "SegLite: %.3f M parameters, input %dx%d (HxW, as --imgsz), %d classes %s, batch %d, "
        "%d threads, %d workers, device %s",
        count_parameters(net) / 1e6,
        cfg.imgsz[0],
        cfg.imgsz[1],
        net_cfg.num_classes,
        class_names,
        cfg.batch,
        cfg.threads,
        cfg.workers,
        device,
    )

    def checkpoint(path: Path) -> None:
        save_atomic(
            {
                "format": CHECKPOINT_FORMAT,
                "step": step,
                "net_config": net_cfg.to_dict(),
                "train_config": cfg.to_dict(),
                "class_names": class_names,
                "model": net.state_dict(),
                "ema": ema.ema.state_dict(),
                "ema_updates": ema.updates,
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "best_map50": best,
                "mask_threshold": mask_threshold,
            },
            path,
        )

    def run_eval() -> dict[str, float]:
        assert eval_set is not None
        ema_net = ema.ema
        assert isinstance(ema_net, SegLite)
        ema_net.eval()
        head = RuntimeHead(ema_net)

        def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out0, out1 = head(x.to(device))
            return out0.cpu(), out1.cpu()

        return evaluate(forward, eval_set, cfg.imgsz, class_names)

    curve = open(out / CURVE_FILE, "a", encoding="utf-8")  # noqa: SIM115 - closed in finally
    dataset = TrainDataset(source, cfg.imgsz, cfg.augment, seed=cfg.seed)
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch,
        sampler=RangeSampler(step * cfg.batch, cfg.steps * cfg.batch),
        num_workers=cfg.workers,
        collate_fn=collate,
        worker_init_fn=worker_init if cfg.workers > 0 else None,
        prefetch_factor=4 if cfg.workers > 0 else None,
        # spawn, not fork: a worker forked after OpenCV / OpenMP started threads in this
        # process can deadlock on their locks (seen with the synthetic renderer).
        multiprocessing_context="spawn" if cfg.workers > 0 else None,
        persistent_workers=False,
        timeout=float(cfg.worker_timeout_s) if cfg.workers > 0 else 0.0,
        drop_last=True,
        pin_memory=device.type == "cuda",
    )
    progress = _Progress(cfg.steps, step)
    last_eval: dict[str, float] = {}
    stopped = False
    sums = {"loss": 0.0, "box": 0.0, "cls": 0.0, "dfl": 0.0, "mask": 0.0, "mask_roi": 0.0}
    loss_weights = LossWeights(mask=cfg.mask_grid_gain, mask_roi=cfg.mask_roi_gain)
    n_acc = 0
    t_log = time.perf_counter()
    t_start = time.time()
    steps_at_log = step
    batches = iter(loader)
    try:
        for images, targets in batches:
            x = images_to_input(images.to(device, non_blocking=True))
            targets = _to_device(targets, device)
            raw = net(x)
            parts = segment_loss(raw, targets, net_cfg.reg_max, weights=loss_weights)
            opt.zero_grad(set_to_none=True)
            parts.total.backward()
            nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            ema.update(net)
            step += 1
            loss = float(parts.total.detach()) / cfg.batch
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss became {loss} at step {step}; lower --lr")
            for k, v in (
                ("loss", loss),
                ("box", parts.box),
                ("cls", parts.cls),
                ("dfl", parts.dfl),
                ("mask", parts.mask),
                ("mask_roi", parts.mask_roi),
            ):
                sums[k] += v
            n_acc += 1
            if on_step is not None:
                on_step(step, loss)
            if step % cfg.log_every == 0 or step == cfg.steps:
                now = time.perf_counter()
                it_s = (step - steps_at_log) / max(1e-9, now - t_log)
                rec: dict[str, Any] = {
                    "step": step,
                    "time_s": round(time.time() - t_start, 1),
                    "wall": round(time.time(), 1),
                    "lr": round(opt.param_groups[0]["lr"], 7),
                    "it_s": round(it_s, 3),
                }
                rec.update({k: round(v / n_acc, 4) for k, v in sums.items()})
                curve.write(json.dumps(rec) + "\n")
                curve.flush()
                info = f"loss {rec['loss']:.3f} mask {rec['mask']:.3f}"
                if loss_weights.mask_roi > 0:
                    info += f" roi {rec['mask_roi']:.3f}"
                info += f" {it_s:.2f} it/s"
                progress.update(step, info)
                if not progress.live:
                    logger.info("step %d/%d %s lr %.2e", step, cfg.steps, info, rec["lr"])
                sums = dict.fromkeys(sums, 0.0)
                n_acc = 0
                t_log, steps_at_log = now, step
            if eval_set is not None and cfg.eval_every > 0 and step % cfg.eval_every == 0:
                last_eval = run_eval()
                curve.write(json.dumps({"step": step, "wall": round(time.time(), 1), **last_eval}))
                curve.write("\n")
                curve.flush()
                progress.note(f"eval step {step}: {last_eval}")
                if last_eval["map50"] > best:
                    best = last_eval["map50"]
                    checkpoint(out / "best.pt")
            if step % cfg.ckpt_every == 0:
                checkpoint(ckpt_path)
            if stop is not None and stop.is_set():
                stopped = step < cfg.steps
                logger.info("stop requested: checkpoint at step %d", step)
                break
            if deadline is not None and time.time() >= deadline:
                stopped = step < cfg.steps
                logger.info("time limit reached: checkpoint at step %d", step)
                break
    finally:
        progress.close()
        curve.close()
        _stop_workers(batches)
    checkpoint(ckpt_path)
    exports: list[Path] = []
    if cfg.export and not stopped:
        ema_net = copy.deepcopy(ema.ema).cpu()
        assert isinstance(ema_net, SegLite)
        exports.append(
            export_torchscript(
                ema_net, out / "seglite.torchscript", class_names, cfg.imgsz, mask_threshold
            )
        )
        exports.append(
            export_onnx(
                ema_net, out / "seglite.onnx", class_names, cfg.imgsz, mask_threshold=mask_threshold
            )
        )
    return TrainResult(step, stopped, last_eval, ckpt_path, exports)


def _stop_workers(batches: object) -> None:
    """End the DataLoader's workers now, whatever ended the loop.

    Left to garbage collection after an exception (a worker's own error, a nan loss), the
    iterator outlived the loop in the traceback, and at exit multiprocessing sent its workers a
    SIGTERM they ignore (:func:`~streamseg.train.data.worker_init`) and waited for them for
    ever. ``_shutdown_workers`` tells them to finish, as the iterator does when it is used up.
    """
    shutdown = getattr(batches, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()

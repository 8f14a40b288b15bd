"""The loop: exact resume from a checkpoint, stop requests, the CLI on COCO data, SIGTERM."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from streamseg.models.loader import open_model
from streamseg.train.cli import _sources, build_parser, train_main
from streamseg.train.evaluate import source_eval_set
from streamseg.train.loop import (
    CHECKPOINT_FORMAT,
    InitSource,
    TrainConfig,
    init_weights,
    load_checkpoint,
    load_init_source,
    train,
)
from streamseg.train.net import NetConfig, SegLite, is_class_layer

SMALL_NET = NetConfig(widths=(8, 16, 32, 48, 64), neck_widths=(32, 48, 64), head_width=32)


def _cfg(out: Path, steps: int) -> TrainConfig:
    return TrainConfig(
        out=str(out),
        steps=steps,
        batch=2,
        imgsz=(64, 96),
        warmup_steps=2,
        ckpt_every=100,
        eval_every=0,
        log_every=1,
        workers=0,
        export=False,
        net=SMALL_NET,
    )


def test_resume_continues_exactly(shapes_source: object, tmp_path: Path) -> None:
    """Stopping after 3 of 6 steps and resuming gives the weights of an uninterrupted run."""
    straight = train(_cfg(tmp_path / "a", 6), shapes_source)  # type: ignore[arg-type]
    assert straight.step == 6 and not straight.stopped

    stop = threading.Event()

    def stop_at_3(step: int, _loss: float) -> None:
        if step == 3:
            stop.set()

    first = train(_cfg(tmp_path / "b", 6), shapes_source, stop=stop, on_step=stop_at_3)  # type: ignore[arg-type]
    assert first.stopped and first.step == 3
    assert load_checkpoint(first.checkpoint)["step"] == 3
    second = train(_cfg(tmp_path / "b", 6), shapes_source, resume=True)  # type: ignore[arg-type]
    assert second.step == 6 and not second.stopped

    a = load_checkpoint(straight.checkpoint)
    b = load_checkpoint(second.checkpoint)
    assert a["step"] == b["step"] == 6
    for part in ("model", "ema"):
        for k, v in a[part].items():
            torch.testing.assert_close(b[part][k], v, atol=1e-6, rtol=1e-5, msg=f"{part}.{k}")
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 6
    assert a["ema_updates"] == b["ema_updates"] == 6
    # both runs log every step in the curve file; the resumed one continues at step 4
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "curve.jsonl").open()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_fine_tune_from_export_and_eval(shapes_source: object, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path / "a", 2)
    cfg = TrainConfig(**{**cfg.__dict__, "export": True})
    res = train(cfg, shapes_source)  # type: ignore[arg-type]
    ts = tmp_path / "a" / "seglite.torchscript"
    assert ts in res.exports and (tmp_path / "a" / "seglite.onnx").is_file()
    ev = source_eval_set(shapes_source, 4, "shapes")  # type: ignore[arg-type]
    cfg2 = TrainConfig(**{**_cfg(tmp_path / "b", 2).__dict__, "eval_every": 2})
    res2 = train(cfg2, shapes_source, ev, init=str(ts))  # type: ignore[arg-type]
    assert set(res2.last_eval) >= {"shapes/map50", "shapes/map", "map50", "map50_min"}
    assert 0.0 <= res2.last_eval["map50"] <= 1.0
    assert (tmp_path / "b" / "best.pt").is_file()


def test_a_fine_tune_keeps_the_init_weights_mask_threshold(
    shapes_source: object, tmp_path: Path
) -> None:
    """Regression: fine-tuning from weights exported with a calibrated mask threshold (the
    built-in weights record 0.4) exported without one, so the fine-tune's masks were cut at the
    runtime's 0.5 and came out thinner than the weights it started from."""
    cfg = TrainConfig(**{**_cfg(tmp_path / "a", 1).__dict__, "export": False})
    train(cfg, shapes_source)  # type: ignore[arg-type]
    assert train_main(["--out", str(tmp_path / "a"), "--export", "--mask-threshold", "0.35"]) == 0
    calibrated = tmp_path / "a" / "seglite.torchscript"
    cfg2 = TrainConfig(**{**_cfg(tmp_path / "b", 1).__dict__, "export": True})
    res = train(cfg2, shapes_source, init=str(calibrated))  # type: ignore[arg-type]
    assert load_checkpoint(tmp_path / "b" / "last.pt")["mask_threshold"] == 0.35
    for path in res.exports:
        assert open_model(path, device=torch.device("cpu")).info.mask_threshold == 0.35
    # `train --export` of that run carries it too; --mask-threshold still sets another.
    assert train_main(["--out", str(tmp_path / "b"), "--export"]) == 0
    assert (
        open_model(tmp_path / "b" / "seglite.onnx", device=torch.device("cpu")).info.mask_threshold
        == 0.35
    )
    assert train_main(["--out", str(tmp_path / "b"), "--export", "--mask-threshold", "0.45"]) == 0
    assert (
        open_model(tmp_path / "b" / "seglite.onnx", device=torch.device("cpu")).info.mask_threshold
        == 0.45
    )
    # A fine-tune of that run's checkpoint carries it on as well.
    assert load_init_source(str(tmp_path / "b" / "last.pt")).mask_threshold == 0.35


@pytest.mark.parametrize("p4_head", [False, True])
def test_more_prototypes_start_from_the_same_masks(p4_head: bool, tmp_path: Path) -> None:
    """--num-masks above the source's: the first prototypes and coefficients are the source's,
    the extra coefficients zero, so the masks (coefficients x prototypes) are unchanged."""
    torch.manual_seed(0)
    cfg = NetConfig(num_classes=3, num_masks=8, depths=(1, 1, 1, 1), p4_head=p4_head)
    small = SegLite(cfg).eval()
    for m in small.modules():  # non-trivial BN statistics, so a copy that skipped them shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "small.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "ema": small.state_dict()}, path)
    big = SegLite(NetConfig(num_classes=3, num_masks=12, depths=(1, 1, 1, 1), p4_head=p4_head))
    init_weights(big.eval(), str(path))
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        a, b = small(x), big(x)
    assert torch.equal(a.box, b.box) and torch.equal(a.cls, b.cls)
    assert torch.allclose(b.coef[..., :8], a.coef) and torch.all(b.coef[..., 8:] == 0)
    assert torch.allclose(b.protos[:, :8], a.protos)
    assert float(b.protos[:, 8:].abs().sum()) > 0  # the new prototypes are live, to be learned
    masks_a = torch.einsum("bam,bmhw->bahw", a.coef, a.protos)
    masks_b = torch.einsum("bam,bmhw->bahw", b.coef, b.protos)
    assert torch.allclose(masks_a, masks_b, atol=1e-5)
    # Fewer prototypes than the source's: nothing of the mask path is copied (kept fresh).
    fewer = SegLite(NetConfig(num_classes=3, num_masks=4, depths=(1, 1, 1, 1), p4_head=p4_head))
    fresh = {k: v.clone() for k, v in fewer.state_dict().items()}
    init_weights(fewer, str(path))
    assert torch.equal(fewer.state_dict()["proto.out.conv.weight"], fresh["proto.out.conv.weight"])


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (("x", "y"), "3 classes"),
        # Regression: only the count was compared, so swapped classes resumed in silence.
        (None, "was trained on classes"),
    ],
)
def test_resume_rejects_other_classes(
    names: tuple[str, ...] | None, message: str, shapes_source: object, tmp_path: Path
) -> None:
    train(_cfg(tmp_path / "a", 1), shapes_source)  # type: ignore[arg-type]
    other = names or tuple(reversed(shapes_source.class_names))  # type: ignore[attr-defined]

    class OtherClasses:
        class_names = other

        def get(self, index: int, rng: object) -> object:
            return shapes_source.get(index, rng)  # type: ignore[attr-defined]

    with pytest.raises(ValueError, match=message):
        train(_cfg(tmp_path / "a", 2), OtherClasses(), resume=True)  # type: ignore[arg-type]


def test_resume_applies_a_new_learning_rate_and_warmup(
    shapes_source: object, tmp_path: Path
) -> None:
    """Regression: the checkpoint's schedule went on with the old base lr while the new
    checkpoint recorded the new one."""
    train(_cfg(tmp_path / "a", 2), shapes_source)  # type: ignore[arg-type]
    cfg = dataclasses.replace(_cfg(tmp_path / "a", 3), lr=1e-5, warmup_steps=0)
    train(cfg, shapes_source, resume=True)  # type: ignore[arg-type]
    ckpt = load_checkpoint(tmp_path / "a" / "last.pt")
    assert ckpt["train_config"]["lr"] == 1e-5
    assert ckpt["scheduler"]["base_lrs"] == [1e-5] * len(ckpt["scheduler"]["base_lrs"])
    for group in ckpt["optimizer"]["param_groups"]:
        assert group["initial_lr"] == 1e-5 and group["lr"] <= 1e-5


def test_a_fresh_run_removes_an_earlier_runs_best(shapes_source: object, tmp_path: Path) -> None:
    """Regression: --export picked the best.pt an earlier run left in the folder (its weights
    and classes) when the new run never evaluated."""
    (tmp_path / "a").mkdir()
    stale = tmp_path / "a" / "best.pt"
    stale.write_bytes(b"an earlier run")
    # Its exports and its curve go too (--force: the curve ran on into the new run's).
    for name in ("seglite.torchscript", "seglite.onnx"):
        (tmp_path / "a" / name).write_bytes(b"an earlier run")
    (tmp_path / "a" / "curve.jsonl").write_text('{"step": 6}\n')
    train(_cfg(tmp_path / "a", 1), shapes_source)  # type: ignore[arg-type]
    assert not stale.exists()
    assert not (tmp_path / "a" / "seglite.onnx").exists()
    assert not (tmp_path / "a" / "seglite.torchscript").exists()
    curve = (tmp_path / "a" / "curve.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in curve] == [1]
    (tmp_path / "a" / "best.pt").write_bytes(b"this run's")
    train(_cfg(tmp_path / "a", 2), shapes_source, resume=True)  # type: ignore[arg-type]
    assert stale.read_bytes() == b"this run's"  # a resumed run keeps its own best


@pytest.fixture
def coco(coco_dataset: tuple[Path, Path, object, object, object]) -> tuple[Path, Path]:
    ann, img_dir, *_ = coco_dataset
    return ann, img_dir


def _small_args(ann: Path, img_dir: Path, out: Path, steps: int) -> list[str]:
    return [
        "--data", str(ann), "--images", str(img_dir), "--val", str(ann),
        "--out", str(out), "--steps", str(steps), "--batch", "2", "--imgsz", "64", "96",
        "--eval-every", "0", "--log-every", "1", "--workers", "0", "--warmup", "1",
    ]  # fmt: skip


def test_cli_trains_on_coco_and_exports(coco: tuple[Path, Path], tmp_path: Path) -> None:
    ann, img_dir = coco
    out = tmp_path / "run"
    assert train_main([*_small_args(ann, img_dir, out, 2), "--no-export"]) == 0
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["step"] == 2 and ckpt["class_names"] == ["cube", "ball"]
    assert train_main(["--out", str(out), "--export"]) == 0
    assert (out / "seglite.torchscript").is_file() and (out / "seglite.onnx").is_file()
    assert (out / "seglite.torchscript").stat().st_size < 10e6
    # Another input size than the training one (fully convolutional: anchors follow the size).
    assert train_main(["--out", str(out), "--export", "--export-imgsz", "96", "128"]) == 0
    for name in ("seglite.torchscript", "seglite.onnx"):
        loaded = open_model(out / name, device=torch.device("cpu"))
        assert loaded.info.input_hw == (96, 128)
    assert train_main(["--out", str(out), "--export", "--export-imgsz", "96", "100"]) == 2
    assert train_main([*_small_args(ann, img_dir, out, 2), "--export-imgsz", "96", "128"]) == 2
    # A calibrated mask threshold travels in both files; out of (0, 1) or without --export /
    # --eval-weights it is refused.
    assert train_main(["--out", str(out), "--export", "--mask-threshold", "0.35"]) == 0
    for name in ("seglite.torchscript", "seglite.onnx"):
        assert open_model(out / name, device=torch.device("cpu")).info.mask_threshold == 0.35
    assert train_main(["--out", str(out), "--export", "--mask-threshold", "1.5"]) == 2
    assert train_main([*_small_args(ann, img_dir, out, 2), "--mask-threshold", "0.4"]) == 2


@pytest.mark.parametrize("how", ["sigterm-to-trainer", "ctrl-c-to-group", "sigterm-to-group"])
def test_stop_signal_checkpoints_and_resume_finishes(
    how: str, coco: tuple[Path, Path], tmp_path: Path
) -> None:
    """A stop signal mid-run leaves a checkpoint and exit 0; --resume then completes the run.

    ``ctrl-c-to-group`` sends SIGINT to the whole process group, data worker included, as a
    terminal does; ``sigterm-to-group`` sends SIGTERM to it, as systemd and ``kill -- -PGID``
    do (a worker killed by it made the DataLoader raise before the checkpoint).
    """
    ann, img_dir = coco
    out = tmp_path / "run"
    args = _small_args(ann, img_dir, out, 10_000)
    args[args.index("--workers") + 1] = "1"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamseg.train", *args, "--no-export", "--threads", "1"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    curve = out / "curve.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (curve.is_file() and curve.stat().st_size > 0):
        time.sleep(0.1)
    assert curve.is_file(), "no training progress within 60 s"
    if how == "sigterm-to-trainer":
        proc.send_signal(signal.SIGTERM)
    else:
        time.sleep(0.5)  # let the worker run
        os.killpg(proc.pid, signal.SIGINT if how == "ctrl-c-to-group" else signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    step = load_checkpoint(out / "last.pt")["step"]
    assert 1 <= step < 10_000
    assert "stopped at step" in err
    target = step + 2
    assert train_main([*_small_args(ann, img_dir, out, target), "--resume", "--no-export"]) == 0
    assert load_checkpoint(out / "last.pt")["step"] == target


def test_time_limit_checkpoints_and_resume_continues(
    coco: tuple[Path, Path], tmp_path: Path
) -> None:
    """--time-limit ends a long run with a checkpoint (no signal reaches the workers)."""
    ann, img_dir = coco
    out = tmp_path / "run"
    args = [*_small_args(ann, img_dir, out, 1_000_000), "--no-export", "--time-limit", "3"]
    start = time.monotonic()
    assert train_main(args) == 0
    assert time.monotonic() - start < 60
    step = load_checkpoint(out / "last.pt")["step"]
    assert 1 <= step < 1_000_000
    assert train_main([*_small_args(ann, img_dir, out, step + 1), "--resume", "--no-export"]) == 0
    assert load_checkpoint(out / "last.pt")["step"] == step + 1


def test_device_argument(coco: tuple[Path, Path], tmp_path: Path) -> None:
    """--device auto trains on what torch sees; a CUDA device torch cannot see is a clear error.

    The CUDA path itself cannot run here (no GPU); it was exercised on a lent H100 (issue #3).
    """
    ann, img_dir = coco
    out = tmp_path / "run"
    assert train_main([*_small_args(ann, img_dir, out, 1), "--no-export", "--device", "auto"]) == 0
    saved = load_checkpoint(out / "last.pt")
    assert saved["train_config"]["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="torch sees no CUDA device"):
            train_main([*_small_args(ann, img_dir, out, 2), "--device", "cuda"])
    with pytest.raises(SystemExit, match="--device 'gpu0'"):
        train_main([*_small_args(ann, img_dir, out, 2), "--device", "gpu0"])


def _coco_file(folder: Path, categories: list[tuple[int, str]], objects: list[int]) -> Path:
    """A one-image COCO file in ``folder``: one square object per category id of ``objects``."""
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "1.png"), np.full((64, 96, 3), 40, np.uint8))
    anns = []
    for k, cat in enumerate(objects):
        x = 5 + 30 * k
        square = [x, 5, x + 20, 5, x + 20, 25, x, 25]
        anns.append(
            {"id": k + 1, "image_id": 1, "category_id": cat, "iscrowd": 0, "segmentation": [square]}
        )
    data = {
        "images": [{"id": 1, "file_name": "1.png", "width": 96, "height": 64}],
        "annotations": anns,
        "categories": [{"id": c, "name": n} for c, n in categories],
    }
    path = folder / "annotations.json"
    path.write_text(json.dumps(data))
    return path


def _coco_args(train_ann: Path, val_ann: Path) -> argparse.Namespace:
    args = build_parser().parse_args(
        ["--data", str(train_ann), "--images", str(train_ann.parent), "--val", str(val_ann),
         "--val-images", str(val_ann.parent), "--out", "unused"]
    )  # fmt: skip
    return args


def test_a_val_file_listing_fewer_categories_keeps_the_training_class_ids(tmp_path: Path) -> None:
    """Regression: each file numbered its own categories, so a val split with only 'truck'
    (category 3) scored it as class 0, the training 'person'."""
    train_ann = _coco_file(tmp_path / "train", [(1, "person"), (3, "truck")], [1, 3])
    val_ann = _coco_file(tmp_path / "val", [(3, "truck")], [3])
    source, held_out = _sources(_coco_args(train_ann, val_ann), (64, 96))
    assert source.class_names == ("person", "truck")
    (sample,) = held_out["val"]
    assert sample.class_ids.tolist() == [1]


@pytest.mark.parametrize(
    ("val_categories", "message"),
    [
        ([(7, "dog")], r"category 7 \('dog'\) is not a category of the training data"),
        ([(3, "lorry")], r"category 3 is 'lorry', but 'truck' in the training data"),
    ],
)
def test_a_val_category_the_training_data_lacks_is_refused(
    val_categories: list[tuple[int, str]], message: str, tmp_path: Path
) -> None:
    train_ann = _coco_file(tmp_path / "train", [(1, "person"), (3, "truck")], [1, 3])
    val_ann = _coco_file(tmp_path / "val", val_categories, [val_categories[0][0]])
    with pytest.raises(SystemExit, match=message):
        _sources(_coco_args(train_ann, val_ann), (64, 96))


def test_a_fresh_run_refuses_to_overwrite_an_earlier_checkpoint(
    coco: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: a run without --resume in a folder holding last.pt overwrote it silently
    (checkpoints are what the next session resumes from)."""
    ann, img_dir = coco
    out = tmp_path / "run"
    assert train_main([*_small_args(ann, img_dir, out, 1), "--no-export"]) == 0
    before = (out / "last.pt").read_bytes()
    with caplog.at_level(logging.ERROR, logger="streamseg.train.cli"):
        assert train_main([*_small_args(ann, img_dir, out, 2), "--no-export"]) == 2
    assert (out / "last.pt").read_bytes() == before
    assert any("--resume continues it, --force starts" in r.getMessage() for r in caplog.records)
    assert train_main([*_small_args(ann, img_dir, out, 1), "--no-export", "--force"]) == 0


def test_a_data_workers_error_ends_the_run_instead_of_hanging(
    coco: tuple[Path, Path], tmp_path: Path
) -> None:
    """Regression: an error raised in a data worker (an image file that cannot be decoded)
    printed its traceback and then hung for ever at exit: multiprocessing sent the worker a
    SIGTERM it ignores and waited for it. It now ends the run, exit 1, the cause in one line."""
    ann, img_dir = coco
    (img_dir / "b.png").write_bytes(b"not a PNG")  # found at load, unreadable when sampled
    args = _small_args(ann, img_dir, tmp_path / "run", 50)
    args[args.index("--workers") + 1] = "1"
    del args[args.index("--val") : args.index("--val") + 2]  # no evaluation reading it first
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(
        [sys.executable, "-m", "streamseg.train", *args, "--no-export", "--threads", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "cannot read" in proc.stderr and "b.png" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


def _checkpoint_with(path: Path, net: SegLite, names: list[str]) -> Path:
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "ema": net.state_dict(),
            "net_config": net.cfg.to_dict(),
            "class_names": names,
        },
        path,
    )
    return path


def test_fine_tuning_keeps_the_init_networks_shape_unless_told(
    coco: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: ``--init builtin`` without ``--p4-head`` (the README's fine-tune command)
    dropped the built-in network's stride-4 level without a word."""
    ann, img_dir = coco
    source = SegLite(NetConfig(num_classes=2, p4_head=True, num_masks=12))
    init = _checkpoint_with(tmp_path / "src.pt", source, ["cube", "ball"])
    out = tmp_path / "run"
    base = [*_small_args(ann, img_dir, out, 1), "--no-export", "--init", str(init)]
    assert train_main(base) == 0
    shape = load_checkpoint(out / "last.pt")["net_config"]
    assert (shape["p4_head"], shape["num_masks"]) == (True, 12)
    # Told otherwise, it builds what it is told, and says what of the source is left out.
    with caplog.at_level(logging.WARNING, logger="streamseg.train.loop"):
        assert train_main([*base, "--force", "--no-p4-head", "--num-masks", "16"]) == 0
    shape = load_checkpoint(out / "last.pt")["net_config"]
    assert (shape["p4_head"], shape["num_masks"]) == (False, 16)
    assert any("have no place in this network" in r.getMessage() and "p4" in r.getMessage()
               for r in caplog.records)  # fmt: skip


def test_the_class_layer_is_carried_over_by_class_name() -> None:
    """Regression: the class rows were copied by position whenever the counts agreed, so the
    source's 'person' row became the new data's 'ball'. Now a class keeps the row of its name;
    a new class starts fresh."""
    torch.manual_seed(0)
    source = SegLite(NetConfig(num_classes=3, depths=(1, 1, 1, 1), p4_head=True)).eval()
    src = source.state_dict()
    target = SegLite(NetConfig(num_classes=3, depths=(1, 1, 1, 1), p4_head=True)).eval()
    fresh = {k: v.clone() for k, v in target.state_dict().items()}
    init_weights(
        target,
        InitSource(Path("src.pt"), src, source.cfg, ["person", "truck", "cow"]),
        ["cow", "ball", "person"],
    )
    dst = target.state_dict()
    class_keys = [k for k in dst if is_class_layer(k)]
    assert len(class_keys) == 8  # weight and bias of 3 levels and the stride-4 one
    for key in class_keys:
        assert torch.equal(dst[key][0], src[key][2])  # cow
        assert torch.equal(dst[key][1], fresh[key][1])  # ball: new
        assert torch.equal(dst[key][2], src[key][0])  # person
    other = "heads.0.box.2.weight"
    assert torch.equal(dst[other], src[other])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--imgsz", "100", "200"], "--imgsz 100 200: expected multiples of 32"),
        (["--batch", "0"], "--batch 0: expected at least 1"),
        (["--init", "nope.pt"], "--init nope.pt: no such file"),
        (["--init", "{onnx}"], "an .onnx file cannot seed training"),
    ],
)
def test_bad_arguments_are_one_line_before_anything_is_written(
    coco: tuple[Path, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    extra: list[str],
    message: str,
) -> None:
    ann, img_dir = coco
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"not read")
    out = tmp_path / "run"
    args = [*_small_args(ann, img_dir, out, 2), *(a.format(onnx=onnx) for a in extra)]
    with caplog.at_level(logging.ERROR, logger="streamseg.train.cli"):
        assert train_main(args) == 2
    assert any(message in r.getMessage() for r in caplog.records), caplog.text
    assert not out.exists()


FAILING_RUN = """
import sys
sys.path.insert(0, {helpers!r})
from failing_source import FailingSource
from streamseg.train.loop import TrainConfig, train
from streamseg.train.net import NetConfig

cfg = TrainConfig(out={out!r}, steps=5, batch=2, imgsz=(64, 96), workers=1, export=False,
                  net=NetConfig(widths=(8, 16, 32, 48, 64), neck_widths=(32, 48, 64),
                                head_width=32))
train(cfg, FailingSource())
"""


def test_an_unhandled_worker_error_does_not_hang_the_exit(tmp_path: Path) -> None:
    """The loop itself ends its workers whatever ended it: an error no caller handles (here a
    RuntimeError from the source) used to leave the process waiting for ever, at exit, on a
    worker that ignores the SIGTERM multiprocessing sent it."""
    helpers = str(Path(__file__).resolve().parents[1] / "helpers")
    script = FAILING_RUN.format(helpers=helpers, out=str(tmp_path / "run"))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1, proc.stderr
    assert "RuntimeError: Caught RuntimeError in DataLoader worker" in proc.stderr, proc.stderr


def test_an_evaluation_line_goes_above_the_progress_bar(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a terminal the eval line was a log record written to stderr under the live bar, and
    landed inside it; the bar's own console prints it above the bar."""
    from streamseg.train.loop import _Progress

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    progress = _Progress(10, 0)
    assert progress.live
    progress.note("eval step 3: {'map50': 0.5}")
    progress.close()
    out, err = capsys.readouterr()
    assert "eval step 3: {'map50': 0.5}" in out + err

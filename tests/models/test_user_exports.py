"""Model files as users' exports come: traced at batch 1, saved in half, broken in every
precision; and frames of extreme shapes. Each case failed before (audit regressions)."""

from __future__ import annotations

import json
import logging
import types
import warnings
from pathlib import Path

import numpy as np
import pydantic
import pytest
import torch
from helpers.fake_yolo_seg import FakeYoloSeg
from torch import nn

from streamseg.config.model import ModelConfig
from streamseg.models import ModelLoadError, load_segmenter


def frame(hw: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*hw, 3), dtype=np.uint8)


class _FirstImageOnly(FakeYoloSeg):
    """Answers with batch 1 whatever it is given: the batch baked in at trace time."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = x[:1].mean() * 0.0
        return self.out0 + z, self.out1 + z


class _ReshapeAtOne(_FirstImageOnly):
    """Raises for a batch other than 1: a reshape with the traced batch in it."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = x.reshape(1, 3, 64, 96)[:, :1, :1, :1].sum() * 0.0
        b = x.shape[0]
        return self.out0.repeat(b, 1, 1) + z, self.out1.repeat(b, 1, 1, 1) + z


def _traced(path: Path, module: nn.Module, fake: types.ModuleType) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about the baked-in batch
        traced = torch.jit.trace(module, torch.zeros(1, 3, *fake.INPUT_HW))
    meta = json.dumps(fake.ultralytics_metadata())
    torch.jit.save(traced, str(path), _extra_files={"config.txt": meta})
    return path


@pytest.mark.parametrize("kind", [_FirstImageOnly, _ReshapeAtOne])
def test_a_torchscript_traced_at_batch_1_runs_batches_frame_by_frame(
    kind: type[_FirstImageOnly],
    tmp_path: Path,
    torchscript_path: Path,
    fake: types.ModuleType,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Regression: the load test ran batch 1 only, so the first batch of 4 frames failed
    mid-run (IndexError, or the export's own reshape error)."""
    out0, out1 = fake.build_outputs()
    path = _traced(tmp_path / "traced.torchscript", kind(out0, out1), fake)
    with caplog.at_level(logging.WARNING, logger="streamseg.models"):
        seg = load_segmenter(fake.make_config(path, batch_size=4))
    assert "runs at batch 1 only" in caplog.text
    frames = [frame((120, 240), seed=i) for i in range(5)]
    results = seg.segment(frames)
    reference = load_segmenter(fake.make_config(torchscript_path, batch_size=4)).segment(frames)
    assert [len(r) for r in results] == [len(r) for r in reference] == [4] * 5
    for got, want in zip(results, reference, strict=True):
        np.testing.assert_allclose(got.xyxy, want.xyxy, atol=1e-4)


def test_a_batch_capable_export_is_not_slowed_to_batch_1(
    torchscript_path: Path, fake: types.ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="streamseg.models"):
        seg = load_segmenter(fake.make_config(torchscript_path, batch_size=4))
    assert "batch 1 only" not in caplog.text
    assert getattr(seg.backend, "fixed_batch", "missing") is None


class _WithConv(FakeYoloSeg):
    """The fake network's outputs behind a real convolution, so its weights have a dtype."""

    def __init__(self, out0: torch.Tensor, out1: torch.Tensor) -> None:
        super().__init__(out0, out1)
        self.conv = nn.Conv2d(3, 1, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.conv(x)[0, 0, 0, 0] * 0.0
        b = x.shape[0]
        return self.out0.repeat([b, 1, 1]) + z, self.out1.repeat([b, 1, 1, 1]) + z


@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_a_half_export_runs_in_fp32_on_cpu(
    precision: str, tmp_path: Path, fake: types.ModuleType
) -> None:
    """Regression: an export made with half=True failed at load on CPU (float input, half
    weights): the module was never converted to fp32."""
    out0, out1 = fake.build_outputs()
    module = _WithConv(out0, out1).half()
    path = fake.save_torchscript(tmp_path / "half.torchscript", module, fake.ultralytics_metadata())
    seg = load_segmenter(fake.make_config(path, precision=precision))
    assert seg.info.precision == "fp32"
    (detections,) = seg.segment([frame((120, 240))])
    assert len(detections) == len(fake.EXPECTED_ORDER)


class _Broken(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise RuntimeError("boom: this network cannot run")


def test_a_model_failing_in_bf16_and_in_fp32_is_a_load_error_naming_both(
    tmp_path: Path, fake: types.ModuleType
) -> None:
    """Regression: the fp32 retry's failure escaped as a raw torch error (a traceback)."""
    path = fake.save_torchscript(
        tmp_path / "broken.torchscript", _Broken(), fake.ultralytics_metadata()
    )
    with pytest.raises(ModelLoadError, match=r"failed in bf16 \(.*boom.*\) and in fp32 \(.*boom"):
        load_segmenter(fake.make_config(path, precision="bf16"))


def test_frames_of_extreme_shapes_do_not_fail_the_batch(
    torchscript_path: Path, fake: types.ModuleType
) -> None:
    """Regression: a 1x200 frame letterboxed to 0 rows and failed the whole batch."""
    seg = load_segmenter(fake.make_config(torchscript_path, batch_size=4))
    shapes = [(120, 240), (1, 200), (300, 1), (2, 200)]
    results = seg.segment([frame(hw, seed=i) for i, hw in enumerate(shapes)])
    assert len(results) == 4 and len(results[0]) == len(fake.EXPECTED_ORDER)
    for detections, (h, w) in zip(results, shapes, strict=True):
        assert (detections.xyxy[:, [0, 2]] <= w).all() and (detections.xyxy[:, [1, 3]] <= h).all()


def test_a_confidence_of_1_is_a_config_error() -> None:
    """It was accepted by the config, then refused when the model loaded."""
    with pytest.raises(pydantic.ValidationError, match="less than 1"):
        ModelConfig(weights="builtin", confidence=1.0)

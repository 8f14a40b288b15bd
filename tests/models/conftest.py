"""Fixtures for the model tests: the fake YOLO-seg network of ``helpers.fake_yolo_seg``."""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers import fake_yolo_seg
from helpers.fake_yolo_seg import (
    FakeYoloSeg,
    build_outputs,
    save_onnx,
    save_torchscript,
    ultralytics_metadata,
)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the fake network as TorchScript and ONNX."""
    folder = tmp_path_factory.mktemp("models")
    output0, output1 = build_outputs()
    module = FakeYoloSeg(output0, output1)
    save_torchscript(folder / "fake-seg.torchscript", module, ultralytics_metadata())
    save_onnx(folder / "fake-seg.onnx", module)
    save_onnx(folder / "fake-seg-b1.onnx", module, dynamic_batch=False)
    return folder


@pytest.fixture
def torchscript_path(model_dir: Path) -> Path:
    """The fake network as TorchScript with ultralytics metadata."""
    return model_dir / "fake-seg.torchscript"


@pytest.fixture
def onnx_path(model_dir: Path) -> Path:
    """The fake network as ONNX with a dynamic batch and ultralytics metadata_props."""
    return model_dir / "fake-seg.onnx"


@pytest.fixture
def onnx_fixed_batch_path(model_dir: Path) -> Path:
    """The fake network as ONNX exported with a fixed batch of 1 (ultralytics' default)."""
    return model_dir / "fake-seg-b1.onnx"


@pytest.fixture
def fake() -> types.ModuleType:
    """The fake network's constants, builders and reference functions."""
    return fake_yolo_seg


@pytest.fixture
def keep_torch_threads() -> Iterator[None]:
    """Restore torch's thread count after a test that changes it."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)

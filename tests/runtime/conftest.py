"""Fixtures for runtime tests: the fake YOLO-seg network saved as TorchScript."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.fake_yolo_seg import FakeYoloSeg, build_outputs, save_torchscript, ultralytics_metadata


@pytest.fixture(scope="session")
def fake_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake network (fixed known detections on every frame) as a TorchScript file."""
    path = tmp_path_factory.mktemp("runtime-model") / "fake-seg.torchscript"
    output0, output1 = build_outputs()
    return save_torchscript(path, FakeYoloSeg(output0, output1), ultralytics_metadata())

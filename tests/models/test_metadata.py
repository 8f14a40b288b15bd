"""Model file metadata: what our exports and ultralytics' write, and clear errors for bad values."""

from __future__ import annotations

import pytest

from streamseg.models.errors import ModelLoadError
from streamseg.models.metadata import parse_metadata


def test_metadata_of_an_ultralytics_onnx_file() -> None:
    meta = parse_metadata(
        {"names": "{0: 'person', 2: 'car'}", "imgsz": "[384, 640]", "stride": "32", "task": "x"},
        "m.onnx",
    )
    assert meta.names == ["person", "class_1", "car"]
    assert meta.imgsz == (384, 640)
    assert meta.stride == 32
    assert meta.mask_threshold is None  # ultralytics records none: the runtime uses 0.5


@pytest.mark.parametrize("stored", [0.4, "0.4"])
def test_a_recorded_mask_threshold_is_read(stored: object) -> None:
    assert parse_metadata({"mask_threshold": stored}, "m.torchscript").mask_threshold == 0.4


@pytest.mark.parametrize("stored", [0, 1, 1.5, "-0.1", "high", True, [0.4]])
def test_a_bad_mask_threshold_names_the_key_and_the_file(stored: object) -> None:
    with pytest.raises(ModelLoadError, match=r"m\.onnx: metadata 'mask_threshold'"):
        parse_metadata({"mask_threshold": stored}, "m.onnx")

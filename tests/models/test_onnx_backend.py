"""The same fake network exported to ONNX gives the same detections through onnxruntime."""

from __future__ import annotations

import sys
import types
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import supervision as sv
import torch

from streamseg.models import ModelLoadError, load_segmenter

SIZES = [(120, 240), (64, 96), (150, 173)]


def frames() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for hw in SIZES]


def assert_same(a: sv.Detections, b: sv.Detections) -> None:
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-4)
    np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-6)
    np.testing.assert_array_equal(a.class_id, b.class_id)
    np.testing.assert_array_equal(a["class_name"], b["class_name"])
    assert isinstance(a.mask, sv.CompactMask) and isinstance(b.mask, sv.CompactMask)
    np.testing.assert_array_equal(a.mask.to_dense(), b.mask.to_dense())


def test_onnx_matches_torchscript(
    torchscript_path: Path, onnx_path: Path, fake: types.ModuleType
) -> None:
    onnx_seg = load_segmenter(fake.make_config(onnx_path))
    assert onnx_seg.info.format == "onnx"
    # names came from metadata_props written as a Python dict literal
    assert onnx_seg.info.class_names == ["person", "car", "dog"]
    assert onnx_seg.info.input_hw == (64, 96)
    assert (onnx_seg.info.num_masks, onnx_seg.info.num_anchors) == (4, 40)
    ts_seg = load_segmenter(fake.make_config(torchscript_path))
    onnx_out = onnx_seg.segment(frames())
    ts_out = ts_seg.segment(frames())
    assert [len(d) for d in onnx_out] == [4, 4, 4]
    for a, b in zip(onnx_out, ts_out, strict=True):
        assert_same(a, b)
    np.testing.assert_allclose(onnx_out[0].xyxy[0], fake.frame_box("A", SIZES[0]), atol=1e-3)


def test_onnx_with_fixed_batch_runs_in_chunks(
    onnx_path: Path, onnx_fixed_batch_path: Path, fake: types.ModuleType
) -> None:
    """Ultralytics exports ONNX with batch 1 unless dynamic=True; a batch of 3 must still work."""
    batch_dim = onnx.load(str(onnx_fixed_batch_path)).graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_value == 1
    fixed = load_segmenter(fake.make_config(onnx_fixed_batch_path))
    dynamic = load_segmenter(fake.make_config(onnx_path))
    for a, b in zip(fixed.segment(frames()), dynamic.segment(frames()), strict=True):
        assert_same(a, b)


def test_onnx_filters_apply(onnx_path: Path, fake: types.ModuleType) -> None:
    seg = load_segmenter(fake.make_config(onnx_path, classes=["car"], max_detections=5))
    (det,) = seg.segment(frames()[:1])
    assert det["class_name"].tolist() == ["car"]
    np.testing.assert_allclose(det.xyxy[0], fake.frame_box("B", SIZES[0]), atol=1e-3)


def test_fp16_export_takes_half_input(tmp_path: Path, fake: types.ModuleType) -> None:
    path = tmp_path / "half.onnx"
    module = fake.FakeYoloSeg(*fake.build_outputs()).half()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(
            module,
            (torch.zeros(1, 3, *fake.INPUT_HW, dtype=torch.float16),),
            str(path),
            opset_version=17,
            dynamo=False,
            input_names=["images"],
            output_names=["output0", "output1"],
            dynamic_axes={"images": {0: "batch"}},
        )
    seg = load_segmenter(fake.make_config(path, class_names=["person", "car", "dog"]))
    assert seg.info.precision == "fp16"
    (det,) = seg.segment(frames()[:1])
    np.testing.assert_allclose(
        det.xyxy, [fake.frame_box(k, SIZES[0]) for k in fake.EXPECTED_ORDER], atol=0.1
    )
    np.testing.assert_allclose(det.confidence, [0.9, 0.7, 0.5, 0.3], atol=1e-3)
    assert det.confidence.dtype == np.float32


def test_missing_onnxruntime_gives_install_hint(
    onnx_path: Path, fake: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(ModelLoadError, match=r"pip install 'streamseg\[onnx\]'"):
        load_segmenter(fake.make_config(onnx_path))


def test_corrupt_onnx_file(tmp_path: Path, fake: types.ModuleType) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"this is not a protobuf")
    with pytest.raises(ModelLoadError, match=r"broken\.onnx: expected an ONNX model"):
        load_segmenter(fake.make_config(path))

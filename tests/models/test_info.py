"""``describe_model`` / ``format_info`` behind ``streamseg info MODEL``."""

from __future__ import annotations

from pathlib import Path

from streamseg.models import describe_model, format_info


def test_describe_torchscript_and_onnx(torchscript_path: Path, onnx_path: Path) -> None:
    ts = describe_model(torchscript_path)
    ox = describe_model(str(onnx_path), device="auto")
    for info, fmt in [(ts, "torchscript"), (ox, "onnx")]:
        assert info.format == fmt
        assert info.input_hw == (64, 96)
        assert info.class_names == ["person", "car", "dog"]
        assert (info.num_masks, info.num_anchors, info.proto_hw) == (4, 40, (16, 24))
        assert (info.device, info.precision) == ("cpu", "fp32")
    text = format_info(ts)
    lines = text.splitlines()
    assert lines[0].startswith("path:") and lines[0].endswith("fake-seg.torchscript")
    assert "input:     64x96 (height x width)" in text
    assert "classes:   3: 0=person, 1=car, 2=dog" in text
    assert "masks:     4 prototypes of 16x24" in text
    assert not text.endswith("\n")

"""``describe_model`` / ``format_info`` behind ``streamseg info MODEL``."""

from __future__ import annotations

import re
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
    assert re.search(r"^input: +64x96 \(height x width\)$", text, re.M)
    assert re.search(r"^classes: +3: 0=person, 1=car, 2=dog$", text, re.M)
    assert re.search(r"^masks: +4 prototypes of 16x24$", text, re.M)
    assert re.search(r"^mask threshold: 0\.5 \(none recorded\)$", text, re.M)
    value_columns = {len(line) - len(line.split(":", 1)[1].lstrip()) for line in lines}
    assert len(value_columns) == 1  # every value starts in the same column
    assert not text.endswith("\n")

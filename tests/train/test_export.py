"""Exports: TorchScript and ONNX (onnxruntime) match the eager model; metadata; round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from streamseg.train.export import (
    export_onnx,
    export_torchscript,
    load_runtime_weights,
    read_torchscript_metadata,
)
from streamseg.train.net import NetConfig, RuntimeHead, SegLite

NAMES = ["box", "disc", "bar"]
IMGSZ = (64, 96)


@pytest.fixture(scope="module", params=[False, True], ids=["3-levels", "stride-4-level"])
def trained_like_net(request: pytest.FixtureRequest) -> SegLite:
    """A network whose BatchNorm statistics are far from identity (folding must matter), with
    and without the stride-4 detection level (the export decodes each level on its own)."""
    torch.manual_seed(0)
    net = SegLite(
        NetConfig(num_classes=3, num_masks=16, depths=(1, 1, 1, 1), p4_head=request.param)
    )
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)  # type: ignore[union-attr]
                m.running_var.uniform_(0.5, 2.0)  # type: ignore[union-attr]
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net.eval()


def _eager(net: SegLite, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return RuntimeHead(net)(x)


def test_torchscript_matches_eager(trained_like_net: SegLite, tmp_path: Path) -> None:
    path = export_torchscript(trained_like_net, tmp_path / "m.torchscript", NAMES, IMGSZ)
    ts = torch.jit.load(str(path))
    x = torch.rand(3, 3, *IMGSZ)  # batch differs from the traced batch of 1
    e0, e1 = _eager(trained_like_net, x)
    with torch.no_grad():
        t0, t1 = ts(x)
    anchors = sum((64 // s) * (96 // s) for s in trained_like_net.cfg.strides)
    assert anchors == 8 * 12 + 4 * 6 + 2 * 3 + (16 * 24 if trained_like_net.cfg.p4_head else 0)
    assert t0.shape == (3, 4 + 3 + 16, anchors)
    torch.testing.assert_close(t0, e0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(t1, e1, atol=1e-4, rtol=1e-4)
    meta, net_cfg = read_torchscript_metadata(path)
    assert meta == {
        "names": {"0": "box", "1": "disc", "2": "bar"},
        "imgsz": [64, 96],
        "stride": 32,
        "task": "segment",
    }
    assert net_cfg == trained_like_net.cfg
    # the file format the runtime reads
    extra = {"config.txt": ""}
    torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra["config.txt"])["imgsz"] == [64, 96]


def test_torchscript_holds_no_device(trained_like_net: SegLite, tmp_path: Path) -> None:
    """The traced file follows map_location / .to(): no tensor is built on a fixed device.

    A trace bakes ``torch.arange(..., device=x.device)`` into the graph as a constant device;
    such a file traced on the CPU fails on CUDA ("found at least two devices"). No GPU here, so
    this checks the graph itself: no Device constant anywhere (the file shipped before this
    test had two), and the anchors / DFL bins are buffers that move with the module.
    """
    path = export_torchscript(trained_like_net, tmp_path / "m.torchscript", NAMES, IMGSZ)
    ts = torch.jit.load(str(path))
    devices = [
        n
        for n in ts.inlined_graph.nodes()
        if n.kind() == "prim::Constant" and str(n.output().type()) == "Device"
    ]
    assert devices == []
    buffers = dict(ts.named_buffers())
    assert {"anchors", "strides", "bins"} <= set(buffers)
    anchors = sum((64 // s) * (96 // s) for s in trained_like_net.cfg.strides)
    assert buffers["anchors"].shape == (anchors, 2)


def test_onnx_matches_eager(trained_like_net: SegLite, tmp_path: Path) -> None:
    path = export_onnx(trained_like_net, tmp_path / "m.onnx", NAMES, IMGSZ)
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["names"] == "{0: 'box', 1: 'disc', 2: 'bar'}"
    assert props["imgsz"] == "[64, 96]"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["images"]
    x = torch.rand(2, 3, *IMGSZ)
    o0, o1 = sess.run(["output0", "output1"], {"images": x.numpy()})
    e0, e1 = _eager(trained_like_net, x)
    torch.testing.assert_close(torch.from_numpy(np.asarray(o0)), e0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(torch.from_numpy(np.asarray(o1)), e1, atol=1e-4, rtol=1e-4)


def test_export_round_trips_into_a_trainable_net(trained_like_net: SegLite, tmp_path: Path) -> None:
    path = export_torchscript(trained_like_net, tmp_path / "m.torchscript", NAMES, IMGSZ)
    net, names = load_runtime_weights(path)
    assert names == NAMES
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    x = torch.rand(1, 3, *IMGSZ)
    a0, a1 = _eager(trained_like_net, x)
    b0, b1 = _eager(net.eval(), x)
    torch.testing.assert_close(b0, a0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(b1, a1, atol=1e-4, rtol=1e-4)


def test_export_rejects_wrong_names(trained_like_net: SegLite, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected 3 names"):
        export_torchscript(trained_like_net, tmp_path / "m.torchscript", ["a"], IMGSZ)
    with pytest.raises(ValueError, match="multiples of 32"):
        export_onnx(trained_like_net, tmp_path / "m.onnx", NAMES, (60, 96))


def _runtime_settings(path: Path, mask_threshold: float | None) -> object:
    from types import SimpleNamespace

    return SimpleNamespace(
        weights=str(path),
        format="auto",
        device="cpu",
        precision="fp32",
        confidence=0.0,
        iou=0.5,
        max_detections=5,
        mask_threshold=mask_threshold,
        classes=None,
        class_names=None,
        batch_size=2,
        batch_timeout_ms=0.0,
        threads=None,
        mask_refine=SimpleNamespace(enabled=False, radius=4, eps=0.001),  # the decoder's masks
    )


def test_exports_record_the_mask_threshold_the_runtime_uses(
    trained_like_net: SegLite, tmp_path: Path
) -> None:
    """A calibrated threshold travels in the file; the pipeline's own setting overrides it."""
    from streamseg.models import load_segmenter

    frame = np.random.default_rng(1).integers(0, 255, (90, 160, 3), dtype=np.uint8)
    ts = export_torchscript(
        trained_like_net, tmp_path / "m.torchscript", NAMES, IMGSZ, mask_threshold=0.3
    )
    ox = export_onnx(trained_like_net, tmp_path / "m.onnx", NAMES, IMGSZ, mask_threshold=0.3)
    assert read_torchscript_metadata(ts)[0]["mask_threshold"] == 0.3
    for path in (ts, ox):
        recorded = load_segmenter(_runtime_settings(path, None))
        assert recorded.info.mask_threshold == 0.3
        assert recorded.mask_threshold == 0.3
        overridden = load_segmenter(_runtime_settings(path, 0.7))
        assert overridden.mask_threshold == 0.7
        (low,) = recorded.segment([frame])
        (high,) = overridden.segment([frame])
        np.testing.assert_array_equal(low.xyxy, high.xyxy)  # the same detections ...
        assert low.mask is not None and high.mask is not None
        low_area = np.asarray(low.mask.area)
        high_area = np.asarray(high.mask.area)
        assert (low_area >= high_area).all() and low_area.sum() > high_area.sum()  # ... fuller

    plain = export_torchscript(trained_like_net, tmp_path / "plain.torchscript", NAMES, IMGSZ)
    assert "mask_threshold" not in read_torchscript_metadata(plain)[0]
    segmenter = load_segmenter(_runtime_settings(plain, None))
    assert segmenter.info.mask_threshold is None
    assert segmenter.mask_threshold == 0.5  # what ultralytics thresholds at
    with pytest.raises(ValueError, match="mask_threshold"):
        export_onnx(trained_like_net, tmp_path / "bad.onnx", NAMES, IMGSZ, mask_threshold=1.0)


def test_runtime_loads_our_exports(trained_like_net: SegLite, tmp_path: Path) -> None:
    """The contract with ``streamseg.models``: it opens both exports and reads our metadata."""
    from streamseg.models import load_segmenter

    ts = export_torchscript(trained_like_net, tmp_path / "m.torchscript", NAMES, IMGSZ)
    ox = export_onnx(trained_like_net, tmp_path / "m.onnx", NAMES, IMGSZ)
    frame = np.random.default_rng(0).integers(0, 255, (90, 160, 3), dtype=np.uint8)
    for path in (ts, ox):
        seg = load_segmenter(_runtime_settings(path, None))
        (det,) = seg.segment([frame])
        assert len(det) == 5  # confidence 0 keeps the top max_detections
        assert set(det.data["class_name"]) <= set(NAMES)
        assert det.mask is not None and det.mask.shape == (5, 90, 160)

"""The network: size budget, output shapes, runtime layout."""

from __future__ import annotations

import torch

from streamseg.train.net import (
    NetConfig,
    RuntimeHead,
    SegLite,
    count_parameters,
    dfl_decode,
)


def test_default_network_is_compact() -> None:
    net = SegLite(NetConfig())
    assert count_parameters(net) < 2_500_000
    # float32 weights: under 10 MB on disk
    assert count_parameters(net) * 4 < 10e6


def test_raw_and_runtime_shapes() -> None:
    cfg = NetConfig(num_classes=3, num_masks=16)
    net = SegLite(cfg).eval()
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        raw = net(x)
        out0, out1 = RuntimeHead(net)(x)
    anchors = (8 * 12) + (4 * 6) + (2 * 3)
    assert raw.box.shape == (2, anchors, 4 * cfg.reg_max)
    assert raw.cls.shape == (2, anchors, 3)
    assert raw.coef.shape == (2, anchors, 16)
    assert raw.protos.shape == (2, 16, 16, 24)
    assert out0.shape == (2, 4 + 3 + 16, anchors)
    assert out1.shape == (2, 16, 16, 24)
    scores = out0[:, 4:7]
    assert float(scores.min()) >= 0.0 and float(scores.max()) <= 1.0
    # First anchor of level 8 sits at (4, 4); its box centre is near it and w, h are positive.
    assert torch.all(out0[:, 2:4] > 0)
    assert torch.allclose(raw.anchors[0], torch.tensor([4.0, 4.0]))
    assert torch.allclose(raw.anchors[-1], torch.tensor([96 - 16.0, 64 - 16.0]))


def test_stride_4_level_comes_first_and_keeps_the_other_levels() -> None:
    """With ``p4_head`` the stride-4 anchors come first; the neck levels follow unchanged, and
    the prototypes are computed once (the level reads the prototype branch's feature)."""
    torch.manual_seed(0)
    plain = SegLite(NetConfig(num_classes=3, num_masks=16)).eval()
    torch.manual_seed(0)
    p4 = SegLite(NetConfig(num_classes=3, num_masks=16, p4_head=True)).eval()
    p4.load_state_dict(plain.state_dict(), strict=False)
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        a, b = plain(x), p4(x)
    n4 = 16 * 24
    assert p4.cfg.strides == (4, 8, 16, 32)
    assert b.box.shape == (2, n4 + a.box.shape[1], 4 * p4.cfg.reg_max)
    assert torch.allclose(b.anchors[0], torch.tensor([2.0, 2.0]))
    assert torch.all(b.strides[:n4] == 4) and torch.all(b.strides[n4:] == a.strides)
    torch.testing.assert_close(b.box[:, n4:], a.box)
    torch.testing.assert_close(b.cls[:, n4:], a.cls)
    torch.testing.assert_close(b.protos, a.protos)
    assert NetConfig.from_dict(p4.cfg.to_dict()) == p4.cfg


def test_dfl_decode_is_expectation() -> None:
    logits = torch.full((1, 4 * 4), -1e4)
    # side 0 -> bin 2, side 1 -> bin 0, sides 2/3 -> half bin 1, half bin 3
    logits[0, 2] = 0
    logits[0, 4] = 0
    logits[0, 9] = logits[0, 11] = 0
    logits[0, 13] = logits[0, 15] = 0
    assert torch.allclose(dfl_decode(logits, 4), torch.tensor([[2.0, 0.0, 2.0, 2.0]]))


def test_fuse_keeps_outputs() -> None:
    torch.manual_seed(0)
    net = SegLite(NetConfig(num_classes=2))
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)  # type: ignore[union-attr]
            m.running_var.uniform_(0.5, 2.0)  # type: ignore[union-attr]
    net.eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a = RuntimeHead(net)(x)
        b = RuntimeHead(net.fuse())(x)
    torch.testing.assert_close(a[0], b[0], atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(a[1], b[1], atol=1e-4, rtol=1e-4)

"""streamseg's own compact instance-segmentation network ("SegLite").

Layout, from input to outputs:

* backbone: a strided 3x3 stem, then CSP-lite stages (a 1x1 split, depthwise-separable residual
  bottlenecks, a 1x1 merge) down to strides 4, 8, 16 and 32, with an SPPF block at stride 32;
* neck: a PAN-lite (top-down then bottom-up, concatenation + CSP-lite) giving features at strides
  8, 16 and 32;
* head: anchor-free and decoupled per level: box regression as ltrb distances in DFL form
  (``reg_max`` bins), class logits, and ``nm`` mask coefficients;
* prototypes: ``nm`` maps at stride 4, from the stride-8 neck output upsampled and fused with the
  stride-4 backbone feature (sharper edges at a small input size);
* optionally (``NetConfig.p4_head``) a light fourth detection level at stride 4 on the prototype
  branch's fused feature, for objects a few pixels across (a distant ball is 5-7 px wide at the
  shipped input size: under one stride-8 cell).

:meth:`SegLite.forward` returns the raw tensors the loss needs (:class:`RawOutput`).
:class:`RuntimeHead` wraps a trained network into the YOLO-seg runtime layout that
``streamseg.models`` decodes: ``(output0 [B, 4 + nc + nm, A], output1 [B, nm, H/4, W/4])``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

#: Strides of the three neck detection levels, in input pixels (``NetConfig.strides`` adds 4
#: in front when the network has the stride-4 level).
STRIDES: tuple[int, int, int] = (8, 16, 32)
#: Stride of the prototype maps.
PROTO_STRIDE = 4


@dataclass(frozen=True)
class NetConfig:
    """Hyper-parameters of the network's shape. Stored in checkpoints as a plain dict.

    Attributes:
        num_classes: number of classes ``nc``.
        num_masks: number of prototypes / mask coefficients ``nm``.
        reg_max: DFL bins per box side; the largest ltrb distance is ``reg_max - 1`` strides.
        widths: channels of stem, stride 4, 8, 16 and 32 backbone stages.
        depths: bottlenecks in the stride 4, 8, 16 and 32 CSP stages.
        neck_widths: channels of the neck outputs at strides 8, 16, 32.
        head_width: hidden channels of each head branch.
        proto_width: hidden channels of the prototype branch.
        p4_head: add a light detection level at stride 4 (see :class:`P4Head`).
        p4_width: hidden channels of that level.
    """

    num_classes: int = 6
    num_masks: int = 24
    reg_max: int = 16
    widths: tuple[int, int, int, int, int] = (16, 32, 64, 112, 192)
    depths: tuple[int, int, int, int] = (1, 2, 2, 1)
    neck_widths: tuple[int, int, int] = (64, 96, 128)
    head_width: int = 64
    proto_width: int = 48
    p4_head: bool = False
    p4_width: int = 32
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def strides(self) -> tuple[int, ...]:
        """Strides of the detection levels, in the order their anchors are concatenated."""
        return (PROTO_STRIDE, *STRIDES) if self.p4_head else STRIDES

    def to_dict(self) -> dict[str, Any]:
        """Plain-type dict (lists, ints) that ``torch.load(weights_only=True)`` accepts."""
        d = asdict(self)
        for k in ("widths", "depths", "neck_widths"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(
                f"NetConfig: unknown keys {sorted(unknown)}; expected a subset of {sorted(known)}"
            )
        kw = dict(d)
        for k in ("widths", "depths", "neck_widths"):
            if k in kw:
                kw[k] = tuple(int(v) for v in kw[k])
        return cls(**kw)


class ConvBN(nn.Module):
    """Conv2d (no bias) + BatchNorm + optional SiLU. ``fuse()`` folds the BN into the conv."""

    def __init__(
        self, c_in: int, c_out: int, k: int = 1, s: int = 1, groups: int = 1, act: bool = True
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, k // 2, groups=groups, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03)
        self.act: nn.Module = nn.SiLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply conv, BN, activation."""
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold BatchNorm into the convolution (inference only)."""
        if not isinstance(self.bn, nn.BatchNorm2d):
            return
        bn = self.bn
        assert bn.running_var is not None and bn.running_mean is not None
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv = nn.Conv2d(
            self.conv.in_channels,
            self.conv.out_channels,
            self.conv.kernel_size,  # type: ignore[arg-type]
            self.conv.stride,  # type: ignore[arg-type]
            self.conv.padding,  # type: ignore[arg-type]
            groups=self.conv.groups,
            bias=True,
        )
        conv.weight.copy_(self.conv.weight * scale.view(-1, 1, 1, 1))
        conv.bias.copy_(bn.bias - bn.running_mean * scale)  # type: ignore[union-attr]
        self.conv = conv
        self.bn = nn.Identity()


class DWSep(nn.Module):
    """Depthwise 3x3 (optionally strided) followed by a pointwise 1x1, both with BN + SiLU."""

    def __init__(self, c_in: int, c_out: int, s: int = 1) -> None:
        super().__init__()
        self.dw = ConvBN(c_in, c_in, 3, s, groups=c_in)
        self.pw = ConvBN(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Depthwise then pointwise."""
        return self.pw(self.dw(x))


class Bottleneck(nn.Module):
    """Residual block: two depthwise-separable 3x3 convs (keeps channels)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.a = DWSep(c, c)
        self.b = DWSep(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + f(x)."""
        return x + self.b(self.a(x))


class CSPLite(nn.Module):
    """C2f-style block: split in two halves, chain bottlenecks on one, concat all, merge 1x1."""

    def __init__(self, c_in: int, c_out: int, n: int) -> None:
        super().__init__()
        h = max(8, c_out // 2)
        self.h = h
        self.cv1 = ConvBN(c_in, 2 * h, 1)
        self.blocks = nn.ModuleList(Bottleneck(h) for _ in range(n))
        self.cv2 = ConvBN((2 + n) * h, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Split, chain, concat, merge."""
        y = list(self.cv1(x).chunk(2, 1))
        for blk in self.blocks:
            y.append(blk(y[-1]))
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling (fast): three chained 5x5 max-pools, concat, 1x1."""

    def __init__(self, c: int) -> None:
        super().__init__()
        h = c // 2
        self.cv1 = ConvBN(c, h, 1)
        self.cv2 = ConvBN(4 * h, c, 1)
        self.pool = nn.MaxPool2d(5, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool at growing receptive fields and merge."""
        x = self.cv1(x)
        p1 = self.pool(x)
        p2 = self.pool(p1)
        p3 = self.pool(p2)
        return self.cv2(torch.cat((x, p1, p2, p3), 1))


class Backbone(nn.Module):
    """Stem + four CSP-lite stages; returns features at strides 4, 8, 16, 32."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        w, d = cfg.widths, cfg.depths
        self.stem = ConvBN(3, w[0], 3, 2)
        self.s4 = nn.Sequential(ConvBN(w[0], w[1], 3, 2), CSPLite(w[1], w[1], d[0]))
        self.s8 = nn.Sequential(ConvBN(w[1], w[2], 3, 2), CSPLite(w[2], w[2], d[1]))
        self.s16 = nn.Sequential(DWSep(w[2], w[3], 2), CSPLite(w[3], w[3], d[2]))
        self.s32 = nn.Sequential(DWSep(w[3], w[4], 2), CSPLite(w[4], w[4], d[3]), SPPF(w[4]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return (c4, c8, c16, c32)."""
        c4 = self.s4(self.stem(x))
        c8 = self.s8(c4)
        c16 = self.s16(c8)
        c32 = self.s32(c16)
        return c4, c8, c16, c32


class Neck(nn.Module):
    """PAN-lite: top-down then bottom-up fusion; outputs at strides 8, 16, 32."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        w = cfg.widths
        n8, n16, n32 = cfg.neck_widths
        self.lat32 = ConvBN(w[4], n16, 1)
        self.td16 = CSPLite(n16 + w[3], n16, 1)
        self.lat16 = ConvBN(n16, n8, 1)
        self.td8 = CSPLite(n8 + w[2], n8, 1)
        self.down8 = DWSep(n8, n8, 2)
        self.bu16 = CSPLite(n8 + n16, n16, 1)
        self.down16 = DWSep(n16, n16, 2)
        self.bu32 = CSPLite(n16 + n16, n32, 1)

    def forward(
        self, c8: torch.Tensor, c16: torch.Tensor, c32: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fuse backbone features; return (p8, p16, p32)."""
        l32 = self.lat32(c32)
        t16 = self.td16(torch.cat((F.interpolate(l32, scale_factor=2.0, mode="nearest"), c16), 1))
        l16 = self.lat16(t16)
        p8 = self.td8(torch.cat((F.interpolate(l16, scale_factor=2.0, mode="nearest"), c8), 1))
        p16 = self.bu16(torch.cat((self.down8(p8), t16), 1))
        p32 = self.bu32(torch.cat((self.down16(p16), l32), 1))
        return p8, p16, p32


def anchor_major(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, H*W, C], anchors in row-major cell order.

    The network runs channels-last, where this is a view: no copy per output map, and the
    levels are then joined by one concatenation along the anchors. (``flatten(2)`` to
    [B, C, H*W] would copy every map, and the runtime layout's transposes copied them again:
    2-3 ms of a 23 ms forward on 2 CPU cores, 6 ms with a stride-4 level.)
    """
    return x.permute(0, 2, 3, 1).flatten(1, 2)


def is_class_layer(key: str) -> bool:
    """Whether a state-dict key is a tensor of a class output layer (one row per class): the
    last convolution of each level's class branch (``heads.<i>.cls.2``) and of the stride-4
    level's (``p4.cls``)."""
    return key.startswith("p4.cls.") or (key.startswith("heads.") and ".cls.2." in key)


@torch.no_grad()
def init_output_bias(box: nn.Conv2d, cls: nn.Conv2d, num_classes: int, stride: int) -> None:
    """Initial biases of a level's last convolutions: box logits 1, class logits at a prior of
    about 5 objects per 640x640 image spread over the level's cells, so the first steps are not
    dominated by confident false positives (YOLOv5/v8 practice)."""
    box.bias.fill_(1.0)  # type: ignore[union-attr]
    prior = 5.0 / num_classes / (640.0 / stride) ** 2
    cls.bias.fill_(math.log(prior / (1 - prior)))  # type: ignore[union-attr]


class LevelHead(nn.Module):
    """Decoupled head of one level: box (DFL logits), class logits, mask coefficients."""

    def __init__(self, c_in: int, cfg: NetConfig, stride: int) -> None:
        super().__init__()
        h = cfg.head_width
        self.stem = ConvBN(c_in, h, 1)
        self.box = nn.Sequential(DWSep(h, h), DWSep(h, h), nn.Conv2d(h, 4 * cfg.reg_max, 1))
        self.cls = nn.Sequential(DWSep(h, h), DWSep(h, h), nn.Conv2d(h, cfg.num_classes, 1))
        self.coef = nn.Sequential(DWSep(h, h), nn.Conv2d(h, cfg.num_masks, 1))
        self._init_bias(cfg, stride)

    def _init_bias(self, cfg: NetConfig, stride: int) -> None:
        last_box = self.box[-1]
        last_cls = self.cls[-1]
        assert isinstance(last_box, nn.Conv2d) and isinstance(last_cls, nn.Conv2d)
        init_output_bias(last_box, last_cls, cfg.num_classes, stride)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (box [B, h*w, 4*reg_max], cls [B, h*w, nc], coef [B, h*w, nm])."""
        x = self.stem(x)
        return anchor_major(self.box(x)), anchor_major(self.cls(x)), anchor_major(self.coef(x))


class P4Head(nn.Module):
    """Detection level at stride 4, on the prototype branch's fused feature.

    Kept light, since it runs on 16 times as many cells as the stride-32 level: one shared
    depthwise-separable conv, then a 1x1 conv per output (box DFL logits, class logits, mask
    coefficients). Its DFL range is ``(reg_max - 1) * 4`` px, so it serves small objects; larger
    ones keep the neck levels (the assignment ranks anchors by how well they fit).
    """

    def __init__(self, c_in: int, cfg: NetConfig) -> None:
        super().__init__()
        h = cfg.p4_width
        self.trunk = DWSep(c_in, h)
        self.box = nn.Conv2d(h, 4 * cfg.reg_max, 1)
        self.cls = nn.Conv2d(h, cfg.num_classes, 1)
        self.coef = nn.Conv2d(h, cfg.num_masks, 1)
        init_output_bias(self.box, self.cls, cfg.num_classes, PROTO_STRIDE)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (box [B, h*w, 4*reg_max], cls [B, h*w, nc], coef [B, h*w, nm])."""
        x = self.trunk(x)
        return anchor_major(self.box(x)), anchor_major(self.cls(x)), anchor_major(self.coef(x))


class Proto(nn.Module):
    """Prototype branch at stride 4: upsampled stride-8 neck feature + stride-4 backbone feature."""

    def __init__(self, c8: int, c4: int, cfg: NetConfig) -> None:
        super().__init__()
        h = cfg.proto_width
        self.reduce = ConvBN(c8, h, 1)
        self.fuse = nn.Sequential(DWSep(h + c4, h), DWSep(h, h))
        self.out = ConvBN(h, cfg.num_masks, 1, act=False)

    def features(self, p8: torch.Tensor, c4: torch.Tensor) -> torch.Tensor:
        """The fused stride-4 feature [B, proto_width, H/4, W/4] the prototypes come from."""
        up = F.interpolate(self.reduce(p8), scale_factor=2.0, mode="nearest")
        return self.fuse(torch.cat((up, c4), 1))

    def forward(self, p8: torch.Tensor, c4: torch.Tensor) -> torch.Tensor:
        """Return prototypes [B, nm, H/4, W/4]."""
        return self.out(self.features(p8, c4))


class RawOutput(NamedTuple):
    """Raw network outputs used by the loss (levels concatenated, A = sum of h*w).

    Attributes:
        box: [B, A, 4 * reg_max] DFL logits of ltrb distances.
        cls: [B, A, nc] class logits.
        coef: [B, A, nm] mask coefficients.
        protos: [B, nm, H/4, W/4] prototypes.
        anchors: [A, 2] cell centres (x, y) in input pixels.
        strides: [A, 1] stride of each anchor's level.
    """

    box: torch.Tensor
    cls: torch.Tensor
    coef: torch.Tensor
    protos: torch.Tensor
    anchors: torch.Tensor
    strides: torch.Tensor


def make_anchors(
    shapes: list[tuple[int, int]], strides: tuple[int, ...], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell centres of every level.

    Args:
        shapes: (h, w) of each level's grid.
        strides: stride of each level in input pixels.
        device: where to build the tensors.

    Returns:
        anchors [A, 2] float32 (x, y) input pixels, strides [A, 1] float32.
    """
    pts, sts = [], []
    for (h, w), s in zip(shapes, strides, strict=True):
        sy = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * s
        sx = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * s
        yy, xx = torch.meshgrid(sy, sx, indexing="ij")
        pts.append(torch.stack((xx, yy), -1).view(-1, 2))
        sts.append(torch.full((h * w, 1), float(s), device=device))
    return torch.cat(pts), torch.cat(sts)


def dfl_decode(box: torch.Tensor, reg_max: int, bins: torch.Tensor | None = None) -> torch.Tensor:
    """Expected ltrb distance (in strides) from DFL logits.

    Args:
        box: [..., 4 * reg_max] logits.
        reg_max: bins per side.
        bins: ``arange(reg_max)`` as float32 (a buffer of an export module); built here if None.

    Returns:
        [..., 4] distances in units of the anchor's stride.
    """
    shape = box.shape[:-1]
    prob = box.reshape(*shape, 4, reg_max).softmax(-1)
    if bins is None:
        bins = torch.arange(reg_max, device=box.device, dtype=prob.dtype)
    return prob @ bins


def dist_to_xyxy(dist: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """ltrb distances (pixels) around anchor points -> xyxy boxes (pixels)."""
    lt, rb = dist.chunk(2, -1)
    return torch.cat((anchors - lt, anchors + rb), -1)


class SegLite(nn.Module):
    """The compact instance-segmentation network. See the module docstring for the layout."""

    def __init__(self, cfg: NetConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or NetConfig()
        c = self.cfg
        self.backbone = Backbone(c)
        self.neck = Neck(c)
        self.heads = nn.ModuleList(
            LevelHead(ch, c, s) for ch, s in zip(c.neck_widths, STRIDES, strict=True)
        )
        self.proto = Proto(c.neck_widths[0], c.widths[1], c)
        self.p4 = P4Head(c.proto_width, c) if c.p4_head else None

    def forward(self, x: torch.Tensor) -> RawOutput:
        """Run the network.

        Args:
            x: [B, 3, H, W] float RGB in 0..1, H and W multiples of 32.

        Returns:
            The raw outputs (:class:`RawOutput`).
        """
        box, cls, coef, protos, shapes = self.predict(x)
        anchors, strides = make_anchors(shapes, self.cfg.strides, x.device)
        return RawOutput(box, cls, coef, protos, anchors, strides)

    def predict(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
        """The learned part of :meth:`forward`: (box, cls, coef, protos, grid shapes per level),
        the levels' anchors concatenated."""
        levels, protos, shapes = self.predict_levels(x)
        box, cls, coef = (torch.cat(t, 1) for t in zip(*levels, strict=True))
        return box, cls, coef, protos, shapes

    def predict_levels(
        self, x: torch.Tensor
    ) -> tuple[
        list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], torch.Tensor, list[tuple[int, int]]
    ]:
        """Per detection level (in :attr:`NetConfig.strides` order): (box [B, h*w, 4*reg_max],
        cls [B, h*w, nc], coef [B, h*w, nm]); then the prototypes and the levels' grid shapes.

        While tracing (export) the shapes are not computed: the exported module has its anchors
        as buffers, and reading a traced size as a Python int only earns a TracerWarning.
        """
        c4, c8, c16, c32 = self.backbone(x)
        feats = list(self.neck(c8, c16, c32))
        levels = []
        if self.p4 is not None:
            f4 = self.proto.features(feats[0], c4)
            protos = self.proto.out(f4)
            levels.append(self.p4(f4))
            grids = [f4, *feats]
        else:
            protos = self.proto(feats[0], c4)
            grids = feats
        for head, f in zip(self.heads, feats, strict=True):
            levels.append(head(f))
        shapes = (
            [] if torch.jit.is_tracing() else [(int(g.shape[2]), int(g.shape[3])) for g in grids]
        )
        return levels, protos, shapes

    def fuse(self) -> SegLite:
        """Fold every BatchNorm into its conv (in place, inference only); returns self."""
        for m in self.modules():
            if isinstance(m, ConvBN):
                m.fuse()
        return self


def runtime_layout(
    raw: RawOutput, reg_max: int, bins: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Convert raw outputs to the YOLO-seg runtime layout.

    Args:
        raw: network outputs.
        reg_max: DFL bins of the network.
        bins: see :func:`dfl_decode`.

    Returns:
        ``output0`` [B, 4 + nc + nm, A]: cx, cy, w, h (input pixels), class scores after
        sigmoid, raw mask coefficients; ``output1`` [B, nm, H/4, W/4] prototypes.
    """
    dist = dfl_decode(raw.box.float(), reg_max, bins)
    return _layout(dist, raw.cls, raw.coef, raw.protos, raw.anchors, raw.strides)


def _layout(
    dist: torch.Tensor,
    cls: torch.Tensor,
    coef: torch.Tensor,
    protos: torch.Tensor,
    anchors: torch.Tensor,
    strides: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`runtime_layout` from decoded ltrb distances ``dist`` [B, A, 4] (in strides).

    ``output0`` is returned as a transposed view of a [B, A, C] tensor: the decoder reads it
    anchor-major, so neither side copies it.
    """
    lt, rb = (dist * strides).chunk(2, -1)
    cxy = anchors + (rb - lt) / 2
    wh = lt + rb
    out0 = torch.cat((cxy, wh, cls.float().sigmoid(), coef.float()), -1).transpose(1, 2)
    return out0, protos.float()


class RuntimeHead(nn.Module):
    """Wrap a :class:`SegLite` so ``forward`` returns the runtime layout (for export)."""

    def __init__(self, net: SegLite) -> None:
        super().__init__()
        self.net = net
        self.reg_max = net.cfg.reg_max

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, 3, H, W] RGB 0..1 -> (output0 [B, 4+nc+nm, A], output1 [B, nm, H/4, W/4])."""
        return runtime_layout(self.net(x), self.reg_max)


class ExportHead(nn.Module):
    """:class:`RuntimeHead` for one input size, the module that exports trace.

    Tracing bakes a tensor built inside ``forward`` (``torch.arange``, ``torch.full``) into the
    graph on the device it was traced on, so a file traced on the CPU would fail on CUDA. Here
    the anchors, strides and DFL bins are buffers: they follow ``module.to(device)`` and
    ``torch.jit.load(map_location=...)``, and the traced graph holds no device.
    """

    anchors: torch.Tensor
    strides: torch.Tensor
    bins: torch.Tensor

    def __init__(self, net: SegLite, imgsz: tuple[int, int]) -> None:
        super().__init__()
        self.net = net
        self.reg_max = net.cfg.reg_max
        h, w = int(imgsz[0]), int(imgsz[1])
        level_strides = net.cfg.strides
        shapes = [(h // s, w // s) for s in level_strides]
        anchors, strides = make_anchors(shapes, level_strides, torch.device("cpu"))
        self.register_buffer("anchors", anchors)
        self.register_buffer("strides", strides)
        self.register_buffer("bins", torch.arange(self.reg_max, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, 3, H, W] RGB 0..1 at the export size -> (output0, output1) as RuntimeHead.

        The DFL bins are decoded per level, before the levels are joined, so the 4 * reg_max
        box logits of every anchor are never concatenated (with a stride-4 level that copy and
        the decode over it took 3 ms of the forward on 2 CPU cores).
        """
        levels, protos, _ = self.net.predict_levels(x)
        dist = torch.cat([dfl_decode(b.float(), self.reg_max, self.bins) for b, _, _ in levels], 1)
        cls = torch.cat([c for _, c, _ in levels], 1)
        coef = torch.cat([m for _, _, m in levels], 1)
        return _layout(dist, cls, coef, protos, self.anchors, self.strides)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

"""A tiny YOLO-seg network with a KNOWN output, exported like ultralytics exports, for the tests.

The network ignores pixel values (only the batch size matters) and emits, for a 64x96 (HxW)
input, nc=3 classes, nm=4 prototypes of 16x24 and A=40 anchors:

======  =====  =====  ===================  =======================  =========================
object  class  score  box xyxy (input px)  coefficients             mask (prototype cells)
======  =====  =====  ===================  =======================  =========================
A       0      0.9    8, 12, 48, 32        p0                       L: x3-8 y4-7 + x8-11 y6-8
A2      0      0.8    10, 12, 50, 32       p0 (duplicate of A)      -
B       1      0.7    12, 14, 48, 32       p1                       x5-10 y5-8
C       2      0.5    60, 36, 92, 52       p2                       x16-22 y10-12
D       2      0.3    76, 48, 100, 64      (p2 + p3) / 2            x20-24 y13-15
======  =====  =====  ===================  =======================  =========================

Every other anchor is noise: scores below 0.2, random boxes and coefficients. Prototypes are
+10 inside their shapes and -10 outside (ranges above are half-open cell ranges), so the mask
edges fall exactly on prototype cell edges.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from streamseg.config.model import ModelConfig
from streamseg.models.preprocess import letterbox_geometry

INPUT_HW = (64, 96)
PROTO_HW = (16, 24)
NC = 3
NM = 4
NUM_ANCHORS = 40
NAMES = {0: "person", 1: "car", 2: "dog"}
LOGIT = 10.0


@dataclass(frozen=True)
class Obj:
    """One planted detection of the fake network."""

    key: str
    anchor: int
    class_id: int
    score: float
    xyxy: tuple[float, float, float, float]
    coeffs: tuple[float, float, float, float]


OBJECTS = (
    Obj("D", 3, 2, 0.3, (76, 48, 100, 64), (0, 0, 0.5, 0.5)),
    Obj("C", 11, 2, 0.5, (60, 36, 92, 52), (0, 0, 1, 0)),
    Obj("A2", 17, 0, 0.8, (10, 12, 50, 32), (1, 0, 0, 0)),
    Obj("B", 25, 1, 0.7, (12, 14, 48, 32), (0, 1, 0, 0)),
    Obj("A", 33, 0, 0.9, (8, 12, 48, 32), (1, 0, 0, 0)),
)
BY_KEY = {o.key: o for o in OBJECTS}
EXPECTED_ORDER = ("A", "B", "C", "D")  # A2 is NMS'd away; sorted by score

# prototype shapes: list of half-open (x0, x1, y0, y1) cell rectangles per prototype
PROTO_RECTS: dict[int, list[tuple[int, int, int, int]]] = {
    0: [(3, 8, 4, 7), (8, 11, 6, 8)],
    1: [(5, 10, 5, 8)],
    2: [(16, 22, 10, 12), (20, 24, 13, 15)],
    3: [(20, 24, 13, 15)],
}


def build_outputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """output0 [1, 4+NC+NM, A] and output1 [1, NM, 16, 24] of the fake network."""
    rng = np.random.default_rng(seed)
    pred = np.zeros((NUM_ANCHORS, 4 + NC + NM), dtype=np.float32)
    cx = rng.uniform(0, INPUT_HW[1], NUM_ANCHORS)
    cy = rng.uniform(0, INPUT_HW[0], NUM_ANCHORS)
    pred[:, 0], pred[:, 1] = cx, cy
    pred[:, 2:4] = rng.uniform(4, 40, (NUM_ANCHORS, 2))
    pred[:, 4 : 4 + NC] = rng.uniform(0.0, 0.19, (NUM_ANCHORS, NC))
    pred[:, 4 + NC :] = rng.normal(0, 1, (NUM_ANCHORS, NM))
    for o in OBJECTS:
        x1, y1, x2, y2 = o.xyxy
        pred[o.anchor, :4] = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
        pred[o.anchor, 4 : 4 + NC] = 0.01
        pred[o.anchor, 4 + o.class_id] = o.score
        pred[o.anchor, 4 + NC :] = o.coeffs
    protos = np.full((NM, *PROTO_HW), -LOGIT, dtype=np.float32)
    for k, rects in PROTO_RECTS.items():
        for x0, x1, y0, y1 in rects:
            protos[k, y0:y1, x0:x1] = LOGIT
    return torch.from_numpy(pred.T[None].copy()), torch.from_numpy(protos[None])


class FakeYoloSeg(nn.Module):
    """Emits fixed YOLO-seg outputs, repeated over the input's batch size."""

    def __init__(self, output0: torch.Tensor, output1: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("out0", output0)
        self.register_buffer("out1", output1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = x.shape[0]
        # touch the pixels (times 0) so that an ONNX export keeps its input
        zero = x[0, 0, 0, 0].float() * 0.0
        out0 = self.out0.repeat([b] + [1] * (self.out0.dim() - 1))
        out1 = self.out1.repeat([b] + [1] * (self.out1.dim() - 1))
        return out0 + zero.to(out0.dtype), out1 + zero.to(out1.dtype)


class SingleOutput(nn.Module):
    """A detection-style export: only output0."""

    def __init__(self, output0: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("out0", output0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out0.repeat(x.shape[0], 1, 1)


def ultralytics_metadata(**overrides: Any) -> dict[str, Any]:
    """What ultralytics writes into config.txt, with overrides (None deletes a key)."""
    meta: dict[str, Any] = {
        "names": {str(k): v for k, v in NAMES.items()},
        "imgsz": list(INPUT_HW),
        "stride": 32,
        "task": "segment",
    }
    for key, value in overrides.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    return meta


def save_torchscript(path: Path, module: nn.Module, meta: dict[str, Any] | None) -> Path:
    """Script ``module`` and save it with ``config.txt`` metadata like ultralytics does."""
    extra = {"config.txt": json.dumps(meta)} if meta is not None else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit's notice since 2.10
        scripted = torch.jit.script(module)
        torch.jit.save(scripted, str(path), _extra_files=extra)
    return path


def save_onnx(path: Path, module: nn.Module, *, dynamic_batch: bool = True) -> Path:
    """Export ``module`` to ONNX (opset 17) with ultralytics-style metadata_props."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(
            module,
            (torch.zeros(1, 3, *INPUT_HW),),
            str(path),
            opset_version=17,
            dynamo=False,
            input_names=["images"],
            output_names=["output0", "output1"],
            dynamic_axes=(
                {"images": {0: "batch"}, "output0": {0: "batch"}, "output1": {0: "batch"}}
                if dynamic_batch
                else None
            ),
        )
    model = onnx.load(str(path))
    for key, value in {
        "names": str(NAMES),  # "{0: 'person', 1: 'car', 2: 'dog'}", as ultralytics writes it
        "imgsz": str(list(INPUT_HW)),
        "stride": "32",
        "task": "segment",
    }.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.save(model, str(path))
    return path


def frame_box(obj_key: str, frame_hw: tuple[int, int]) -> np.ndarray:
    """Reference: the planted box mapped to a frame (ultralytics scale_boxes + clip)."""
    lb = letterbox_geometry(frame_hw, INPUT_HW)
    x1, y1, x2, y2 = BY_KEY[obj_key].xyxy
    h, w = frame_hw
    sx, sy = lb.new_hw[1] / w, lb.new_hw[0] / h  # per axis, as the resize scaled
    xs = np.clip((np.array([x1, x2]) - lb.left) / sx, 0, w)
    ys = np.clip((np.array([y1, y2]) - lb.top) / sy, 0, h)
    return np.array([xs[0], ys[0], xs[1], ys[1]], dtype=np.float32)


def reference_mask(obj_key: str, frame_hw: tuple[int, int]) -> np.ndarray:
    """Reference: the planted mask at frame resolution, by nearest prototype cell, in its box.

    Each frame pixel centre goes through the letterbox to the prototype grid; it is set when the
    object's coefficient combination is positive in the cell it falls in.
    """
    _, protos = build_outputs()
    logits = np.tensordot(np.array(BY_KEY[obj_key].coeffs), protos[0].numpy(), axes=1)
    lb = letterbox_geometry(frame_hw, INPUT_HW)
    h, w = frame_hw
    ratio = INPUT_HW[0] // PROTO_HW[0]
    sx, sy = lb.new_hw[1] / w, lb.new_hw[0] / h
    px = (((np.arange(w) + 0.5) * sx + lb.left) / ratio).astype(int)
    py = (((np.arange(h) + 0.5) * sy + lb.top) / ratio).astype(int)
    px = np.clip(px, 0, PROTO_HW[1] - 1)
    py = np.clip(py, 0, PROTO_HW[0] - 1)
    dense = logits[py[:, None], px[None, :]] > 0
    x1, y1, x2, y2 = frame_box(obj_key, frame_hw)
    inside = np.zeros((h, w), dtype=bool)
    inside[int(np.floor(y1)) : int(np.ceil(y2)), int(np.floor(x1)) : int(np.ceil(x2))] = True
    return dense & inside


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def make_config(weights: Path | str, **overrides: Any) -> ModelConfig:
    """A ModelConfig on CPU for ``weights``.

    Mask refinement is off unless ``overrides`` turn it on: the fake model's frames are blank or
    noise, with no edges to refine on, and the tests compare the decoder's own masks.
    """
    overrides.setdefault("mask_refine", {"enabled": False})
    return ModelConfig(weights=str(weights), device="cpu", **overrides)

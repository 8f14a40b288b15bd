"""Export :class:`~streamseg.train.net.SegLite` in the runtime layout (TorchScript and ONNX).

Both files take ``images`` [B, 3, H, W] float RGB 0..1 (letterboxed, pad 114/255) at the fixed
``imgsz`` and return ``(output0 [B, 4 + nc + nm, A], output1 [B, nm, H/4, W/4])``; the batch size
is free. BatchNorm is folded into the convolutions before tracing.

Metadata, as ultralytics writes it so ``streamseg.models`` reads ours like any YOLO-seg export:

* TorchScript: extra file ``config.txt`` = JSON ``{"names": {id: name}, "imgsz": [H, W],
  "stride": 32, "task": "segment"}`` (and ``"mask_threshold"`` when one was calibrated), plus
  ``seglite.json`` = the :class:`NetConfig` (so the file can be turned back into a trainable
  network for fine-tuning, see :func:`load_runtime_weights`).
* ONNX: ``metadata_props`` ``names`` (``"{0: 'person', ...}"``), ``imgsz`` (``"[H, W]"``),
  ``stride``, ``task`` (and ``mask_threshold``).

``mask_threshold`` is the mask probability the runtime thresholds at for these weights (its
default 0.5 otherwise). Masks learned at stride 4 and upsampled come out slightly thin, so a
threshold under 0.5 can fit the objects better; pick it on held-out frames (checkpoints/README.md).
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from streamseg.train.net import STRIDES, ExportHead, NetConfig, SegLite

logger = logging.getLogger(__name__)

#: Name of the extra file that holds the network shape in our TorchScript exports.
NET_CONFIG_FILE = "seglite.json"


def _runtime_module(net: SegLite, imgsz: tuple[int, int]) -> ExportHead:
    fused = copy.deepcopy(net).float().eval()
    fused.fuse()
    return ExportHead(fused, imgsz).eval()


def _config_json(
    class_names: Sequence[str], imgsz: tuple[int, int], mask_threshold: float | None
) -> str:
    config: dict[str, object] = {
        "names": {i: n for i, n in enumerate(class_names)},
        "imgsz": [int(imgsz[0]), int(imgsz[1])],
        "stride": max(STRIDES),
        "task": "segment",
    }
    if mask_threshold is not None:
        config["mask_threshold"] = float(mask_threshold)
    return json.dumps(config)


def _check_args(
    net: SegLite,
    class_names: Sequence[str],
    imgsz: tuple[int, int],
    mask_threshold: float | None = None,
) -> None:
    if len(class_names) != net.cfg.num_classes:
        raise ValueError(
            f"class_names: expected {net.cfg.num_classes} names (the network's classes), got "
            f"{len(class_names)}: {list(class_names)}"
        )
    if imgsz[0] % max(STRIDES) or imgsz[1] % max(STRIDES):
        raise ValueError(f"imgsz: expected (H, W) multiples of {max(STRIDES)}, got {imgsz}")
    if mask_threshold is not None and not 0.0 < mask_threshold < 1.0:
        raise ValueError(f"mask_threshold: expected a value in (0, 1), got {mask_threshold}")


def export_torchscript(
    net: SegLite,
    path: str | Path,
    class_names: Sequence[str],
    imgsz: tuple[int, int],
    mask_threshold: float | None = None,
) -> Path:
    """Trace ``net`` (BN folded) and save it with its metadata.

    Args:
        net: the trained network (not modified).
        path: output file, conventionally ``*.torchscript``.
        class_names: one name per class id.
        imgsz: (H, W) input size the file is traced for.
        mask_threshold: the calibrated mask threshold to record, in (0, 1); None records none.

    Returns:
        The written path.
    """
    _check_args(net, class_names, imgsz, mask_threshold)
    module = _runtime_module(net, imgsz)
    x = torch.rand(1, 3, int(imgsz[0]), int(imgsz[1]))
    with torch.no_grad():
        traced = torch.jit.trace(module, x, check_trace=False)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.jit.save(
        traced,
        str(tmp),
        _extra_files={
            "config.txt": _config_json(class_names, imgsz, mask_threshold),
            NET_CONFIG_FILE: json.dumps(net.cfg.to_dict()),
        },
    )
    tmp.replace(out)
    logger.info("exported TorchScript %s (%.2f MB)", out, out.stat().st_size / 1e6)
    return out


def export_onnx(
    net: SegLite,
    path: str | Path,
    class_names: Sequence[str],
    imgsz: tuple[int, int],
    opset: int = 17,
    mask_threshold: float | None = None,
) -> Path:
    """Export ``net`` (BN folded) to ONNX with a dynamic batch axis and metadata.

    Args:
        net: the trained network (not modified).
        path: output file, conventionally ``*.onnx``.
        class_names: one name per class id.
        imgsz: (H, W) input size.
        opset: ONNX opset.
        mask_threshold: the calibrated mask threshold to record, in (0, 1); None records none.

    Returns:
        The written path.
    """
    import onnx

    _check_args(net, class_names, imgsz, mask_threshold)
    module = _runtime_module(net, imgsz)
    x = torch.rand(1, 3, int(imgsz[0]), int(imgsz[1]))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with torch.no_grad():
        torch.onnx.export(
            module,
            (x,),
            str(tmp),
            input_names=["images"],
            output_names=["output0", "output1"],
            dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}, "output1": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    model = onnx.load(str(tmp))
    names = {i: n for i, n in enumerate(class_names)}
    meta = {
        "names": repr(names),
        "imgsz": repr([int(imgsz[0]), int(imgsz[1])]),
        "stride": str(max(STRIDES)),
        "task": "segment",
        "author": "streamseg",
        NET_CONFIG_FILE: json.dumps(net.cfg.to_dict()),
    }
    if mask_threshold is not None:
        meta["mask_threshold"] = repr(float(mask_threshold))
    del model.metadata_props[:]
    for k, v in meta.items():
        prop = model.metadata_props.add()
        prop.key = k
        prop.value = v
    onnx.save(model, str(tmp))
    tmp.replace(out)
    logger.info("exported ONNX %s (%.2f MB)", out, out.stat().st_size / 1e6)
    return out


def _load_torchscript(
    path: str | Path,
) -> tuple[torch.jit.ScriptModule, dict[str, object], NetConfig | None]:
    """The module of a TorchScript export, with its ``config.txt`` and our network shape (if
    present), from one read of the file."""
    extra = {"config.txt": "", NET_CONFIG_FILE: ""}
    module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    cfg_txt = extra["config.txt"]
    meta = json.loads(cfg_txt) if cfg_txt else {}
    net_txt = extra[NET_CONFIG_FILE]
    net_cfg = NetConfig.from_dict(json.loads(net_txt)) if net_txt else None
    return module, meta, net_cfg


def read_torchscript_metadata(path: str | Path) -> tuple[dict[str, object], NetConfig | None]:
    """Read ``config.txt`` and our network shape (if present) from a TorchScript export."""
    _, meta, net_cfg = _load_torchscript(path)
    return meta, net_cfg


def load_runtime_weights(path: str | Path) -> tuple[SegLite, list[str]]:
    """Turn one of our TorchScript exports back into a trainable :class:`SegLite`
    (:func:`load_runtime_export` without the metadata)."""
    net, names, _ = load_runtime_export(path)
    return net, names


@torch.no_grad()
def load_runtime_export(path: str | Path) -> tuple[SegLite, list[str], dict[str, object]]:
    """Turn one of our TorchScript exports back into a trainable :class:`SegLite`.

    Exports have BatchNorm folded into the convolutions; each BN is restored as an identity
    (mean 0, variance 1 - eps, scale 1) carrying the folded bias, so the returned network in
    eval mode computes exactly what the file computes.

    Args:
        path: a ``.torchscript`` written by :func:`export_torchscript`.

    Returns:
        (network, class names, the file's ``config.txt`` metadata), from one read of the file.

    Raises:
        ValueError: the file is not one of our exports (no ``seglite.json``).
    """
    module, meta, net_cfg = _load_torchscript(path)
    if net_cfg is None:
        raise ValueError(
            f"{path}: expected a streamseg SegLite export (extra file {NET_CONFIG_FILE}); this "
            "TorchScript file has none, so it cannot seed training"
        )
    names_raw = meta.get("names", {})
    names = (
        [str(names_raw[k]) for k in sorted(names_raw, key=int)]
        if isinstance(names_raw, dict)
        else [f"class_{i}" for i in range(net_cfg.num_classes)]
    )
    ts_state = module.state_dict()
    net = SegLite(net_cfg)
    state = net.state_dict()
    new: dict[str, torch.Tensor] = {}
    for key in state:
        ts_key = "net." + key
        if ts_key in ts_state:
            new[key] = ts_state[ts_key]
            continue
        # Folded ConvBN: conv.bias in the file, BN parameters in the network.
        prefix, _, leaf = key.rpartition(".bn.")
        if not leaf:
            raise ValueError(f"{path}: tensor {ts_key!r} missing from the TorchScript file")
        bn = net.get_submodule(prefix + ".bn")
        bias_key = f"net.{prefix}.conv.bias"
        if not isinstance(bn, torch.nn.BatchNorm2d) or bias_key not in ts_state:
            raise ValueError(
                f"{path}: expected a folded conv bias {bias_key!r} for {key!r}; the file does not "
                "match the network shape it declares"
            )
        bias = ts_state[bias_key]
        fill = {
            "weight": torch.ones_like(bias),
            "bias": bias,
            "running_mean": torch.zeros_like(bias),
            "running_var": torch.full_like(bias, 1.0 - bn.eps),
            "num_batches_tracked": torch.tensor(0),
        }
        new[key] = fill[leaf]
    net.load_state_dict(new)
    return net, names, meta

"""``model_class_names``: a model's class names from its file's metadata, without loading it."""

from __future__ import annotations

import types
import zipfile
from pathlib import Path

from helpers.fake_yolo_seg import FakeYoloSeg, build_outputs, save_torchscript, ultralytics_metadata

from streamseg.config.model import ModelConfig
from streamseg.models import load_segmenter
from streamseg.models.names import model_class_names


def test_builtin_names_are_the_loaded_models() -> None:
    names = model_class_names(ModelConfig(weights="builtin"))
    loaded = load_segmenter(ModelConfig(weights="builtin", device="cpu"))
    assert names == loaded.info.class_names
    assert "person" in names


def test_torchscript_and_onnx_metadata(
    torchscript_path: Path, onnx_path: Path, fake: types.ModuleType
) -> None:
    expected = [fake.NAMES[i] for i in range(len(fake.NAMES))]
    assert model_class_names(ModelConfig(weights=str(torchscript_path))) == expected
    assert model_class_names(ModelConfig(weights=str(onnx_path))) == expected


def test_configured_names_win(torchscript_path: Path) -> None:
    cfg = ModelConfig(weights=str(torchscript_path), class_names=["a", "b", "c"])
    assert model_class_names(cfg) == ["a", "b", "c"]


def test_unknown_when_the_file_cannot_tell(tmp_path: Path) -> None:
    # No names recorded: only loading the model tells how many classes (class_<i>).
    bare = save_torchscript(
        tmp_path / "bare.torchscript",
        FakeYoloSeg(*build_outputs()),
        ultralytics_metadata(names=None),
    )
    assert model_class_names(ModelConfig(weights=str(bare))) is None
    # Missing, not a zip, bad JSON: None here; the loader reports them when the model loads.
    assert model_class_names(ModelConfig(weights=str(tmp_path / "missing.torchscript"))) is None
    junk = tmp_path / "junk.torchscript"
    junk.write_bytes(b"not a zip")
    assert model_class_names(ModelConfig(weights=str(junk))) is None
    no_metadata = tmp_path / "no-metadata.torchscript"
    save_torchscript(no_metadata, FakeYoloSeg(*build_outputs()), None)
    assert model_class_names(ModelConfig(weights=str(no_metadata))) is None
    bad_json = tmp_path / "bad-json.torchscript"
    with zipfile.ZipFile(no_metadata) as src, zipfile.ZipFile(bad_json, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item))
        dst.writestr("no-metadata/extra/config.txt", "{oops")
    assert model_class_names(ModelConfig(weights=str(bad_json))) is None

"""Load errors say what was expected and what was found."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch

import streamseg.models.builtin as builtin_module
from streamseg.models import ModelLoadError, builtin_weights_path, load_segmenter, resolve_device


def test_missing_file(tmp_path: Path, fake: types.ModuleType) -> None:
    missing = tmp_path / "nope.torchscript"
    with pytest.raises(ModelLoadError, match=r"nope\.torchscript.*no such file"):
        load_segmenter(fake.make_config(missing))


def test_single_tensor_output_is_rejected_with_its_shape(
    tmp_path: Path, fake: types.ModuleType
) -> None:
    output0, _ = fake.build_outputs()
    path = fake.save_torchscript(
        tmp_path / "detect.torchscript", fake.SingleOutput(output0), fake.ultralytics_metadata()
    )
    with pytest.raises(ModelLoadError, match=r"single tensor of shape \[1, 11, 40\]"):
        load_segmenter(fake.make_config(path))


@pytest.mark.parametrize(
    ("output0_shape", "output1_shape", "message"),
    [
        # nm = 4 -> needs at least 4 + 1 + 4 = 9 channels
        (
            (1, 8, 40),
            (1, 4, 16, 24),
            r"at least 9, found output0 \[1, 8, 40\], output1 \[1, 4, 16, 24\]",
        ),
        # one channel too many: nc = 4 but the file names 3 classes
        ((1, 12, 40), (1, 4, 16, 24), r"names 3 classes but the model outputs 4"),
        # prototypes that are not input / integer
        (
            (1, 11, 40),
            (1, 4, 15, 24),
            r"prototypes of size input/r.*found output0 \[1, 11, 40\], output1 \[1, 4, 15, 24\]",
        ),
        # wrong ranks
        ((1, 11, 40, 1), (1, 4, 16, 24), r"ranks 3 and 4.*found output0 \[1, 11, 40, 1\]"),
        # transposed output0 [B, A, C]
        ((1, 40, 11), (1, 4, 16, 24), r"looks transposed"),
    ],
)
def test_wrong_layout_is_rejected_with_shapes(
    tmp_path: Path,
    fake: types.ModuleType,
    output0_shape: tuple[int, ...],
    output1_shape: tuple[int, ...],
    message: str,
) -> None:
    module = fake.FakeYoloSeg(torch.zeros(output0_shape), torch.zeros(output1_shape))
    path = fake.save_torchscript(tmp_path / "bad.torchscript", module, fake.ultralytics_metadata())
    with pytest.raises(ModelLoadError, match=message):
        load_segmenter(fake.make_config(path))


class FixedInput(torch.nn.Module):
    """A network built for 32x32 inputs whose file claims 64x96."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = x.reshape(x.shape[0], 3 * 32 * 32)
        return flat[:, :440].reshape(-1, 11, 40), flat[:, :384].reshape(-1, 4, 8, 12)


def test_forward_that_fails_at_load_says_why(tmp_path: Path, fake: types.ModuleType) -> None:
    path = fake.save_torchscript(
        tmp_path / "fixed.torchscript", FixedInput(), fake.ultralytics_metadata()
    )
    with pytest.raises(
        ModelLoadError,
        match=r"fixed\.torchscript: a test forward of batch 1 at its input size \(64, 96\) "
        r"failed: .*shape '\[1, 3072\]' is invalid for input of size 18432",
    ):
        load_segmenter(fake.make_config(path))


def test_proto_ratio_other_than_4_is_accepted_with_a_warning(
    tmp_path: Path, fake: types.ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    output0, _ = fake.build_outputs()
    module = fake.FakeYoloSeg(output0, torch.zeros(1, 4, 32, 48))
    path = fake.save_torchscript(tmp_path / "r2.torchscript", module, fake.ultralytics_metadata())
    seg = load_segmenter(fake.make_config(path))
    assert seg.info.proto_hw == (32, 48)
    assert "prototypes are input/2" in caplog.text


def test_class_names_of_wrong_length(torchscript_path: Path, fake: types.ModuleType) -> None:
    with pytest.raises(ModelLoadError, match=r"class_names has 2 names but the model outputs 3"):
        load_segmenter(fake.make_config(torchscript_path, class_names=["a", "b"]))


def test_cuda_that_this_machine_does_not_have(
    torchscript_path: Path, fake: types.ModuleType
) -> None:
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        with pytest.raises(
            ModelLoadError, match=r"'cuda' asks for CUDA, but torch .* sees no CUDA"
        ):
            resolve_device("cuda")
    else:
        assert resolve_device("cuda").type == "cuda"
    with pytest.raises(ModelLoadError, match=rf"'cuda:{count}' asks for CUDA"):
        load_segmenter(
            fake.make_config(torchscript_path).model_copy(update={"device": f"cuda:{count}"})
        )


@pytest.mark.parametrize(
    ("name", "expected"),
    [("auto", "cpu"), ("cpu", "cpu"), ("CPU", "cpu"), ("mps", None), ("cpu:0", None), ("", None)],
)
def test_resolve_device(name: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ModelLoadError, match=r"expected 'auto', 'cpu', 'cuda' or 'cuda:N'"):
            resolve_device(name)
    else:
        assert resolve_device(name) == torch.device(expected)


def test_builtin_weights_absent(
    tmp_path: Path, fake: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(builtin_module, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(
        ModelLoadError,
        match=r"built-in weights are not in this install.*issue #3.*pass a YOLO-seg export",
    ):
        builtin_weights_path()
    with pytest.raises(ModelLoadError, match="built-in weights"):
        load_segmenter(fake.make_config("builtin"))


def test_builtin_weights_present(
    tmp_path: Path, fake: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(builtin_module, "WEIGHTS_DIR", tmp_path)
    fake.save_torchscript(
        tmp_path / "builtin.torchscript",
        fake.FakeYoloSeg(*fake.build_outputs()),
        fake.ultralytics_metadata(),
    )
    assert builtin_weights_path() == tmp_path / "builtin.torchscript"
    seg = load_segmenter(fake.make_config("builtin"))
    assert seg.info.path == str(tmp_path / "builtin.torchscript")
    assert seg.info.class_names == ["person", "car", "dog"]


def test_file_that_is_not_torchscript(tmp_path: Path, fake: types.ModuleType) -> None:
    path = tmp_path / "garbage.torchscript"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(
        ModelLoadError, match=r"garbage\.torchscript: expected a TorchScript archive"
    ):
        load_segmenter(fake.make_config(path))


def test_state_dict_is_not_torchscript(tmp_path: Path, fake: types.ModuleType) -> None:
    path = tmp_path / "weights.pt"
    torch.save(fake.FakeYoloSeg(*fake.build_outputs()).state_dict(), path)
    with pytest.raises(ModelLoadError, match=r"weights\.pt: expected a TorchScript archive"):
        load_segmenter(fake.make_config(path))


def test_torchscript_without_input_size(tmp_path: Path, fake: types.ModuleType) -> None:
    path = fake.save_torchscript(
        tmp_path / "nosize.torchscript",
        fake.FakeYoloSeg(*fake.build_outputs()),
        fake.ultralytics_metadata(imgsz=None),
    )
    with pytest.raises(ModelLoadError, match=r"does not say its input size"):
        load_segmenter(fake.make_config(path))


def test_unknown_format_by_content(tmp_path: Path) -> None:
    from streamseg.models.loader import detect_format

    path = tmp_path / "model.bin"
    path.write_text("hello")
    with pytest.raises(ModelLoadError, match=r"cannot tell the model format"):
        detect_format(path)
    with pytest.raises(ModelLoadError, match=r"model.format: expected one of"):
        detect_format(path, "tflite")

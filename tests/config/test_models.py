"""The models used directly from Python (not through YAML): bounds, helpers, cross-checks."""

from __future__ import annotations

import pickle

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from streamseg.config import (
    MISSING,
    ConfigError,
    ConfigIssue,
    CrossCheckError,
    FileSourceConfig,
    ModelConfig,
    OutputsConfig,
    PipelineConfig,
    ReconnectConfig,
    RtspSourceConfig,
    SourceConfig,
    TrackerConfig,
    UsbSourceConfig,
    VideoOutputConfig,
    check_unique_source_ids,
    check_video_path_template,
    redact_url,
)


def _file(source_id: str) -> FileSourceConfig:
    return FileSourceConfig(id=source_id, type="file", path=f"{source_id}.mp4")


def test_check_unique_source_ids_names_the_duplicate() -> None:
    check_unique_source_ids([_file("a"), _file("b")])
    with pytest.raises(CrossCheckError) as info:
        check_unique_source_ids([_file("a"), _file("b"), _file("b"), _file("a")])
    # The first repeated id in order of first use is 'a'; its second use is index 3.
    assert info.value.loc == ("sources", 3, "id")
    assert "'a'" in info.value.message and "sources[0]" in info.value.message
    assert "also repeated: b" in info.value.message


def test_check_video_path_template() -> None:
    one_file = OutputsConfig(video=VideoOutputConfig(path="out/all.mp4"))
    check_video_path_template(one_file, [_file("a")])  # one source: any path is fine
    check_video_path_template(OutputsConfig(), [_file("a"), _file("b")])  # no video output
    check_video_path_template(OutputsConfig(video=VideoOutputConfig()), [_file("a"), _file("b")])
    with pytest.raises(CrossCheckError) as info:
        check_video_path_template(one_file, [_file("a"), _file("b")])
    assert info.value.loc == ("outputs", "video", "path")
    assert "(a, b)" in info.value.message


def test_pipeline_runs_the_cross_checks_in_python_too() -> None:
    with pytest.raises(ValidationError) as info:
        PipelineConfig(
            sources=[_file("a"), _file("a")],
            outputs=OutputsConfig(video=VideoOutputConfig(path="x.mp4")),
        )
    (error,) = info.value.errors()
    assert error["type"] == "cross_check"
    assert "duplicate source id 'a'" in error["msg"]
    assert "outputs.video.path" in error["msg"]


def test_pipeline_source_lookup() -> None:
    config = PipelineConfig(sources=[_file("a"), _file("b")])
    assert config.source("b").id == "b"
    with pytest.raises(KeyError, match="expected one of a, b"):
        config.source("c")


def test_source_union_picks_the_model_by_type() -> None:
    adapter: TypeAdapter[SourceConfig] = TypeAdapter(SourceConfig)
    assert isinstance(
        adapter.validate_python({"id": "a", "type": "file", "path": "x"}), FileSourceConfig
    )
    rtsp = adapter.validate_python({"id": "a", "type": "rtsp", "url": "RTSP://h/s"})
    assert isinstance(rtsp, RtspSourceConfig)
    usb = adapter.validate_python({"id": "a", "type": "usb", "device": "/dev/video3"})
    assert isinstance(usb, UsbSourceConfig) and usb.device_path == "/dev/video3"
    quoted = adapter.validate_python({"id": "a", "type": "usb", "device": "4"})
    assert isinstance(quoted, UsbSourceConfig) and quoted.device_path == "/dev/video4"


@pytest.mark.parametrize("device", [True, -1, "", "  ", 1.5, None])
def test_usb_device_rejects(device: object) -> None:
    with pytest.raises(ValidationError) as info:
        UsbSourceConfig(id="a", type="usb", device=device)  # type: ignore[arg-type]
    # One error per bad value, not one per member of an int | str union.
    assert len(info.value.errors()) == 1


def test_reconnect_bounds() -> None:
    assert ReconnectConfig(initial_delay_s=2, max_delay_s=2).max_delay_s == 2
    with pytest.raises(ValidationError):
        ReconnectConfig(max_attempts=0)
    with pytest.raises(ValidationError):
        ReconnectConfig(initial_delay_s=0)


@pytest.mark.parametrize(
    ("weights", "fmt", "resolved"),
    [
        ("builtin", "auto", "torchscript"),
        ("builtin", "torchscript", "torchscript"),
        ("m/yolo11n-seg.TorchScript", "auto", "torchscript"),
        ("m/net.pt", "auto", "torchscript"),
        ("m/net.jit", "auto", "torchscript"),
        ("m/net.onnx", "auto", "onnx"),
        ("m/net.bin", "onnx", "onnx"),
    ],
)
def test_model_resolved_format(weights: str, fmt: str, resolved: str) -> None:
    assert ModelConfig(weights=weights, format=fmt).resolved_format == resolved  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"weights": "builtin", "format": "onnx"}, "builtin model is TorchScript"),
        ({"weights": "net.bin"}, "cannot infer the format"),
        ({"device": "cuda:x"}, "cuda:<index>"),
        ({"device": "CPU"}, "cuda:<index>"),
        ({"iou": 0}, "greater than 0"),
        ({"classes": []}, "at least 1 item"),
        ({"threads": 0}, "greater than or equal to 1"),
        ({"batch_timeout_ms": -1}, "greater than or equal to 0"),
    ],
)
def test_model_rejects(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment.replace("(", r"\(")):
        ModelConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_model_device_spellings(device: str) -> None:
    assert ModelConfig(device=device).device == device


def test_tracker_is_on_by_default_and_rejects_unknown_keys() -> None:
    assert PipelineConfig(sources=[_file("a")]).tracker == TrackerConfig()
    assert TrackerConfig().enabled and TrackerConfig().type == "mask"
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        TrackerConfig.model_validate({"max_age": 30})


@pytest.mark.parametrize("item", [{"id": "z"}, "z", []])
def test_malformed_zones_and_rules_items_are_rejected(item: object) -> None:
    # The sections themselves are tested in test_zones_rules_config.py.
    with pytest.raises(ValidationError, match=r"zones\.0"):
        PipelineConfig(sources=[_file("a")], zones=[item])
    with pytest.raises(ValidationError, match=r"rules\.0"):
        PipelineConfig(sources=[_file("a")], rules=[item])


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("out/{stream}.mp4", True),
        ("out/{stream}/{stream}.mp4", True),
        ("out/{{literal}}-{stream}.mp4", True),
        ("out/{camera}.mp4", False),
        ("out/{stream.mp4", False),
        ("out/{}.mp4", False),
    ],
)
def test_video_path_placeholders(path: str, ok: bool) -> None:
    if ok:
        assert "{" not in VideoOutputConfig(path=path).path_for("gate").replace("{literal}", "")
    else:
        with pytest.raises(ValidationError, match=r"\{stream\}"):
            VideoOutputConfig(path=path)


def test_every_field_has_a_description() -> None:
    models: list[type[BaseModel]] = [
        PipelineConfig,
        FileSourceConfig,
        RtspSourceConfig,
        UsbSourceConfig,
        ReconnectConfig,
        ModelConfig,
        OutputsConfig,
        VideoOutputConfig,
    ]
    for model in models:
        assert model.model_config.get("extra") == "forbid", model.__name__
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtsp://admin:secret@10.0.0.5:554/s1", "rtsp://admin:***@10.0.0.5:554/s1"),
        ("rtsp://admin:se@cr:et@10.0.0.5/s1?a=1", "rtsp://admin:***@10.0.0.5/s1?a=1"),
        ("rtsp://10.0.0.5/s1", "rtsp://10.0.0.5/s1"),
        ("rtsp://user@10.0.0.5/s1", "rtsp://user@10.0.0.5/s1"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_config_error_contract() -> None:
    with pytest.raises(ValueError, match="at least one ConfigIssue"):
        ConfigError([])
    issues = [
        ConfigIssue("a.yaml", 3, 5, "sources[0].fps", 0, "got 0, expected a number > 0"),
        ConfigIssue("a.yaml", None, None, "", MISSING, "file not found"),
    ]
    error = ConfigError(issues)
    assert str(error).splitlines() == [
        "a.yaml:3:5: sources[0].fps: got 0, expected a number > 0",
        "a.yaml: file not found",
    ]
    copy = pickle.loads(pickle.dumps(error))
    assert copy.issues == issues and copy.issues[1].value is MISSING
    with pytest.raises(AttributeError):
        issues[0].line = 4  # type: ignore[misc]


def test_the_config_and_the_loader_accept_the_same_model_file_endings() -> None:
    """Regression: ``streamseg info m.pth`` worked, ``weights: m.pth`` in a pipeline was refused
    (two lists of endings)."""
    from streamseg.config import load_pipeline_text
    from streamseg.config.model import FORMAT_BY_SUFFIX
    from streamseg.models import loader

    onnx = {suffix for suffix, fmt in FORMAT_BY_SUFFIX.items() if fmt == "onnx"}
    torchscript = set(FORMAT_BY_SUFFIX) - onnx
    assert onnx == set(loader._ONNX_SUFFIXES)
    assert torchscript == set(loader._TORCHSCRIPT_SUFFIXES)
    config = load_pipeline_text(
        "sources: [{id: a, type: file, path: a.mp4}]\nmodel: {weights: m.pth}\n"
    )
    assert config.model.weights == "m.pth"

"""Every example in ``pipelines/`` validates (they are what operators copy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamseg.config import (
    ConfigError,
    FileSourceConfig,
    RtspSourceConfig,
    UsbSourceConfig,
    load_pipeline,
)

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
EXAMPLE_ENV = {"CAM_PASSWORD": "example-password"}


def _examples() -> list[Path]:
    return sorted(PIPELINES.glob("*.yaml"))


def test_the_documented_examples_exist() -> None:
    names = {path.name for path in _examples()}
    assert {"file_basic.yaml", "rtsp_cameras.yaml", "usb_camera.yaml"} <= names


@pytest.mark.parametrize("path", _examples(), ids=lambda p: p.name)
def test_example_validates(path: Path) -> None:
    config = load_pipeline(path, env=EXAMPLE_ENV)
    assert config.sources
    assert path.read_text().lstrip().startswith("#"), "examples start with operator comments"


def test_file_example() -> None:
    config = load_pipeline(PIPELINES / "file_basic.yaml", env={})
    (source,) = config.sources
    assert isinstance(source, FileSourceConfig)
    assert source.path == "videos/input.mp4" and not source.realtime


def test_rtsp_example_takes_the_password_from_the_environment() -> None:
    config = load_pipeline(PIPELINES / "rtsp_cameras.yaml", env=EXAMPLE_ENV)
    gate, crane = config.sources
    assert isinstance(gate, RtspSourceConfig) and isinstance(crane, RtspSourceConfig)
    assert "example-password" in gate.url and "example-password" in crane.url
    assert (gate.transport, crane.transport, crane.fps) == ("tcp", "udp", 5)
    with pytest.raises(ConfigError) as info:
        load_pipeline(PIPELINES / "rtsp_cameras.yaml", env={})
    assert [issue.key_path for issue in info.value.issues] == ["sources[0].url", "sources[1].url"]
    assert all("CAM_PASSWORD" in issue.message for issue in info.value.issues)


def test_usb_example() -> None:
    config = load_pipeline(PIPELINES / "usb_camera.yaml", env={})
    (source,) = config.sources
    assert isinstance(source, UsbSourceConfig)
    assert source.device_path == "/dev/video0" and source.input_format == "mjpeg"

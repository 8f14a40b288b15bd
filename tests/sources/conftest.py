"""Config builders for the source tests: the real ``streamseg.config`` models, with short
timeouts for the live sources."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from streamseg.config import (
    FileSourceConfig,
    ReconnectConfig,
    RtspSourceConfig,
    UsbSourceConfig,
)

# Short timeouts so that failure paths finish in seconds (see the brief: stall 1.5 s,
# read timeout 1.5 s, backoff 0.2..1 s).
FAST_RECONNECT = {"initial_delay_s": 0.2, "max_delay_s": 1.0}


@pytest.fixture
def file_cfg() -> Callable[..., Any]:
    """``file_cfg(path, id="clip", **fields)`` -> FileSourceConfig."""

    def make(path: object, id: str = "clip", **fields: Any) -> Any:
        return FileSourceConfig(type="file", id=id, path=str(path), **fields)

    return make


@pytest.fixture
def rtsp_cfg() -> Callable[..., Any]:
    """``rtsp_cfg(url, id="cam", reconnect={...}, **fields)`` -> RtspSourceConfig with short
    timeouts."""

    def make(
        url: str, id: str = "cam", reconnect: dict[str, Any] | None = None, **fields: Any
    ) -> Any:
        values: dict[str, Any] = {
            "open_timeout_s": 1.5,
            "read_timeout_s": 1.5,
            "stall_timeout_s": 1.5,
        }
        values.update(fields)
        return RtspSourceConfig(
            type="rtsp",
            id=id,
            url=url,
            reconnect=ReconnectConfig(**{**FAST_RECONNECT, **(reconnect or {})}),
            **values,
        )

    return make


@pytest.fixture
def usb_cfg() -> Callable[..., Any]:
    """``usb_cfg(device, id="usb", reconnect={...}, **fields)`` -> UsbSourceConfig."""

    def make(
        device: str | int = "/dev/video0",
        id: str = "usb",
        reconnect: dict[str, Any] | None = None,
        **fields: Any,
    ) -> Any:
        return UsbSourceConfig(
            type="usb",
            id=id,
            device=device,
            reconnect=ReconnectConfig(**{**FAST_RECONNECT, **(reconnect or {})}),
            **fields,
        )

    return make

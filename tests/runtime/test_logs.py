"""JSON log lines (``streamseg run --log-format json``)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamseg.cli import main
from streamseg.runtime.logs import setup_json_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_one_json_object_per_line_with_extra_fields() -> None:
    out = io.StringIO()
    setup_json_logging("info", out)
    log = logging.getLogger("streamseg.test")
    log.info("source %s is %s", "cam", "streaming", extra={"stream": "cam", "fps": 12.5})
    log.debug("not shown at info")
    try:
        raise ValueError("bad\nframe")
    except ValueError:
        log.exception("decode failed", extra={"path": Path("/v/x.mp4")})
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"time", "level", "logger", "message", "stream", "fps"}
    assert first["time"].endswith("+00:00")
    assert (first["level"], first["logger"], first["message"]) == (
        "info",
        "streamseg.test",
        "source cam is streaming",
    )
    assert (first["stream"], first["fps"]) == ("cam", 12.5)
    assert second["level"] == "error" and second["path"] == "/v/x.mp4"
    assert "ValueError: bad\nframe" in second["exception"]


def test_run_log_format_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        "sources: [{id: cam, type: file, path: /nonexistent.mp4}]\n"
        f"model: {{weights: '{tmp_path / 'missing.torchscript'}', device: cpu}}\n"
    )
    argv = ["run", str(pipeline), "--no-progress", "--log-format", "json", "--shard", "0/1"]
    assert main(argv) == 1  # the model file is missing; the shard line was logged before
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line[:1] == "{"]
    shard_lines = [r for r in records if r["logger"] == "streamseg.runtime.shard"]
    assert [r["message"] for r in shard_lines] == ["shard 0/1: 1 of 1 sources (cam)"]
    assert shard_lines[0]["level"] == "info"

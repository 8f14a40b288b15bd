"""JSON log lines (``streamseg run --log-format json``)."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
    records = _json_lines(capsys.readouterr().err)
    shard_lines = [r for r in records if r["logger"] == "streamseg.runtime.shard"]
    assert [r["message"] for r in shard_lines] == ["shard 0/1: 1 of 1 sources (cam)"]
    assert shard_lines[0]["level"] == "info"
    # Regression: the fatal error was Rich text among the JSON lines, wrapped at 80 columns.
    fatal = [r for r in records if r.get("fatal")]
    assert len(fatal) == 1 and fatal[0]["level"] == "error"
    assert "missing.torchscript" in fatal[0]["message"]


def _json_lines(err: str) -> list[dict[str, Any]]:
    """Every line of ``err`` as JSON; fails on the first line that is not."""
    records = []
    for line in err.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"a stderr line that is not JSON: {line!r}")
    return records


def test_a_config_error_is_one_json_record_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("sources:\n  - {id: cam, type: file, path: a.mp4}\nmodel: [oops\n")
    assert main(["run", str(pipeline), "--log-format", "json"]) == 1
    records = _json_lines(capsys.readouterr().err)
    assert len(records) == 1 and records[0]["fatal"] is True
    assert "p.yaml:" in records[0]["message"] and "line" in records[0]["message"]


def test_a_json_run_ends_with_its_figures_as_data(
    fake_model: Path,
    h264_file: Callable[..., Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clip = h264_file("in.mp4", frames=8, fps=10)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        f"sources: [{{id: cam, type: file, path: '{clip.path}'}}]\n"
        f"model: {{weights: '{fake_model}', device: cpu}}\n"
    )
    # The progress bar is on by default; JSON mode keeps it off stderr, and the end table
    # (text) off stdout: a log collector reads both as one stream.
    assert main(["run", str(pipeline), "--log-format", "json"]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    records = _json_lines(err)
    ended = [r for r in records if r["message"].startswith("run ended")]
    assert len(ended) == 1, [r["message"] for r in records]
    assert ended[0]["frames"] == 8
    cam = ended[0]["streams"]["cam"]
    assert (cam["state"], cam["frames"], cam["frames_dropped"]) == ("ended", 8, {"source": 0})


def test_a_sigterm_during_the_imports_stops_the_run_cleanly(
    fake_model: Path,
    h264_file: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Regression: the stop handlers came after the imports (torch: seconds), so a SIGTERM in
    the first seconds killed the process without a word (rc -15). The signal is simulated:
    the first handlers installed see it at once."""
    import streamseg.cli as cli

    installed: list[threading.Event] = []
    real = cli._install_stop_handlers

    def install(stop: threading.Event) -> None:
        real(stop)
        installed.append(stop)
        if len(installed) == 1:
            stop.set()  # the SIGTERM, while the imports run

    monkeypatch.setattr(cli, "_install_stop_handlers", install)
    clip = h264_file("in.mp4", frames=8, fps=10)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        f"sources: [{{id: cam, type: file, path: '{clip.path}'}}]\n"
        f"model: {{weights: '{fake_model}', device: cpu}}\n"
        f"outputs: {{jsonl: {{path: '{tmp_path / 'det.jsonl'}'}}}}\n"
    )
    assert main(["run", str(pipeline), "--log-format", "json"]) == 0
    assert len(installed) == 2  # before the imports, then the pipeline's own
    assert not (tmp_path / "det.jsonl").exists()  # nothing started
    messages = [r["message"] for r in _json_lines(capsys.readouterr().err)]
    assert any(m.startswith("stopped while starting: start_model") for m in messages), messages

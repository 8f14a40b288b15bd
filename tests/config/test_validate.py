"""``validate_files``: the CLI-facing check, with exit codes and no tracebacks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamseg.config import load_pipeline_text
from streamseg.config.validate import unusable_outputs, validate_files

GOOD = "sources:\n  - id: gate\n    type: file\n    path: a.mp4\n"


def test_all_valid_returns_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.mp4").write_bytes(b"")  # the video the files name is there
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(GOOD)
    b.write_text(GOOD.replace("gate", "crane"))
    assert validate_files([str(a), str(b)]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines() == [f"OK {a}", f"OK {b}"]
    assert out.err == ""


def test_any_invalid_returns_one_and_reports_each_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad, syntax = tmp_path / "good.yaml", tmp_path / "bad.yaml", tmp_path / "syntax.yaml"
    good.write_text(GOOD)
    bad.write_text(GOOD + "    fps: 0\nmetrics:\n  port: 0\n")
    syntax.write_text("sources:\n\t- id: a\n")
    missing = tmp_path / "missing.yaml"
    code = validate_files([str(bad), str(good), str(missing), str(syntax), str(tmp_path)])
    assert code == 1
    out = capsys.readouterr()
    assert out.out.splitlines() == [f"OK {good}"]
    err = out.err
    assert "Traceback" not in err
    assert f"{bad}:5:10: sources[0].fps: got 0, expected a number > 0" in err
    assert f"{bad}:7:9: metrics.port: got 0, expected a number >= 1" in err
    assert f"FAILED {bad}: 2 errors" in err
    assert f"{missing}: file not found" in err
    assert f"{syntax}:2:1: YAML syntax error" in err
    assert f"{tmp_path}: is a directory" in err


def test_no_files_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert validate_files([]) == 1
    assert "no pipeline file" in capsys.readouterr().err


def test_files_a_valid_pipeline_names_but_that_are_missing_are_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A video or model file that is not there passed in silence, then failed the run."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here.mp4").write_bytes(b"")
    path = tmp_path / "p.yaml"
    path.write_text(
        "sources:\n"
        "  - {id: a, type: file, path: here.mp4}\n"
        "  - {id: b, type: file, path: videos/gone.mp4}\n"
        "  - {id: c, type: file, path: 'rtmp://host/live'}\n"
        "model: {weights: models/yolo11n-seg.onnx}\n"
    )
    assert validate_files([str(path)]) == 0  # still valid: the files may come before the run
    out, err = capsys.readouterr()
    assert out == f"OK {path}\n"
    assert err.splitlines() == [
        f"warning: {path}: sources[1].path: 'videos/gone.mp4' does not exist here; a run from "
        "this folder could not open it",
        f"warning: {path}: model.weights: 'models/yolo11n-seg.onnx' does not exist here; a run "
        "from this folder could not load it",
    ]


def test_a_missing_camera_device_and_tls_files_are_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A USB camera that is not plugged in (or not passed into the container) and MQTT TLS
    files that are not there passed validate in silence, then failed the run."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ca.pem").write_text("")
    path = tmp_path / "p.yaml"
    path.write_text(
        "sources:\n"
        "  - {id: a, type: usb, device: 97}\n"
        "  - {id: b, type: usb, device: /dev/null}\n"
        "outputs:\n"
        "  mqtt:\n"
        "    host: broker.example\n"
        "    tls: {enabled: true, ca_certs: ca.pem, certfile: certs/client.pem}\n"
    )
    assert validate_files([str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"OK {path}\n"
    assert err.splitlines() == [
        f"warning: {path}: sources[0].device: '/dev/video97' does not exist here; a run on this "
        "machine would find no camera (in a container, pass the device through)",
        f"warning: {path}: outputs.mqtt.tls.certfile: 'certs/client.pem' does not exist here; "
        "a run from this folder could not connect to the broker",
    ]


def test_outputs_a_run_could_not_write_are_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An output path naming a folder passed validate, then the run failed on its first open
    with a bare "[Errno 21] Is a directory: 'out'" that named no key."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here.mp4").write_bytes(b"")
    (tmp_path / "out").mkdir()
    (tmp_path / "notes").write_text("")
    path = tmp_path / "p.yaml"
    path.write_text(
        "sources:\n"
        "  - {id: a, type: file, path: here.mp4}\n"
        "outputs:\n"
        "  jsonl: {path: out}\n"
        "  events: {path: notes/events.jsonl}\n"
        "  mots: {dir: notes}\n"
        "  video: {path: 'new/{stream}.mp4'}\n"
        "  record:\n"
        "    snapshots: {dir: out/snapshots}\n"
        "    clips: {dir: notes/clips/deeper, enabled: true}\n"
        "    continuous: {dir: notes, enabled: false}\n"
    )
    assert validate_files([str(path)]) == 0  # valid: the run may be on another machine
    out, err = capsys.readouterr()
    assert out == f"OK {path}\n"
    notes = str(tmp_path / "notes")
    assert err.splitlines() == [
        f"warning: {path}: outputs.jsonl.path: 'out' is a folder; expected the path of a file "
        "to write",
        f"warning: {path}: outputs.events.path: 'notes/events.jsonl' lies under {notes!r}, "
        "which is a file, not a folder",
        f"warning: {path}: outputs.mots.dir: 'notes' is a file; expected a folder",
        f"warning: {path}: outputs.record.clips.dir: 'notes/clips/deeper' lies under "
        f"{notes!r}, which is a file, not a folder",
    ]  # the video's new folder, the snapshots under out/ and the disabled section are fine


def test_an_output_folder_this_user_may_not_write_in_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Permissions as a non-root user meets them (the tests run as root, who may write
    anywhere, so ``os.access`` answers as it would for a user without write permission)."""
    monkeypatch.chdir(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "old.jsonl").write_text("")
    real_access = os.access

    def access(path: str, mode: int) -> bool:
        inside = os.path.abspath(path) == str(locked) or os.path.dirname(
            os.path.abspath(path)
        ) == str(locked)
        return False if inside and mode & os.W_OK else real_access(path, mode)

    monkeypatch.setattr(os, "access", access)
    config = load_pipeline_text(
        "sources: [{id: a, type: file, path: a.mp4}]\n"
        "outputs:\n"
        "  jsonl: {path: locked/old.jsonl}\n"
        "  events: {path: locked/sub/events.jsonl}\n"
        "  mots: {dir: locked}\n"
        "  video: {path: 'fine/{stream}.mp4'}\n"
    )
    assert unusable_outputs(config) == [
        "outputs.jsonl.path: 'locked/old.jsonl' is a file this user may not write",
        f"outputs.events.path: 'locked/sub/events.jsonl' cannot be created: this user may "
        f"not write in {str(locked)!r}",
        "outputs.mots.dir: 'locked' is a folder this user may not write in",
    ]

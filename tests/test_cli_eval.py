"""``streamseg eval tracking``: the table, the JSON file and one-line errors with exit code 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamseg.cli import main
from streamseg.synth import render_scene_video


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What ``streamseg synth pitch --out DIR`` writes (ground truth of one sequence)."""
    out = tmp_path_factory.mktemp("synth") / "pitch"
    render_scene_video("pitch", 2, out, 12, (192, 108), write_images=False)
    return out


def test_scores_a_sequence_and_writes_json(
    synth_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "scores.json"
    argv = ["eval", "tracking", "--gt", str(synth_dir), "--pred", str(synth_dir)]
    assert main([*argv, "--classes", "all", "person", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    for column in ("HOTA", "DetA", "AssA", "IDF1", "MOTSA", "sMOTSA", "IDSW"):
        assert column in out
    assert "class all" in out and "class person" in out and "combined" in out
    assert "100.0" in out
    data = json.loads(report.read_text())
    assert data["combined"]["all"]["hota"] == pytest.approx(1.0)
    assert data["sequences"]["person"]["pitch"]["idsw"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gt", "{tmp}/missing", "--pred", "{synth}"], "no such directory"),
        (["--gt", "{tmp}", "--pred", "{synth}"], "no ground truth found"),
        (["--gt", "{synth}", "--pred", "{tmp}/missing"], "no such file or directory"),
        (["--gt", "{synth}", "--pred", "{synth}", "--classes", "dog"], "classes: expected"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    synth_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    argv = [a.format(tmp=tmp_path, synth=synth_dir) for a in args]
    assert main(["eval", "tracking", *argv]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in captured.err


def test_mismatched_sequences_exit_1(
    synth_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("a", "b"):
        (tmp_path / "gt" / name / "gt").mkdir(parents=True)
        text = (synth_dir / "gt" / "gt.txt").read_text()
        (tmp_path / "gt" / name / "gt" / "gt.txt").write_text(text)
        (tmp_path / "pred").mkdir(exist_ok=True)
        (tmp_path / "pred" / f"{name}x.txt").write_text(text)
    argv = ["eval", "tracking", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred")]
    assert main(argv) == 1
    assert "mismatched sequences: no prediction for a, b" in capsys.readouterr().err


def test_missing_option_is_a_usage_error(synth_dir: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["eval", "tracking", "--gt", str(synth_dir)])
    assert info.value.code == 2


def test_a_pairing_that_looks_wrong_is_warned_about(
    synth_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One sequence on each side always pairs, whatever their names: a run of another video,
    or one stopped early, was scored without a word."""
    gt_lines = (synth_dir / "gt" / "gt.txt").read_text().splitlines()
    short = tmp_path / "cam.txt"  # another name, and only the first 4 of 12 frames
    short.write_text("\n".join(line for line in gt_lines if int(line.split()[0]) <= 4) + "\n")
    assert main(["eval", "tracking", "--gt", str(synth_dir), "--pred", str(short)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "scoring predictions 'cam' against ground truth 'pitch'" in err, err
    assert "the predictions end at frame 4, the ground truth at 12" in err, err

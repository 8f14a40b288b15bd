"""Zone and calibration previews (``streamseg preview``): line sides, the ground grid, drawing,
and the command on a real H.264 file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.corrupt_video import write_h264_mp4

from streamseg.cli import main
from streamseg.config import load_pipeline_text
from streamseg.config.zones import CalibrationConfig
from streamseg.outputs.preview import (
    GRID_BGR,
    MARK_BGR,
    capture_frame,
    draw_preview,
    grid_step,
    ground_grid,
    side_label_points,
)
from streamseg.rules.geometry import GroundPlane, Segment

WIDTH, HEIGHT = 320, 192
CALIBRATION = CalibrationConfig(
    image_points=[[100, 180], [220, 180], [200, 110], [120, 110]],
    ground_points=[[-3, 0], [3, 0], [3, 8], [-3, 8]],
)
ZONES = """\
zones:
  - {id: pen, type: polygon, points: [[20, 20], [120, 20], [120, 90], [20, 90]]}
  - {id: gate, type: line, points: [[250, 10], [250, 180]]}
rules:
  - {id: in-pen, type: inside, zone: pen}
  - {id: through-gate, type: cross, zone: gate}
"""


@pytest.mark.parametrize(
    ("a", "b"),
    [((0, 50), (100, 50)), ((100, 50), (0, 50)), ((50, 0), (50, 100)), ((10, 90), (80, 5))],
)
def test_side_labels_sit_on_the_sides_the_cross_rule_calls_left_and_right(
    a: tuple[float, float], b: tuple[float, float]
) -> None:
    left, right = side_label_points(a, b, offset=10)
    segment = Segment(*a, *b)
    assert segment.signed_distance(*left) == pytest.approx(-10)
    assert segment.signed_distance(*right) == pytest.approx(10)


def test_grid_step_keeps_the_grid_readable() -> None:
    assert grid_step(5) == 0.5
    assert grid_step(30) == 2.0
    assert grid_step(1000) == 100.0


def test_ground_grid_lines_lie_on_whole_multiples_of_the_step_on_the_ground() -> None:
    step, pieces = ground_grid(CALIBRATION, (WIDTH, HEIGHT))
    assert step == 2.0  # marks span 8 m; the grid three times that
    assert len(pieces) >= 10
    plane = GroundPlane(CALIBRATION)
    for piece in pieces:
        ground = plane.to_ground(piece, (WIDTH, HEIGHT))
        assert len(ground) == len(piece)  # every kept point is in front of the camera
        # One coordinate is constant along a grid line, and a multiple of the step.
        spread = ground.max(0) - ground.min(0)
        axis = int(np.argmin(spread))
        assert spread[axis] < 1e-6
        value = ground[0, axis] / step
        assert value == pytest.approx(round(value), abs=1e-6)


def _scene() -> np.ndarray:
    return np.full((HEIGHT, WIDTH, 3), 90, dtype=np.uint8)


def _zones() -> object:
    return load_pipeline_text("sources:\n  - {id: cam, type: file, path: x.mp4}\n" + ZONES).zones


def test_preview_draws_zones_and_the_calibration_only_when_there_is_one() -> None:
    zones = _zones()
    plain = draw_preview(_scene(), "cam", zones, None)  # type: ignore[arg-type]
    calibrated = draw_preview(_scene(), "cam", zones, CALIBRATION)  # type: ignore[arg-type]
    # The polygon is filled (its inside changed), the line drawn.
    assert not np.array_equal(plain[50, 70], _scene()[50, 70])
    assert not np.array_equal(plain[100, 250], _scene()[100, 250])
    grid = np.all(calibrated == GRID_BGR, axis=-1)
    assert not np.all(plain == GRID_BGR, axis=-1).any()
    assert grid.sum() > 200
    # A calibration mark is drawn at each image point.
    for x, y in CALIBRATION.image_points:
        assert tuple(calibrated[int(y), int(x)]) == MARK_BGR


def test_preview_of_another_stream_draws_none_of_this_streams_zones() -> None:
    zones = load_pipeline_text(
        "sources:\n  - {id: a, type: file, path: a.mp4}\n  - {id: b, type: file, path: b.mp4}\n"
        "zones:\n  - {id: pen, type: polygon, streams: [a], "
        "points: [[20, 20], [120, 20], [120, 90], [20, 90]]}\n"
        "rules:\n  - {id: r, type: inside, zone: pen}\n"
    ).zones
    drawn = draw_preview(_scene(), "b", zones, None)
    assert np.array_equal(drawn[50, 70], _scene()[50, 70])


def _pipeline(tmp_path: Path, sources: str) -> Path:
    """A pipeline file with :data:`ZONES` whose ``sources`` section is ``sources``, formatted
    with ``{video}``: a real 10-frame H.264 file."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(10)]
    video = tmp_path / "cam.mp4"
    write_h264_mp4(images, video, fps=10, gop=5)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("sources:\n" + sources.format(video=video, tmp=tmp_path) + ZONES)
    return pipeline


def test_preview_command_writes_one_png_per_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = _pipeline(
        tmp_path,
        "  - id: cam\n    type: file\n    path: {video}\n"
        "    calibration: {{image_points: [[100, 180], [220, 180], [200, 110], [120, 110]], "
        "ground_points: [[-3, 0], [3, 0], [3, 8], [-3, 8]]}}\n",
    )
    out = tmp_path / "preview"
    assert main(["preview", str(pipeline), "--out", str(out)]) == 0
    written = cv2.imread(str(out / "cam.png"))
    assert written is not None and written.shape == (HEIGHT, WIDTH, 3)
    assert np.all(written == GRID_BGR, axis=-1).sum() > 200
    assert f"wrote {out / 'cam.png'}" in capsys.readouterr().out


def test_preview_command_names_a_source_that_gives_no_frame_and_an_unknown_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = _pipeline(
        tmp_path,
        "  - {{id: cam, type: file, path: {video}}}\n"
        "  - {{id: gone, type: file, path: {tmp}/missing.mp4}}\n",
    )
    out = tmp_path / "preview"
    assert main(["preview", str(pipeline), "--out", str(out), "--timeout", "5"]) == 1
    err = capsys.readouterr().err
    assert "source 'gone': delivered no frame before it ended (state failed" in " ".join(
        err.split()
    )
    assert (out / "cam.png").is_file() and not (out / "gone.png").exists()
    assert main(["preview", str(pipeline), "--source", "nope"]) == 1
    assert "--source nope: not in" in " ".join(capsys.readouterr().err.split())


def test_preview_at_picks_a_later_frame_of_a_file(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, "  - {{id: cam, type: file, path: {video}}}\n")
    config = load_pipeline_text(pipeline.read_text())
    source = config.source("cam")
    first = capture_frame(source, 5.0)
    later = capture_frame(source, 5.0, at_s=0.5)  # 10 fps: the sixth frame
    assert (first.index, later.index) == (0, 5)
    assert later.pts_s - first.pts_s == pytest.approx(0.5)
    # The file lasts 1 s (10 frames at 10 fps): the error says how far it goes.
    with pytest.raises(
        TimeoutError,
        match=r"reached no frame 5 s after its first before it ended \(its last frame is 0\.90 s "
        r"after its first\)",
    ):
        capture_frame(source, 5.0, at_s=5.0)

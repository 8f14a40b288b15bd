"""``streamseg demo``: render a synthetic yard scene and run the demo pipeline on it, offline."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from rich.console import Console

from streamseg.config import ConfigError, FileSourceConfig, PipelineConfig, load_pipeline
from streamseg.config.validate import output_locations
from streamseg.models import ModelLoadError
from streamseg.models.names import model_class_names
from streamseg.runtime.pipeline import Pipeline
from streamseg.runtime.progress import file_progress
from streamseg.runtime.report import print_summary
from streamseg.synth import render_scene_video

logger = logging.getLogger(__name__)

DEMO_SEED = 2
DEMO_DIFFICULTY = "occlusion"
DEMO_FRAMES = 150
DEMO_RESOLUTION_WH = (640, 360)
DEMO_FPS = 15.0
"""The scene the demo renders: 10 s of a construction yard at 15 fps, the scene whose machines
the swing zones of ``pipelines/demo.yaml`` and ``pipelines/machinery_zone.yaml`` surround."""


DEMO_PIPELINE = Path("pipelines", "demo.yaml")
IMAGE_PIPELINES = Path("/opt/streamseg/pipelines")
"""Where the container images (``deploy/Dockerfile.*``) put the example pipelines."""


def demo_pipeline_candidates() -> list[Path]:
    """Where ``streamseg demo`` looks for its pipeline, in order: ``pipelines/demo.yaml`` under
    the current folder, in the checkout this package runs from (an editable install run from
    anywhere), and in a container image's copy."""
    checkout = Path(__file__).resolve().parents[2]
    return [DEMO_PIPELINE, checkout / DEMO_PIPELINE, IMAGE_PIPELINES / DEMO_PIPELINE.name]


def demo_main(
    console: Console, pipeline_path: str | None = None, report: Console | None = None
) -> int:
    """Render (or reuse) the demo scene, run the demo pipeline, say where the outputs went.

    Args:
        console: where progress and errors go (the CLI's is standard error).
        pipeline_path: the demo pipeline; None takes the first of
            :func:`demo_pipeline_candidates` that exists. Its relative paths (the scene, the
            outputs under ``out/demo``) are taken from the current folder.
        report: where the run's summary and the outputs' paths go (None: standard output).

    Returns:
        The process exit code.
    """
    if pipeline_path is not None:
        path = Path(pipeline_path)
        if not path.exists():
            console.print(f"[red]error:[/red] {path} not found")
            return 1
    else:
        candidates = demo_pipeline_candidates()
        found = next((p for p in candidates if p.exists()), None)
        if found is None:
            looked = ", ".join(str(p) for p in candidates)
            console.print(
                f"[red]error:[/red] no demo pipeline (looked in {looked}); pass --pipeline FILE"
            )
            return 1
        path = found
    try:
        config = load_pipeline(path, class_names_of=model_class_names)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        return 1
    source = config.sources[0]
    if not isinstance(source, FileSourceConfig):
        console.print(f"[red]error:[/red] {path}: the demo needs a file source first")
        return 1
    video = Path(source.path)
    if video.exists():
        console.print(f"reusing the rendered scene {video}")
    else:
        start = time.perf_counter()
        console.print(f"rendering a synthetic yard scene into {video.parent} ...")
        paths = render_scene_video(
            "yard",
            DEMO_SEED,
            video.parent,
            DEMO_FRAMES,
            DEMO_RESOLUTION_WH,
            fps=DEMO_FPS,
            difficulty=DEMO_DIFFICULTY,
            write_images=False,
        )
        if paths["video"] != video:
            paths["video"].replace(video)
        console.print(f"rendered in {time.perf_counter() - start:.1f} s")

    # A run's events log is append-only (nothing accepted is ever lost) and its recording
    # folders keep every file until retention; the demo's are a showcase of one run, so the
    # last demo's go first.
    # Folders only for the built-in demo pipeline: another file's may be a site's recordings.
    earlier = _demo_outputs(config, folders=pipeline_path is None)
    for output in earlier:
        if output.is_dir():
            shutil.rmtree(output)
        else:
            output.unlink()
    if earlier:
        console.print(f"replacing the last demo's {', '.join(str(p) for p in earlier)}")
    pipeline = Pipeline(config)
    try:
        with file_progress(pipeline, console):
            summary = pipeline.run()
    except ModelLoadError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        return 1
    out = report if report is not None else Console()
    print_summary(summary, out)
    for folder in _recording_folders(config):
        if folder.is_dir():
            files = sum(1 for p in folder.rglob("*") if p.is_file())
            out.print(f"wrote {folder}/ ({files} file{'s' if files != 1 else ''})")
    out.print(f"scene with its ground truth (MOTS, COCO): {video.parent}")
    return 0


def _recording_folders(config: PipelineConfig) -> list[Path]:
    """The folders of the pipeline's recordings, clips and snapshots that are on."""
    return [
        Path(location)
        for key, location, _ in output_locations(config)
        if key.startswith("outputs.record.")
    ]


def _demo_outputs(config: PipelineConfig, folders: bool) -> list[Path]:
    """What an earlier demo left that this one replaces (those that exist): its events log,
    and with ``folders`` its recording, clip and snapshot folders."""
    found = [Path(config.outputs.events.path)] if config.outputs.events is not None else []
    if folders:
        found += _recording_folders(config)
    return [path for path in found if path.exists()]

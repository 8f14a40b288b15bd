"""Progress display for runs over files (fps and ETA per stream)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import av
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from streamseg.config import FileSourceConfig
from streamseg.runtime.pipeline import Pipeline

logger = logging.getLogger(__name__)


def estimate_total_frames(path: str) -> int | None:
    """Frames in a video file: the container's count, else duration x rate; None if unknown."""
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            rate = stream.average_rate or stream.guessed_rate
            if stream.duration is not None and stream.time_base is not None and rate:
                return round(float(stream.duration * stream.time_base) * float(rate))
            if container.duration is not None and rate:
                return round(container.duration / 1_000_000 * float(rate))
    except (av.error.FFmpegError, IndexError, OSError) as exc:
        logger.debug("cannot estimate frames of %s: %s", path, exc)
    return None


class _FpsColumn(TextColumn):
    def __init__(self) -> None:
        super().__init__("{task.fields[fps]}")


@contextmanager
def file_progress(pipeline: Pipeline, console: Console, refresh_s: float = 0.25) -> Iterator[None]:
    """Show a bar per non-realtime file source while the block runs."""
    files = [
        s for s in pipeline.config.sources if isinstance(s, FileSourceConfig) and not s.realtime
    ]
    if not files:
        yield
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _FpsColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    tasks = {
        s.id: progress.add_task(s.id, total=estimate_total_frames(s.path), fps="") for s in files
    }
    done = threading.Event()

    def refresh() -> None:
        while not done.wait(refresh_s):
            update()

    def update() -> None:
        for stream_id, task in tasks.items():
            frames = pipeline.progress[stream_id].frames
            elapsed = progress.tasks[task].elapsed or 0.0
            fps = f"{frames / elapsed:5.1f} fps" if elapsed > 0 else ""
            progress.update(task, completed=frames, fps=fps)

    thread = threading.Thread(target=refresh, name="progress", daemon=True)
    with progress:
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            update()

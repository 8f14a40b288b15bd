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
from streamseg.sources.timing import FpsCap

logger = logging.getLogger(__name__)


def estimate_total_frames(path: str, fps_cap: float | None = None) -> int | None:
    """Frames of a video file the pipeline will analyse; None if unknown.

    The file's frames are the container's count, else duration x rate. With ``fps_cap`` (the
    source's ``fps``), the count is of the frames the cap admits, the cap being run over the
    file's nominal timestamps, so a file read at 5 of its 15 fps shows a bar that fills.
    """
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            frames: int | None = None
            if stream.frames:
                frames = int(stream.frames)
            elif stream.duration is not None and stream.time_base is not None and rate:
                frames = round(float(stream.duration * stream.time_base) * float(rate))
            elif container.duration is not None and rate:
                frames = round(container.duration / 1_000_000 * float(rate))
    except (av.error.FFmpegError, IndexError, OSError) as exc:
        logger.debug("cannot estimate frames of %s: %s", path, exc)
        return None
    if not frames or fps_cap is None or not rate:
        return frames
    # Nominal timestamps are evenly spaced, so the cap admits every stride-th frame: find the
    # stride with the cap itself (not frame by frame over a long file).
    cap, interval = FpsCap(fps_cap), 1.0 / float(rate)
    cap.admit(0.0)
    stride = next((i for i in range(1, frames) if cap.admit(i * interval)), frames)
    return -(-frames // stride)


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
        s.id: progress.add_task(s.id, total=estimate_total_frames(s.path, s.fps), fps="")
        for s in files
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

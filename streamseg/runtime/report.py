"""The end-of-run summary printed by ``streamseg run``."""

from __future__ import annotations

import logging
import os

from rich import box
from rich.console import Console
from rich.table import Table

from streamseg.runtime.pipeline import DOWN_STATES, RunSummary
from streamseg.sources.base import SourceStats
from streamseg.types import SourceState

logger = logging.getLogger(__name__)


def analysed_nothing(summary: RunSummary) -> bool:
    """Whether every source failed, or was stopped while down without ever delivering a frame
    (a camera that never answered, a 404): ``streamseg run`` then exits 2, not 0."""
    sources = list(summary.sources.values())
    return bool(sources) and all(
        s.state is SourceState.FAILED or (s.frames_decoded == 0 and _down_at_stop(s))
        for s in sources
    )


def _down_at_stop(stats: SourceStats) -> SourceState | None:
    """The down state (:data:`DOWN_STATES`, not ``failed``) a source was stopped in:
    ``stopped_in``, or the state itself when its reader was still blocked (a camera open that
    had not returned); else None. The end table names it: ``ended`` hides that it was down."""
    for state in (stats.stopped_in, stats.state):
        if state is not None and state in DOWN_STATES and not state.terminal:
            return state
    return None


def print_summary(summary: RunSummary, console: Console) -> None:
    """Print per-stream figures, stage timings and where the outputs went.

    The table holds only short figures, so it fits 80 columns (a pipe or a journal gets 80);
    each stream's last error goes on a line of its own under it, whole.
    """
    streams = Table(
        title=f"run: {summary.total_frames} frames in {summary.wall_s:.1f} s "
        f"({summary.fps:.1f} fps)",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    # Headers never shrink into "detect…": a long stream id folds onto two lines instead.
    streams.add_column("stream", overflow="fold")
    streams.add_column("state", min_width=len("reconnecting"))
    for column in ("frames", "detections", "dropped", "corrupt", "reconnects"):
        streams.add_column(column, justify="right", min_width=len(column))
    for stream_id, frames in summary.frames.items():
        stats = summary.sources.get(stream_id)
        streams.add_row(
            stream_id,
            stats.state.value if stats else "-",
            str(frames),
            str(summary.detections.get(stream_id, 0)),
            str(stats.frames_dropped) if stats else "-",
            str(stats.corrupt_packets + stats.decode_errors) if stats else "-",
            str(stats.reconnects) if stats else "-",
        )
    console.print(streams)
    for stream_id, stats in summary.sources.items():
        notes = []
        down = _down_at_stop(stats)
        if down is not None:
            never = ", having never delivered a frame" if stats.frames_decoded == 0 else ""
            notes.append(f"stopped while {down.value}{never}")
        if stats.last_error:
            since = stats.frames_since_error
            after = f" ({since} frames decoded after it)" if since else ""
            notes.append(f"last error{after}: {stats.last_error}")
        if notes:
            console.print(f"{stream_id}: " + "; ".join(notes), soft_wrap=True, highlight=False)
    for stream_id, stats in summary.sources.items():
        if stats.frames_missing:
            console.print(
                f"{stream_id}: {stats.frames_missing} frames missing by the timestamps "
                "(lost in transit or damaged; a variable frame rate counts too)"
            )
        if stats.frames_skipped_fps:
            # Left out by design, so in no other column (not among the dropped).
            console.print(
                f"{stream_id}: {stats.frames_skipped_fps} of {stats.frames_decoded} decoded "
                "frames skipped by the source's fps cap"
            )
    for stream_id, by_stage in summary.frames_dropped.items():
        where = ", ".join(f"{count} by {stage}" for stage, count in by_stage.items())
        console.print(
            f"[yellow]{stream_id}: frames dropped after the source: {where}[/yellow] "
            "(a stage or encoder fell behind, see the stage timings; or the recording "
            "could not be written)"
        )
    if summary.timings:
        stages = Table(title="stage timings (ms)")
        for column in ("stage", "count", "mean", "p50", "p95", "max"):
            stages.add_column(column, justify="right" if column != "stage" else "left")
        for t in summary.timings:
            stages.add_row(
                t.stage,
                str(t.count),
                f"{t.mean_ms:.1f}",
                f"{t.p50_ms:.1f}",
                f"{t.p95_ms:.1f}",
                f"{t.max_ms:.1f}",
            )
        console.print(stages)
    for path in summary.outputs:
        if not os.path.exists(path):  # e.g. the video of a stream that delivered no frame
            console.print(f"[yellow]not written[/yellow] {path} (nothing reached it)")
        elif summary.started_wall is not None and os.path.getmtime(path) < summary.started_wall:
            console.print(
                f"[yellow]not written[/yellow] {path} (nothing reached it; the file there is "
                "from an earlier run)"
            )
        else:
            console.print(f"[bold green]wrote[/bold green] {path}")


def log_summary(summary: RunSummary) -> None:
    """Log the run's figures as one INFO record whose extra fields carry them
    (``--log-format json``: a log collector gets the end table as data)."""
    streams = {
        stream_id: {
            "state": stats.state.value,
            "frames": summary.frames.get(stream_id, 0),
            "detections": summary.detections.get(stream_id, 0),
            "frames_dropped": {
                "source": stats.frames_dropped,
                **summary.frames_dropped.get(stream_id, {}),
            },
            "frames_missing": stats.frames_missing,
            "corrupt": stats.corrupt_packets + stats.decode_errors,
            "reconnects": stats.reconnects,
            "last_error": stats.last_error,
            "frames_since_error": stats.frames_since_error,
            "stopped_in": stats.stopped_in.value if stats.stopped_in is not None else None,
        }
        for stream_id, stats in summary.sources.items()
    }
    logger.info(
        "run ended: %d frames in %.1f s (%.1f fps)",
        summary.total_frames,
        summary.wall_s,
        summary.fps,
        extra={
            "frames": summary.total_frames,
            "wall_s": round(summary.wall_s, 3),
            "fps": round(summary.fps, 2),
            "streams": streams,
            "outputs": summary.outputs,
        },
    )

"""``streamseg outbox``: what waits in a pipeline's MQTT outbox, and quarantined events put back.

The target is a pipeline file (its ``outputs.mqtt.outbox.path``, else the default
``out/<name>.outbox.sqlite3`` and any ``out/<name>.shard<i>.outbox.sqlite3`` of a sharded run,
relative to the folder the command runs in, as for ``streamseg run``) or an outbox file.
Reading takes nothing from a running pipeline (:func:`~streamseg.outputs.mqtt.admin.read_outbox`);
``--requeue`` needs the pipeline stopped.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from streamseg.config.errors import ConfigError
from streamseg.outputs.mqtt.admin import OutboxReport, read_outbox, requeue_quarantined
from streamseg.outputs.mqtt.build import default_outbox_path
from streamseg.outputs.mqtt.outbox import OutboxError

logger = logging.getLogger(__name__)

PIPELINE_SUFFIXES = (".yaml", ".yml")
DEFAULT_MAX_EVENTS = 100_000
"""The outbox bound ``--requeue`` keeps to when the target is an outbox file (the default of
``outputs.mqtt.outbox.max_events``)."""


def outbox_main(args: argparse.Namespace, console: Console) -> int:
    """Run ``streamseg outbox``; returns the exit status (1: an error, printed)."""
    try:
        paths, bound = outbox_paths(Path(args.target))
    except (OutboxError, ConfigError, ValueError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        return 1
    if args.max_events is not None:
        bound = args.max_events
    failed = False
    if args.requeue:
        for path in paths:  # every outbox is tried: one held by a running shard stops only it
            try:
                moved = requeue_quarantined(path, bound)
            except OutboxError as exc:
                console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
                failed = True
                continue
            print(
                f"{path}: {moved} quarantined event(s) put back"
                if moved
                else f"{path}: none to put back"
            )
    reports: list[OutboxReport] = []
    for path in paths:
        try:
            reports.append(read_outbox(path, args.limit))
        except OutboxError as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
            failed = True
    if len(paths) > 1:  # a sharded run has no outbox of the unsharded name: not worth a line
        reports = [report for report in reports if report.exists or report.path != paths[0]]
    # Plain output: rich's JSON and markup rendering took a minute for 100,000 events.
    if args.json:
        print(json.dumps([report.to_json() for report in reports], indent=2))
    else:
        now = time.time()
        print("\n".join(line for report in reports for line in describe(report, now)))
    return 1 if failed else 0


def outbox_paths(target: Path) -> tuple[list[Path], int]:
    """The outbox files of ``target`` and their bound (see the module docstring).

    Raises:
        ValueError: the pipeline has no ``outputs.mqtt`` section.
        ConfigError: the pipeline file does not validate (a ``ValueError``).
    """
    if target.suffix.lower() not in PIPELINE_SUFFIXES:
        return [target], DEFAULT_MAX_EVENTS
    from streamseg.config import load_pipeline

    config = load_pipeline(target)
    mqtt = config.outputs.mqtt
    if mqtt is None:
        raise ValueError(f"{target}: no outputs.mqtt section, so no outbox")
    if mqtt.outbox.path:
        return [Path(mqtt.outbox.path)], mqtt.outbox.max_events
    main = Path(default_outbox_path(config.name))
    shards = sorted(
        main.parent.glob(Path(default_outbox_path(config.name, shard="*")).name),
        key=lambda path: (len(path.name), path.name),
    )
    return [main, *shards], mqtt.outbox.max_events


def describe(report: OutboxReport, now: float) -> list[str]:
    """The report as lines of text."""
    held = "held by a running streamseg" if report.in_use else "not in use"
    if not report.exists:
        lines = [f"outbox {report.path}: no such file (nothing was ever stored, or wrong folder)"]
    elif not report.depth:
        lines = [f"outbox {report.path} ({held}): empty"]
    else:
        lines = [
            f"outbox {report.path} ({held}): {report.depth} event(s) wait, stored from "
            f"{_when(report.oldest_created_at, now)} to {_when(report.newest_created_at, now)}"
        ]
        lines += [f"  {count} on {topic}" for topic, count in report.by_topic.items()]
    for event in report.first:
        what = " ".join(
            f"{key}={value}"
            for key, value in (
                ("event", event.event_id),
                ("rule", event.rule_id),
                ("type", event.type),
                ("stream", event.stream_id),
            )
            if value is not None
        )
        lines.append(
            f"  #{event.row_id} {_when(event.created_at, now)} {event.topic} "
            f"{event.size} B {what or '(not an event)'}"
        )
    if report.open_occurrences:
        lines.append(
            f"{report.open_occurrences} occurrence(s) open (a start and no end yet)"
            + (
                ""
                if report.in_use
                else ": left by a run that died or could not store their end; the next start "
                "ends them (reason: interrupted)"
            )
        )
    quarantine = report.quarantine
    if quarantine.events or quarantine.unreadable:
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(quarantine.by_reason.items()))
        lines.append(
            f"quarantine {quarantine.path}: {len(quarantine.events)} event(s) set aside"
            + (f" ({reasons})" if reasons else "")
            + "; nothing there is sent unless put back (--requeue)"
        )
        if quarantine.unreadable:
            numbers = ", ".join(str(n) for n in quarantine.unreadable[:10])
            lines.append(f"  line(s) {numbers} are not quarantined events")
    return lines


def _when(timestamp: float | None, now: float) -> str:
    """``2026-11-25 03:01:02 UTC (5 min ago)``."""
    if timestamp is None:
        return "-"
    try:
        stamp = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    except (ValueError, OverflowError, OSError):
        return f"at UNIX time {timestamp!r}"
    ago = max(0.0, now - timestamp)
    if ago < 120:
        age = f"{ago:.0f} s ago"
    elif ago < 7200:
        age = f"{ago / 60:.0f} min ago"
    elif ago < 172800:
        age = f"{ago / 3600:.0f} h ago"
    else:
        age = f"{ago / 86400:.0f} days ago"
    return f"{stamp:%Y-%m-%d %H:%M:%S} UTC ({age})"

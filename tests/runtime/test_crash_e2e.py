"""End to end: ``streamseg run`` killed with SIGKILL while alerts are open, then run again.

The example pipeline ``pipelines/machinery_zone.yaml`` runs on a synthetic yard video paced like
a camera (``realtime``), through the real model, tracker and rules, with an event log and a
real mosquitto behind the durable outbox. It is killed (no ``finally``, no clean stop) once an
occurrence is open, then run again on the same outputs: every occurrence the dead run left open
gets one ``end`` with ``reason: interrupted``, in the event log and on the broker, before the
new run's own events. Nothing is mocked.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from helpers.machinery import PREFIX, machinery_pipeline, yard_video
from helpers.mosquitto import Mosquitto, Subscriber

from streamseg.cli import main
from streamseg.rules import event_schema

pytestmark = pytest.mark.integration


def _open_ids(lines: list[dict[str, Any]]) -> set[str]:
    """Event ids with a message and no ``end`` among ``lines``."""
    opened = {p["event_id"] for p in lines}
    return opened - {p["event_id"] for p in lines if p["type"] == "end"}


def _read_log(path: Path) -> list[dict[str, Any]]:
    """The event log's whole lines (a line the kill cut short is skipped)."""
    lines = []
    for text in path.read_text().splitlines():
        try:
            lines.append(json.loads(text))
        except ValueError:
            continue
    return lines


def test_a_killed_run_has_its_open_alerts_ended_by_the_next(
    tmp_path: Path, mosquitto: Callable[..., Mosquitto]
) -> None:
    video = yard_video(tmp_path, 150)
    broker = mosquitto()
    subscriber = Subscriber(broker.port, f"{PREFIX}/events")
    log_path = tmp_path / "events.jsonl"
    try:
        config = machinery_pipeline(tmp_path, video, broker.port, realtime=True)
        first = subprocess.Popen(
            [sys.executable, "-m", "streamseg", "run", str(config), "--no-progress"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 90
            while not (log_path.exists() and _open_ids(_read_log(log_path))):
                if first.poll() is not None:
                    pytest.fail(f"the run ended before an alert opened: {first.stderr.read()}")
                assert time.monotonic() < deadline, "no alert opened within 90 s"
                time.sleep(0.05)
            first.send_signal(signal.SIGKILL)
            assert first.wait(timeout=10) == -signal.SIGKILL
        finally:
            if first.poll() is None:
                first.kill()
                first.wait(timeout=10)
            assert first.stderr is not None
            first.stderr.close()
        before = _read_log(log_path)
        left_open = _open_ids(before)
        assert left_open

        # Again, as fast as it goes (the ends must not depend on the pacing).
        config = machinery_pipeline(tmp_path, video, broker.port, realtime=False)
        assert main(["run", str(config), "--no-progress"]) == 0

        logged = _read_log(log_path)
        validator = jsonschema.Draft202012Validator(
            event_schema(), format_checker=jsonschema.FormatChecker()
        )
        for payload in logged:
            validator.validate(payload)
        interrupted = [p for p in logged if p["details"].get("reason") == "interrupted"]
        assert {p["event_id"] for p in interrupted} == left_open
        # Right after the dead run's lines, before the new run's own, each after its own start.
        assert logged[len(before) : len(before) + len(interrupted)] == interrupted
        for end in interrupted:
            earlier = [p for p in before if p["event_id"] == end["event_id"]]
            assert end["seq"] == earlier[-1]["seq"] + 1
            assert end["ended_at"] >= earlier[0]["started_at"]
        # Every occurrence of both runs has exactly one end, its last message.
        for event_id in {p["event_id"] for p in logged}:
            types = [p["type"] for p in logged if p["event_id"] == event_id]
            assert types[0] == "start" and types.count("end") == 1 and types[-1] == "end"

        # The broker: the same ends (the outbox kept each open occurrence's latest message),
        # and every occurrence it saw start, it saw end. (A kill between the event log's write
        # and the outbox's could leave a start in the log alone: the broker never saw it.)
        def every_start_ended(s: Subscriber) -> bool:
            published = [json.loads(m) for m in s.on(f"{PREFIX}/events")]
            ended = {p["event_id"] for p in published if p["type"] == "end"}
            return {p["event_id"] for p in published if p["type"] == "start"} <= ended

        subscriber.wait_for(every_start_ended, timeout=15)
        published = [json.loads(m) for m in subscriber.on(f"{PREFIX}/events")]
        sent = {
            (p["event_id"], p["seq"])
            for p in published
            if p["type"] == "end" and p["details"].get("reason") == "interrupted"
        }
        assert sent and sent <= {(p["event_id"], p["seq"]) for p in interrupted}
    finally:
        subscriber.close()

"""The JSON Lines event log: what a run that died left in it is put right at the next open
(the whole path with a real SIGKILL is in tests/runtime/test_crash_e2e.py)."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import jsonschema
import pytest

from streamseg.outputs.events import EventLog
from streamseg.rules import Event, event_schema, new_event_id


def _message(event_id: str, type_: str, seq: int, pts: float) -> Event:
    index = int(pts * 10)
    return Event(event_id, type_, "in-pen", "inside", "pen", 500.0, 1.0, pts, index, seq=seq)


def test_a_cut_line_and_the_open_occurrences_are_put_right(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "events.jsonl"
    open_one, closed, updated = new_event_id(), new_event_id(), new_event_id()
    lines = [
        _message(open_one, "start", 0, 1.0),
        _message(closed, "start", 0, 1.0),
        _message(updated, "start", 0, 1.0),
        _message(closed, "end", 1, 2.0),
        _message(updated, "update", 1, 4.0),
    ]
    path.write_text(
        "".join(e.to_json() + "\n" for e in lines) + '{"event_id": "cut sh'  # no newline
    )
    os.utime(path, (510.0, 510.0))  # the dead run's last write
    with caplog.at_level(logging.WARNING, logger="streamseg.outputs.events"):
        log = EventLog(path)
    own = new_event_id()
    log.on_event(_message(own, "start", 0, 9.0))
    log.on_event(_message(own, "end", 1, 9.5))  # a clean stop ends what it opened
    log.close()

    text = path.read_text().splitlines()
    assert text[len(lines)] == '{"event_id": "cut sh'  # alone on its line now
    ends = [json.loads(line) for line in text[len(lines) + 1 : -2]]
    assert [(e["event_id"], e["seq"]) for e in ends] == [(open_one, 1), (updated, 2)]
    assert [e["ended_at"] for e in ends] == [510.0, 510.0]
    for end in ends:
        jsonschema.validate(end, event_schema())
        assert end["type"] == "end" and end["details"] == {"reason": "interrupted"}
    assert json.loads(text[-2])["frame_pts"] == 9.0  # the run's own events come after them
    assert log.interrupted == ends
    assert "its last line was cut short" in caplog.text
    assert "an earlier run left 2 occurrence(s) without an end" in caplog.text

    assert EventLog(path).interrupted == []  # ended once: the next open adds nothing


def test_a_second_writer_is_refused_while_the_first_holds_the_file(tmp_path: Path) -> None:
    """Its open occurrences would be taken for a dead run's and ended under it."""
    path = tmp_path / "events.jsonl"
    first = EventLog(path)
    first.on_event(_message(new_event_id(), "start", 0, 1.0))
    with pytest.raises(OSError, match=r"give each running pipeline its own outputs\.events\.path"):
        EventLog(path)
    assert len(path.read_text().splitlines()) == 1  # the refused one wrote nothing
    first.close()
    assert len(EventLog(path).interrupted) == 1  # once the first is gone


def test_an_end_is_dated_when_the_file_was_last_written(tmp_path: Path) -> None:
    """The log has no time per line. Regression: the end was dated by the latest message's
    stream time, capped by the last write; a file analysed faster than its frame rate runs its
    stream clock ahead of the wall clock (frame 8.0 s, wall 507.0 by the stream clock), one
    analysed slower behind it, and an ``inside`` occurrence sends no update for 10 s."""
    path = tmp_path / "events.jsonl"
    path.write_text(_message(new_event_id(), "update", 3, 8.0).to_json() + "\n")
    os.utime(path, (503.5, 503.5))  # the dead run's last write
    [end] = EventLog(path).interrupted
    assert (end["ended_at"], end["seq"]) == (503.5, 4)


def test_a_run_keeps_the_file_dated_while_an_occurrence_is_open(tmp_path: Path) -> None:
    """Regression: with no line written for a while (an ``inside`` occurrence updates every
    ``update_interval_s``), a run that died had its open occurrences ended at the last line,
    up to that long before the death. The run touches the file's modification time while an
    occurrence is open, and only then."""
    path = tmp_path / "events.jsonl"
    log = EventLog(path, seen_interval_s=0.05)
    event_id = new_event_id()
    log.on_event(_message(event_id, "start", 0, 1.0))
    os.utime(path, (100.0, 100.0))
    before = time.time()
    time.sleep(0.4)
    assert path.stat().st_mtime >= before  # dated "still open" since
    log.close()  # dies: its rules wrote no end
    [end] = EventLog(path).interrupted
    assert before <= end["ended_at"] <= time.time()

    quiet = tmp_path / "quiet.jsonl"
    log = EventLog(quiet, seen_interval_s=0.05)
    log.on_event(_message(event_id, "start", 0, 1.0))
    log.on_event(_message(event_id, "end", 1, 2.0))
    os.utime(quiet, (100.0, 100.0))
    time.sleep(0.3)
    assert quiet.stat().st_mtime == 100.0  # nothing open: left alone
    log.close()

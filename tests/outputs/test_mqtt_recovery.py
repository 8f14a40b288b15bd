"""Ending the occurrences an earlier run left open (streamseg.outputs.interrupted and
streamseg.outputs.mqtt.recovery); the whole path, SIGKILL and a real broker included, is in
test_mqtt_crash.py and tests/runtime/test_crash_e2e.py."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from streamseg.config import load_pipeline_text
from streamseg.outputs.interrupted import interrupted_end
from streamseg.outputs.mqtt import Outbox, build_mqtt_publisher
from streamseg.outputs.mqtt.recovery import end_interrupted
from streamseg.rules import Event, event_schema, new_event_id

LIMIT = 256 * 1024


def _start(event_id: str, **fields: Any) -> bytes:
    event = Event(event_id, "start", "count-pen", "count", "pen", 1000.0, 10.0, 12.0, 300, **fields)
    return event.to_json().encode()


def test_the_end_follows_the_latest_message() -> None:
    latest = json.loads(
        Event(
            new_event_id(),
            "update",
            "near-machine",
            "near",
            "yard",
            1000.0,
            10.0,
            14.5,
            362,
            seq=3,
            details={"track_id": 4, "other_track_id": 9, "other_last_seen_pts": 14.0},
        ).to_json()
    )
    end = interrupted_end(latest, 1003.0)
    jsonschema.validate(end, event_schema())
    assert (end["type"], end["seq"], end["ended_at"]) == ("end", 4, 1003.0)
    assert end["details"] == {"track_id": 4, "other_track_id": 9, "reason": "interrupted"}
    assert {k: v for k, v in end.items() if k not in ("type", "seq", "ended_at", "details")} == {
        k: v for k, v in latest.items() if k not in ("type", "seq", "ended_at", "details")
    }
    assert interrupted_end(latest, 900.0)["ended_at"] == 1000.0  # never before its start


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "end"}, "already its end"),
        ({"seq": None}, "'seq' is not a number"),
        ({"frame_pts": "soon"}, "'frame_pts' is not a number"),
        ({"started_at": True}, "'started_at' is not a number"),
    ],
)
def test_a_latest_message_that_cannot_be_ended(change: dict[str, Any], message: str) -> None:
    latest = {**json.loads(_start("x")), **change}
    with pytest.raises(ValueError, match=message):
        interrupted_end(latest, 1000.0)
    with pytest.raises(ValueError, match="no 'started_at'"):
        interrupted_end({k: v for k, v in json.loads(_start("x")).items() if k != "started_at"}, 0)


def test_details_that_are_not_a_mapping_are_left_out() -> None:
    latest = {**json.loads(_start("x")), "details": ["odd"]}
    assert interrupted_end(latest, 1000.0)["details"] == {"reason": "interrupted"}


def test_ends_go_to_this_runs_topic_dated_when_the_latest_message_was_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An earlier configuration's topic may be one the broker no longer lets this client
    write: an end refused there would hold back every event behind it."""
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        outbox.add("old/events", b"{not json", 1, occurrence="broken")
        good = new_event_id()
        before = time.time()
        outbox.add("old/events", _start(good), 2, occurrence=good)
        after = time.time()
        outbox.ack(r.row_id for r in outbox.pending())
        with caplog.at_level(logging.WARNING, logger="streamseg.outputs.mqtt.recovery"):
            ended = end_interrupted(outbox, "new/events", 1, LIMIT)
        assert [e["event_id"] for e in ended] == [good]
        assert before <= ended[0]["ended_at"] <= after
        assert outbox.open_occurrences() == []
        [row] = outbox.pending()
        assert (row.topic, row.qos) == ("new/events", 1)
        assert json.loads(row.payload)["details"] == {"reason": "interrupted"}
    assert "occurrence broken was left open by an earlier run" in caplog.text
    assert f"on new/events: count-pen on pen ({good})" in caplog.text


def test_an_end_over_the_size_limit_goes_without_its_details(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: an update just under max_payload_bytes gave an end over it, which the
    sender set aside: the consumer never got an end."""
    big, huge = new_event_id(), new_event_id()
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        padded = _start(big, details={"note": "x" * 600})
        outbox.add("ev", padded, 1, occurrence=big)
        outbox.add("ev", _start(huge, track_ids=tuple(range(1, 400))), 1, occurrence=huge)
        outbox.ack(r.row_id for r in outbox.pending())
        with caplog.at_level(logging.ERROR, logger="streamseg.outputs.mqtt.recovery"):
            ended = end_interrupted(outbox, "ev", 1, len(padded))
        assert [(e["event_id"], e["details"]) for e in ended] == [(big, {"reason": "interrupted"})]
        assert all(len(r.payload) <= len(padded) for r in outbox.pending())
        assert outbox.open_occurrences() == []
    assert f"the end of occurrence {huge}" in caplog.text and "it is not sent" in caplog.text


def test_a_full_outbox_keeps_the_rest_open_for_the_next_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "o.sqlite3"
    first, second = new_event_id(), new_event_id()
    with Outbox(path, max_events=3) as outbox:
        outbox.add("ev", _start(first), 1, occurrence=first)
        outbox.add("ev", _start(second), 1, occurrence=second)
    with Outbox(path, max_events=3) as outbox:
        with caplog.at_level(logging.ERROR, logger="streamseg.outputs.mqtt.recovery"):
            assert [e["event_id"] for e in end_interrupted(outbox, "ev", 1, LIMIT)] == [first]
        assert "sent at a later start" in caplog.text
        assert [o.event_id for o in outbox.open_occurrences()] == [second]
        outbox.ack(r.row_id for r in outbox.pending())
    with Outbox(path, max_events=3) as outbox:
        assert [e["event_id"] for e in end_interrupted(outbox, "ev", 1, LIMIT)] == [second]
        assert outbox.open_occurrences() == []


def test_a_database_error_while_ending_them_does_not_stop_the_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: a sqlite error there ended ``streamseg run`` with a traceback at start,
    where the same error on an event is logged and the run goes on. Injected: no disk here
    fails on demand."""
    config = load_pipeline_text(
        "name: crashy\nsources: [{id: gate, type: file, path: x.mp4}]\n"
        f"outputs: {{mqtt: {{host: 127.0.0.1, port: 9, outbox: {{path: '{tmp_path}/o.db'}}}}}}\n"
    )
    publisher = build_mqtt_publisher(config)
    assert publisher is not None

    def failing() -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(publisher.outbox, "open_occurrences", failing)
    with caplog.at_level(logging.ERROR, logger="streamseg.outputs.mqtt.publisher"):
        publisher.start()
    publisher.close(timeout=0.5)
    assert "could not store the ends of the occurrences an earlier run left open" in caplog.text


@pytest.mark.parametrize("refusal", ["full", "too_large"])
def test_an_end_this_run_could_not_store_is_no_longer_dated_still_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusal: str
) -> None:
    """Regression (audit): an ``end`` refused by a full outbox or over ``max_payload_bytes``
    left its occurrence open, and the run went on dating it "still open" until it stopped: the
    next start dated its interrupted end then, not near its real end. No broker here (port 9):
    what is tested is what the outbox keeps."""
    import streamseg.outputs.mqtt.publisher as publisher_module

    monkeypatch.setattr(publisher_module, "OPEN_OCCURRENCES_SEEN_S", 0.05)
    bound = 2 if refusal == "full" else 10
    config = load_pipeline_text(
        "name: crashy\nsources: [{id: gate, type: file, path: x.mp4}]\n"
        "outputs: {mqtt: {host: 127.0.0.1, port: 9, max_payload_bytes: 600, "
        f"outbox: {{path: '{tmp_path}/o.db', max_events: {bound}}}}}}}\n"
    )
    publisher = build_mqtt_publisher(config)
    assert publisher is not None
    publisher.start()
    ended, still = new_event_id(), new_event_id()

    def message(event_id: str, type_: Any, seq: int, **fields: Any) -> Event:
        return Event(
            event_id, type_, "r", "inside", "gate", 1000.0, 1.0, 2.0, 50, seq=seq, **fields
        )

    publisher.on_event(message(ended, "start", 0))
    publisher.on_event(message(still, "start", 0))
    details = {"note": "x" * 600} if refusal == "too_large" else {}
    publisher.on_event(message(ended, "end", 1, details=details))  # refused
    refused_at = time.time()
    time.sleep(0.4)
    seen = {o.event_id: o.seen_at for o in publisher.outbox.open_occurrences()}
    publisher.close(timeout=0.2)
    assert set(seen) == {ended, still}  # both left for the next start to end
    assert seen[ended] <= refused_at
    assert seen[still] > refused_at + 0.2  # still open: dated since

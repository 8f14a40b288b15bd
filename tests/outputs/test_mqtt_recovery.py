"""Ending the occurrences a run that died left open (streamseg.outputs.mqtt.recovery); the whole
path, SIGKILL and a real broker included, is in test_mqtt_crash.py."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from streamseg.outputs.interrupted import interrupted_end
from streamseg.outputs.mqtt import Outbox
from streamseg.outputs.mqtt.recovery import end_interrupted
from streamseg.rules import Event, event_schema, new_event_id


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
    end = interrupted_end(latest)
    jsonschema.validate(end, event_schema())
    assert (end["type"], end["seq"], end["ended_at"]) == ("end", 4, pytest.approx(1004.5))
    assert end["details"] == {"track_id": 4, "other_track_id": 9, "reason": "interrupted"}
    assert {k: v for k, v in end.items() if k not in ("type", "seq", "ended_at", "details")} == {
        k: v for k, v in latest.items() if k not in ("type", "seq", "ended_at", "details")
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "end"}, "already its end"),
        ({"seq": None}, "wrong type"),
        ({"frame_pts": "soon"}, "wrong type"),
    ],
)
def test_a_latest_message_that_cannot_be_ended(change: dict[str, Any], message: str) -> None:
    latest = {**json.loads(_start("x")), **change}
    with pytest.raises(ValueError, match=message):
        interrupted_end(latest)
    with pytest.raises(ValueError, match="no 'started_at'"):
        interrupted_end({k: v for k, v in json.loads(_start("x")).items() if k != "started_at"})


def test_an_unreadable_occurrence_is_dropped_and_the_others_ended(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        outbox.add("ev", b"{not json", 1, occurrence="broken")
        good = new_event_id()
        outbox.add("ev", _start(good), 1, occurrence=good)
        outbox.ack(r.row_id for r in outbox.pending())
        with caplog.at_level(logging.WARNING, logger="streamseg.outputs.mqtt.recovery"):
            ended = end_interrupted(outbox)
        assert [e["event_id"] for e in ended] == [good]
        assert outbox.open_occurrences() == []
        [row] = outbox.pending()
        assert json.loads(row.payload)["details"] == {"reason": "interrupted"}
    text = caplog.text
    assert "occurrence broken was left open by an earlier run" in text
    assert f"count-pen on pen ({good})" in text


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
            assert [e["event_id"] for e in end_interrupted(outbox)] == [first]
        assert "sent at a later start" in caplog.text
        assert [o.event_id for o in outbox.open_occurrences()] == [second]
        outbox.ack(r.row_id for r in outbox.pending())
    with Outbox(path, max_events=3) as outbox:
        assert [e["event_id"] for e in end_interrupted(outbox)] == [second]
        assert outbox.open_occurrences() == []

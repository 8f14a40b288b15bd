"""``streamseg outbox``: reading an outbox from outside the run, putting quarantined events back;
the last test sends a requeued event through a real mosquitto."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.mosquitto import Mosquitto, Subscriber, client_keys

from streamseg.cli import main
from streamseg.config import load_pipeline
from streamseg.outputs.mqtt import MqttPublisher, Outbox, OutboxError, OutboxInUseError, admin
from streamseg.outputs.mqtt.admin import read_outbox, requeue_quarantined
from streamseg.rules import Event, new_event_id

EVENTS = "streamseg/yard/events"


def _event(index: int, **details: object) -> Event:
    return Event(
        event_id=new_event_id(),
        type="start",
        rule_id="r1",
        rule_kind="inside",
        stream_id="gate",
        started_at=1_763_000_000.0 + index,
        started_pts=index / 25,
        frame_pts=index / 25,
        frame_index=index,
        zone_id="swing",
        track_ids=(3,),
        class_names=("person",),
        details=dict(details),
    )


def _stored(path: Path, events: list[Event], quarantined: int = 0) -> list[bytes]:
    """Store ``events`` in the outbox at ``path``; the first ``quarantined`` of them are then
    set aside as a run would. Returns their payloads."""
    payloads = [event.to_json().encode() for event in events]
    with Outbox(path) as outbox:
        for payload in payloads:
            outbox.add(EVENTS, payload, 1)
        for row in outbox.pending(limit=quarantined):
            assert outbox.quarantine(row, "too_large")
    return payloads


def _rows(path: Path) -> list[tuple[str, bytes, int, float]]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT topic, payload, qos, created_at FROM outbox ORDER BY id")
        return [(str(t), bytes(p), int(q), float(c)) for t, p, q, c in rows]


def test_the_report_says_what_waits_and_what_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    events = [_event(i) for i in range(4)]
    _stored(path, events, quarantined=1)
    with Outbox(path) as outbox:
        outbox.add("streamseg/old-name/events", b"not json", 1)

    report = read_outbox(path, limit=2)

    assert report.exists and not report.in_use
    assert report.depth == 4
    assert report.by_topic == {EVENTS: 3, "streamseg/old-name/events": 1}
    assert [event.event_id for event in report.first] == [e.event_id for e in events[1:3]]
    assert report.first[0].rule_id == "r1" and report.first[0].stream_id == "gate"
    assert report.oldest_created_at is not None and report.newest_created_at is not None
    assert report.oldest_created_at <= report.newest_created_at
    assert report.quarantine.by_reason == {"too_large": 1}
    assert json.loads(report.quarantine.events[0].payload)["event_id"] == events[0].event_id


def test_reading_works_beside_a_running_pipeline_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with Outbox(path) as running:  # a run holds the outbox (its lock) and writes to it
        running.add(EVENTS, b"{}", 1)
        running.add(EVENTS, b"{}", 1)
        report = read_outbox(path)
        assert report.in_use and report.depth == 2
        running.ack([row.row_id for row in running.pending(limit=1)])
        assert read_outbox(path).depth == 1  # committed rows are seen at once
        running.add(EVENTS, b"{}", 1)  # the reader left the writer alone
    assert not read_outbox(path).in_use
    assert read_outbox(path).depth == 2


def test_the_report_counts_the_occurrences_left_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "outbox.sqlite3"
    with Outbox(path) as running:
        for event in (_event(0), _event(1)):
            running.add(EVENTS, event.to_json().encode(), 1, occurrence=event.event_id)
        running.ack(row.row_id for row in running.pending())  # delivered, still open
        assert read_outbox(path).open_occurrences == 2
        assert main(["outbox", str(path)]) == 0
        assert "2 occurrence(s) open (a start and no end yet)\n" in capsys.readouterr().out
    # No run holds it: those two were left by one that died.
    assert main(["outbox", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["open_occurrences"] == 2
    assert main(["outbox", str(path)]) == 0
    assert "left by a run that died or could not store their end; the next start" in (
        capsys.readouterr().out
    )
    with sqlite3.connect(path) as db:  # an outbox from before the table: none
        db.execute("DROP TABLE open_occurrences")
    assert read_outbox(path).open_occurrences == 0


def test_a_missing_file_and_another_database(tmp_path: Path) -> None:
    missing = read_outbox(tmp_path / "none.sqlite3")
    assert not missing.exists and missing.depth == 0
    assert not (tmp_path / "none.sqlite3").exists()  # reading creates nothing
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE things (x)")
    with pytest.raises(OutboxError, match="not a streamseg outbox"):
        read_outbox(other)


def test_requeue_puts_the_events_back_after_those_waiting(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    payloads = _stored(path, [_event(i) for i in range(4)], quarantined=2)
    first_times = [line["created_at"] for line in _quarantine_lines(path)]

    assert requeue_quarantined(path) == 2

    rows = _rows(path)
    assert [payload for _, payload, _, _ in rows] == payloads[2:] + payloads[:2]
    assert [created for _, _, _, created in rows[2:]] == first_times  # when first stored
    assert {(topic, qos) for topic, _, qos, _ in rows} == {(EVENTS, 1)}
    assert not (tmp_path / "outbox.sqlite3.quarantine.jsonl").exists()
    [kept] = tmp_path.glob("outbox.sqlite3.quarantine.jsonl.requeued-*")
    assert len(kept.read_text().splitlines()) == 2  # kept for the record
    assert requeue_quarantined(path) == 0  # nothing left to put back


def _quarantine_lines(path: Path) -> list[dict[str, object]]:
    text = path.with_name(path.name + ".quarantine.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_requeue_changes_nothing_when_it_cannot_do_it_all(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    _stored(path, [_event(i) for i in range(3)], quarantined=2)
    quarantine = path.with_name(path.name + ".quarantine.jsonl")
    before = (quarantine.read_text(), _rows(path))

    with Outbox(path), pytest.raises(OutboxInUseError, match="stop that pipeline"):
        requeue_quarantined(path)  # a run holds the outbox
    with pytest.raises(OutboxError, match="do not fit: 1 events wait and the bound is 2"):
        requeue_quarantined(path, max_events=2)
    quarantine.write_text(quarantine.read_text() + "{not json\n")
    with pytest.raises(OutboxError, match=r"line\(s\) 3 are not quarantined events"):
        requeue_quarantined(path)

    assert quarantine.read_text().splitlines()[:2] == before[0].splitlines()
    assert _rows(path) == before[1]


def test_the_command_reads_a_pipelines_outbox_and_requeues(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the default outbox path is relative, as for streamseg run
    pipeline = tmp_path / "yard.yaml"
    pipeline.write_text(
        "name: yard\nsources: [{id: gate, type: file, path: x.mp4}]\n"
        "outputs: {mqtt: {host: localhost}}\n"
    )
    events = [_event(i) for i in range(3)]
    _stored(Path("out/yard.outbox.sqlite3"), events, quarantined=1)
    _stored(Path("out/yard.shard1.outbox.sqlite3"), [_event(9)])

    assert main(["outbox", str(pipeline), "--list", "5"]) == 0
    out = capsys.readouterr().out
    assert "out/yard.outbox.sqlite3 (not in use): 2 event(s) wait" in out
    assert f"2 on {EVENTS}" in out
    assert f"event={events[1].event_id} rule=r1 type=start stream=gate" in out
    assert "1 event(s) set aside (too_large 1)" in out
    assert "out/yard.shard1.outbox.sqlite3 (not in use): 1 event(s) wait" in out

    assert main(["outbox", str(pipeline), "--requeue"]) == 0
    assert "out/yard.outbox.sqlite3: 1 quarantined event(s) put back" in capsys.readouterr().out
    assert main(["outbox", "out/yard.outbox.sqlite3", "--json"]) == 0
    [report] = json.loads(capsys.readouterr().out)
    assert report["depth"] == 3 and report["quarantine"]["events"] == 0

    pipeline.write_text("name: yard\nsources: [{id: gate, type: file, path: x.mp4}]\n")
    assert main(["outbox", str(pipeline)]) == 1
    assert "no outputs.mqtt section" in capsys.readouterr().err


@pytest.mark.integration
def test_a_requeued_event_is_delivered_once_the_limit_is_raised(
    tmp_path: Path,
    mosquitto: Callable[..., Mosquitto],
    built_publisher: Callable[..., MqttPublisher],
) -> None:
    """The operator's path: an event over ``max_payload_bytes`` is set aside when sent; the
    limit is raised, ``streamseg outbox --requeue`` puts it back, and the next run delivers it."""
    broker = mosquitto()
    sub = Subscriber(broker.port, EVENTS)
    pipeline = tmp_path / "yard.yaml"

    def write(limit: int) -> None:
        mqtt = {**client_keys(broker.port, tmp_path / "outbox.sqlite3", "streamseg-test")}
        mqtt["max_payload_bytes"] = limit
        pipeline.write_text(
            "name: yard\nsources: [{id: gate, type: file, path: x.mp4}]\n"
            f"outputs: {json.dumps({'mqtt': mqtt})}\n"
        )

    big, small = _event(0, blob="x" * 5000), _event(1)
    _stored(tmp_path / "outbox.sqlite3", [big, small])
    write(4096)
    first = built_publisher(load_pipeline(pipeline))
    first.start()
    sub.wait_for(lambda s: [json.loads(p)["event_id"] for p in s.on(EVENTS)] == [small.event_id])
    sub.wait_for(lambda s: first.outbox.depth == 0)
    first.close(timeout=5)

    write(65536)
    assert main(["outbox", str(pipeline), "--requeue"]) == 0
    second = built_publisher(load_pipeline(pipeline))
    second.start()
    sub.wait_for(
        lambda s: (
            [json.loads(p)["event_id"] for p in s.on(EVENTS)] == [small.event_id, big.event_id]
        )
    )
    sub.wait_for(lambda s: second.outbox.depth == 0)
    sub.close()


def test_who_holds_the_outbox_without_the_lock_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where /proc/locks cannot be read, the lock is tried and let go at once."""
    path = tmp_path / "outbox.sqlite3"
    monkeypatch.setattr(admin, "PROC_LOCKS", tmp_path / "no-such-table")
    with Outbox(path):
        assert read_outbox(path).in_use
    assert not read_outbox(path).in_use
    with Outbox(path):  # the try let it go: a run can still take it
        pass


@pytest.mark.parametrize(
    "line",
    [
        {"topic": "t/#", "qos": 1, "created_at": 1.0, "payload": "{}"},  # paho refuses it
        {"topic": "", "qos": 1, "created_at": 1.0, "payload": "{}"},
        {"topic": "t", "qos": 9, "created_at": 1.0, "payload": "{}"},
        {"topic": "t", "qos": True, "created_at": 1.0, "payload": "{}"},
        {"topic": "t", "qos": 1, "created_at": 1e12, "payload": "{}"},  # year 33658
        {"topic": "t", "qos": 1, "created_at": float("nan"), "payload": "{}"},
    ],
)
def test_requeue_refuses_a_line_a_run_could_not_send(
    tmp_path: Path, line: dict[str, object]
) -> None:
    """Regression (audit): a hand-mended line with a wildcard topic was put back, and then held
    back every event of the next run ("Publish topic cannot contain wildcards", 35 times)."""
    path = tmp_path / "outbox.sqlite3"
    _stored(path, [_event(0)], quarantined=1)
    quarantine = path.with_name(path.name + ".quarantine.jsonl")
    quarantine.write_text(quarantine.read_text() + json.dumps(line) + "\n")
    with pytest.raises(OutboxError, match=r"line\(s\) 2 are not quarantined events"):
        requeue_quarantined(path)
    assert _rows(path) == [] and len(quarantine.read_text().splitlines()) == 2
    assert read_outbox(path).quarantine.unreadable == [2]


def test_a_stopped_outbox_in_a_folder_the_reader_may_not_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (audit): a user who may not write the outbox's folder could not read a file
    no run held (sqlite's read-only open wants to create the -shm file). It is read as
    immutable then, unless a write-ahead log waits to be applied. Simulated: the tests run as
    root, whom permissions do not stop."""
    path = tmp_path / "outbox.sqlite3"
    _stored(path, [_event(0), _event(1)])
    connect = admin._connect

    def no_side_files(where: Path, flags: str) -> sqlite3.Connection:
        if flags == "mode=ro":
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return connect(where, flags)

    monkeypatch.setattr(admin, "_connect", no_side_files)
    assert read_outbox(path).depth == 2
    assert not path.with_name(path.name + "-shm").exists()  # nothing written beside it
    path.with_name(path.name + "-wal").write_bytes(b"x")  # a log to apply: not immutable
    with pytest.raises(OutboxError, match="sqlite cannot read it"):
        read_outbox(path)


def test_odd_targets(tmp_path: Path) -> None:
    folder = tmp_path / "dir.sqlite3"
    folder.mkdir()
    with pytest.raises(OutboxError, match="is a folder"):
        read_outbox(folder)
    empty = tmp_path / "empty.sqlite3"
    empty.touch()  # a run would take it as an empty outbox
    report = read_outbox(empty)
    assert report.exists and report.depth == 0


def test_the_command_requeues_every_shard_it_can_and_keeps_to_a_given_bound(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    pipeline = tmp_path / "yard.yaml"
    pipeline.write_text(
        "name: yard\nsources: [{id: gate, type: file, path: x.mp4}]\n"
        "outputs: {mqtt: {host: localhost}}\n"
    )
    shard0, shard1 = Path("out/yard.shard0.outbox.sqlite3"), Path("out/yard.shard1.outbox.sqlite3")
    _stored(shard0, [_event(0), _event(1)], quarantined=2)
    _stored(shard1, [_event(2)], quarantined=1)

    with Outbox(shard0):  # shard 0 runs
        assert main(["outbox", str(pipeline), "--requeue"]) == 1
    captured = capsys.readouterr()
    assert "shard0.outbox.sqlite3 is held by a running streamseg" in captured.err
    assert "out/yard.shard1.outbox.sqlite3: 1 quarantined event(s) put back" in captured.out
    assert "no such file" not in captured.out  # a sharded run has no unsharded outbox
    assert main(["outbox", str(shard0), "--requeue", "--max-events", "1"]) == 1
    assert "2 quarantined events do not fit" in capsys.readouterr().err
    assert main(["outbox", str(shard0), "--json", "--list", "5"]) == 0
    [report] = json.loads(capsys.readouterr().out)
    assert report["depth"] == 0 and report["quarantine"]["events"] == 2 and report["first"] == []

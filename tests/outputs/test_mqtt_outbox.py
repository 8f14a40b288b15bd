"""The durable outbox alone: order, acknowledgement, persistence, bound, threads, locking, files
it refuses, quarantine."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streamseg.outputs.mqtt import Outbox, OutboxError, OutboxFullError, OutboxInUseError


def _fill(outbox: Outbox, n: int, topic: str = "t") -> list[int]:
    return [outbox.add(topic, f"m{i}".encode(), 1) for i in range(n)]


def test_pending_in_insertion_order_and_ack_deletes(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        ids = _fill(outbox, 5)
        assert ids == sorted(ids) and len(set(ids)) == 5
        assert outbox.depth == 5
        rows = outbox.pending()
        assert [r.row_id for r in rows] == ids
        assert [r.payload for r in rows] == [f"m{i}".encode() for i in range(5)]
        assert {(r.topic, r.qos) for r in rows} == {("t", 1)}
        # A cursor and a limit page through the rows.
        assert [r.row_id for r in outbox.pending(after=ids[1], limit=2)] == ids[2:4]
        assert outbox.ack([ids[0], ids[2]]) == 2
        assert outbox.ack([ids[0]]) == 0  # already gone: ignored
        assert outbox.ack([]) == 0
        assert outbox.depth == 3
        assert [r.row_id for r in outbox.pending()] == [ids[1], ids[3], ids[4]]


def test_rows_survive_reopen_and_ids_keep_growing(tmp_path: Path) -> None:
    path = tmp_path / "state" / "o.sqlite3"  # the folder is created
    with Outbox(path) as outbox:
        ids = _fill(outbox, 3)
        outbox.ack([ids[2]])  # the newest row is gone; its id must not come back
    with Outbox(path) as outbox:
        assert outbox.depth == 2
        assert [r.payload for r in outbox.pending()] == [b"m0", b"m1"]
        new_id = outbox.add("t", b"m3", 2)
        assert new_id > ids[2]
        assert outbox.pending()[-1].qos == 2


def test_open_occurrences_keep_their_latest_message_until_their_end(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    with Outbox(path) as outbox:
        outbox.add("t", b"a start", 1, occurrence="a")
        outbox.add("t", b"b start", 1, occurrence="b")
        outbox.add("t", b"a update", 2, occurrence="a")
        outbox.add("t", b"status", 1)  # a message of no occurrence
        outbox.add("t", b"b end", 1, occurrence="b", ends=True)
        assert outbox.depth == 5
        outbox.ack(r.row_id for r in outbox.pending())  # delivered: still open
    with Outbox(path) as outbox:  # as a restart finds them
        [left] = outbox.open_occurrences()
        assert (left.event_id, left.topic, left.payload, left.qos) == ("a", "t", b"a update", 2)
        outbox.forget_occurrence("a")
        assert outbox.open_occurrences() == []


def test_a_run_dates_its_own_open_occurrences_still_open(tmp_path: Path) -> None:
    """:meth:`Outbox.touch_open` dates the occurrences this opening stored and has not ended,
    not those an earlier run left open (their end is dated by what that run said)."""
    path = tmp_path / "o.sqlite3"
    with Outbox(path) as outbox:
        outbox.add("t", b"old start", 1, occurrence="old")
    with Outbox(path) as outbox:
        [old] = outbox.open_occurrences()
        assert old.seen_at == old.stored_at
        outbox.add("t", b"a start", 1, occurrence="a")
        outbox.add("t", b"b start", 1, occurrence="b")
        outbox.add("t", b"b end", 1, occurrence="b", ends=True)
        time.sleep(0.05)
        before = time.time()
        assert outbox.touch_open() == 1
        after = time.time()
        seen = {o.event_id: o for o in outbox.open_occurrences()}
        assert set(seen) == {"old", "a"}
        assert seen["old"].seen_at == old.seen_at
        assert seen["a"].stored_at < before <= seen["a"].seen_at <= after
        outbox.add("t", b"a update", 1, occurrence="a")  # a new message dates it too
        assert outbox.open_occurrences()[-1].seen_at == outbox.open_occurrences()[-1].stored_at
        outbox.add("t", b"a end", 1, occurrence="a", ends=True)
        assert outbox.touch_open() == 0


def test_an_outbox_from_before_the_dating_gets_its_columns(tmp_path: Path) -> None:
    """An outbox whose open-occurrences table predates ``run`` and ``seen_at`` opens, its
    occurrences dated at their latest messages."""
    path = tmp_path / "o.sqlite3"
    with Outbox(path):
        pass
    db = sqlite3.connect(path)
    db.execute("DROP TABLE open_occurrences")
    db.execute(
        "CREATE TABLE open_occurrences (event_id TEXT PRIMARY KEY, topic TEXT NOT NULL, "
        "payload BLOB NOT NULL, qos INTEGER NOT NULL, stored_at REAL NOT NULL)"
    )
    db.execute("INSERT INTO open_occurrences VALUES ('x', 't', x'7b7d', 1, 1000.0)")
    db.commit()
    db.close()
    with Outbox(path) as outbox:
        [left] = outbox.open_occurrences()
        assert (left.event_id, left.stored_at, left.seen_at) == ("x", 1000.0, 1000.0)
        assert outbox.touch_open() == 0
        outbox.add("t", b"y start", 1, occurrence="y")
        assert outbox.touch_open() == 1


def test_a_refused_message_changes_no_open_occurrence(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3", max_events=1) as outbox:
        outbox.add("t", b"a start", 1, occurrence="a")
        with pytest.raises(OutboxFullError):
            outbox.add("t", b"a end", 1, occurrence="a", ends=True)
        with pytest.raises(OutboxFullError):
            outbox.add("t", b"b start", 1, occurrence="b")
        assert [o.payload for o in outbox.open_occurrences()] == [b"a start"]


def test_an_outbox_from_before_open_occurrences_gets_the_table(tmp_path: Path) -> None:
    """An outbox written before the occurrences table existed opens, keeps its rows and tracks
    occurrences from then on; an older streamseg still reads the file (same schema version)."""
    path = tmp_path / "o.sqlite3"
    with Outbox(path) as outbox:
        outbox.add("t", b"old", 1)
    db = sqlite3.connect(path)
    db.execute("DROP TABLE open_occurrences")
    db.commit()
    db.close()
    with Outbox(path) as outbox:
        assert [r.payload for r in outbox.pending()] == [b"old"]
        outbox.add("t", b"x start", 1, occurrence="x")
        assert [o.event_id for o in outbox.open_occurrences()] == ["x"]


def test_bound_refuses_new_rows_and_keeps_the_accepted(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3", max_events=3) as outbox:
        ids = _fill(outbox, 3)
        with pytest.raises(OutboxFullError) as info:
            outbox.add("t", b"late", 1)
        assert (info.value.depth, info.value.bound) == (3, 3)
        assert "3 events wait, bound is 3" in str(info.value)
        assert [r.payload for r in outbox.pending()] == [b"m0", b"m1", b"m2"]
        outbox.ack(ids[:1])
        outbox.add("t", b"room again", 1)
        assert outbox.depth == 3


def test_concurrent_inserts_from_threads(tmp_path: Path) -> None:
    threads, per_thread = 8, 60
    with Outbox(tmp_path / "o.sqlite3", synchronous="normal") as outbox:
        start = threading.Barrier(threads)

        def insert(worker: int) -> None:
            start.wait()
            for i in range(per_thread):
                outbox.add("t", f"{worker}:{i}".encode(), 1)

        pool = [threading.Thread(target=insert, args=(w,)) for w in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        rows = outbox.pending(limit=10_000)
        assert outbox.depth == len(rows) == threads * per_thread
        assert len({r.row_id for r in rows}) == len(rows)
        # Each thread's rows come out in the order that thread added them.
        for worker in range(threads):
            mine = [r.payload for r in rows if r.payload.startswith(f"{worker}:".encode())]
            assert mine == [f"{worker}:{i}".encode() for i in range(per_thread)]


def test_second_open_of_the_same_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    first = Outbox(path)
    with pytest.raises(OutboxInUseError, match="in use by another process"):
        Outbox(path)
    first.close()
    first.close()  # idempotent
    Outbox(path).close()  # the lock went with the first


def test_closed_outbox_raises(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    outbox.close()
    with pytest.raises(RuntimeError, match="closed"):
        outbox.add("t", b"x", 1)


def test_database_runs_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    with Outbox(path, synchronous="full"):
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.close()


def _app_database(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('ada');")
    db.close()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            lambda p: p.write_bytes(b"not a database at all" * 100),
            "sqlite cannot use it (file is not a database); if the file is damaged, move it aside",
        ),
        (
            lambda p: sqlite3.connect(p).executescript(
                "CREATE TABLE outbox (id INTEGER PRIMARY KEY); PRAGMA user_version = 7;"
            ),
            "schema version 7, expected 1",
        ),
        (
            _app_database,
            "not a streamseg outbox (tables users, user_version 0; expected a table 'outbox')",
        ),
        (lambda p: p.with_name(p.name + "-wal").mkdir(), "sqlite cannot use it"),
    ],
    ids=["not-sqlite", "other-schema-version", "another-application", "unopenable-wal"],
)
def test_foreign_files_are_refused(
    tmp_path: Path, setup: Callable[[Path], object], message: str
) -> None:
    """Regression: sqlite's own error (no path, a traceback in ``streamseg run``), and another
    application's database silently got the outbox tables."""
    path = tmp_path / "o.sqlite3"
    setup(path)
    with pytest.raises(OutboxError) as info:
        Outbox(path)
    assert str(info.value).startswith(f"outbox {path}: ")
    assert message in str(info.value)
    if path.is_file():
        shutil.move(path, tmp_path / "moved-aside.sqlite3")
    shutil.rmtree(path.with_name(path.name + "-wal"), ignore_errors=True)
    Outbox(path).close()  # the failed open released its lock


def test_another_applications_database_is_left_as_it_was(tmp_path: Path) -> None:
    """Regression: the outbox tables were added to any SQLite file at outbox.path (and the
    file switched to WAL mode)."""
    path = tmp_path / "app.sqlite3"
    _app_database(path)
    with pytest.raises(
        OutboxError, match=re.escape("point outputs.mqtt.outbox.path at a file of its own")
    ):
        Outbox(path)
    db = sqlite3.connect(path)
    tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert tables == ["users"]
    assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    db.close()


def test_read_only_outbox_fails_at_open(tmp_path: Path) -> None:
    """Regression: sqlite opens a file it may not write read-only, and the first event (then
    lost) was the first to find out. Root may write any file, so as root (CI) the open runs in a
    child process with root's rights dropped (setpriv, util-linux) as an unprivileged user."""
    if os.geteuid() != 0:
        path = tmp_path / "o.sqlite3"
        Outbox(path).close()
        path.chmod(0o444)
        with pytest.raises(OutboxError, match="needs write access to"):
            Outbox(path)
        return
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "setpriv (util-linux) is needed to drop root's rights"
    folder = Path(tempfile.mkdtemp(prefix="outbox-ro-", dir="/tmp"))
    try:
        folder.chmod(0o777)  # the unprivileged user may create the lock file, not write o.sqlite3
        path = folder / "o.sqlite3"
        Outbox(path).close()
        path.chmod(0o444)
        code = (
            "from streamseg.outputs.mqtt.outbox import Outbox, OutboxError\n"
            "try:\n"
            f"    Outbox({str(path)!r})\n"
            "except OutboxError as exc:\n"
            "    print('refused:', exc)\n"
            "else:\n"
            "    print('opened')\n"
        )
        result = subprocess.run(
            [
                setpriv,
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                sys.executable,
                "-c",
                code,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("refused:"), result.stdout + result.stderr
        assert "needs write access to" in result.stdout
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_unwritable_folder_names_the_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the outbox's folder should be
    with pytest.raises(OutboxError, match=re.escape(f"cannot create {blocker}")):
        Outbox(blocker / "o.sqlite3")


def test_quarantine_moves_a_row_to_the_side_file(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        ids = _fill(outbox, 3)
        head = outbox.pending(limit=1)[0]
        assert outbox.quarantine(head, "the broker will not take it")
        assert outbox.quarantine(head, "again") is False  # already gone
        assert outbox.depth == 2
        assert [r.row_id for r in outbox.pending()] == ids[1:]
        assert outbox.quarantine_path == tmp_path / "o.sqlite3.quarantine.jsonl"
        [line] = outbox.quarantine_path.read_text().splitlines()
        kept = json.loads(line)
        assert (kept["topic"], kept["qos"], kept["payload"]) == ("t", 1, "m0")
        assert kept["reason"] == "the broker will not take it"
        assert kept["created_at"] == head.created_at
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        assert outbox.depth == 2  # durable


@pytest.mark.parametrize("problem", ["damaged", "in-use"])
def test_run_reports_an_unusable_outbox_without_a_traceback(tmp_path: Path, problem: str) -> None:
    """Regression: ``streamseg run`` caught neither sqlite's errors nor OutboxInUseError (a
    RuntimeError): a traceback, without the path for sqlite's."""
    outbox = tmp_path / "o.sqlite3"
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        "name: yard\nsources: [{id: gate, type: file, path: x.mp4}]\n"
        "model: {weights: builtin, device: cpu}\n"
        f"outputs: {{mqtt: {{host: 127.0.0.1, port: 1, outbox: {{path: '{outbox}'}}}}}}\n"
    )
    held = None
    if problem == "damaged":
        outbox.write_bytes(b"not a database at all" * 100)
    else:
        held = Outbox(outbox)  # this process holds it
    try:
        result = subprocess.run(
            [sys.executable, "-m", "streamseg", "run", str(pipeline), "--no-progress"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        if held is not None:
            held.close()
    out = " ".join((result.stdout + result.stderr).split())  # rich wraps long lines
    assert result.returncode == 1, out
    assert f"error: outbox {outbox}" in out, out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"max_events": 0}, "max_events must be >= 1"), ({"synchronous": "off"}, "synchronous")],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Outbox(tmp_path / "o.sqlite3", **kwargs)  # type: ignore[arg-type]


def test_a_full_disk_at_start_says_so_and_does_not_advise_moving_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Audit: with the outbox's filesystem full, sqlite fails at open with "disk I/O error" (its
    -shm file cannot grow) and the message advised moving the file aside as damaged, which
    abandons the events waiting in it. The disk is made to read as full here (filling a real
    one needs a mount the tests cannot make); the sqlite error is the one seen on a full tmpfs."""
    path = tmp_path / "o.sqlite3"
    with Outbox(path) as outbox:
        outbox.add("t", b"waiting", 1)
    from streamseg.outputs.mqtt import outbox as outbox_module

    real_connect = sqlite3.connect

    def full_disk_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        class FullDisk(sqlite3.Connection):
            def execute(self, sql: str, *rest: Any) -> sqlite3.Cursor:  # type: ignore[override]
                raise sqlite3.OperationalError("disk I/O error")

        return real_connect(*args, **kwargs, factory=FullDisk)

    monkeypatch.setattr(outbox_module.sqlite3, "connect", full_disk_connect)
    monkeypatch.setattr(
        outbox_module.shutil,
        "disk_usage",
        lambda folder: types.SimpleNamespace(total=10, used=10, free=0),
    )
    with pytest.raises(OutboxError) as info:
        Outbox(path)
    message = str(info.value)
    assert f"the filesystem of {tmp_path} has 0 bytes free: free some space" in message
    assert "events waiting in the file are kept" in message and "mv " not in message
    monkeypatch.undo()
    with Outbox(path) as outbox:  # space back: the event is still there
        assert outbox.depth == 1

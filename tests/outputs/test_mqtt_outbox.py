"""The durable outbox alone: order, acknowledgement, persistence, bound, threads, locking."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from streamseg.outputs.mqtt import Outbox, OutboxFullError, OutboxInUseError


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


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        (lambda p: p.write_bytes(b"not a database at all" * 100), sqlite3.DatabaseError),
        (
            lambda p: sqlite3.connect(p).executescript(
                "CREATE TABLE outbox (id INTEGER PRIMARY KEY); PRAGMA user_version = 7;"
            ),
            sqlite3.DatabaseError,
        ),
    ],
    ids=["not-sqlite", "other-schema-version"],
)
def test_foreign_files_are_refused(tmp_path: Path, setup: object, error: type[Exception]) -> None:
    path = tmp_path / "o.sqlite3"
    setup(path)  # type: ignore[operator]
    with pytest.raises(error):
        Outbox(path)
    path.unlink()
    Outbox(path).close()  # the failed open released its lock


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"max_events": 0}, "max_events must be >= 1"), ({"synchronous": "off"}, "synchronous")],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Outbox(tmp_path / "o.sqlite3", **kwargs)  # type: ignore[arg-type]

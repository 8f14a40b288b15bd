"""The durable outbox: events wait in SQLite until the broker acknowledges them.

One table, rows in insertion order (``INTEGER PRIMARY KEY AUTOINCREMENT``, so ids only grow and
are never reused). :meth:`Outbox.add` commits a row before it returns; :meth:`Outbox.ack`
deletes rows once the broker acknowledged them. Whatever is still there after a broker outage or
a crash of the process is sent again (:meth:`Outbox.pending`).

Durability: the database runs in WAL mode. ``synchronous="full"`` (the default) syncs the WAL on
every commit, so an accepted event survives a power loss; ``"normal"`` syncs only at
checkpoints, which still survives a crash or SIGKILL of the process (the WAL is in the OS page
cache) but may lose the last commits on a power loss or kernel panic, in exchange for fewer
fsyncs. Alerts are rare next to frames, so the default pays for the fsync.

One process at a time: the outbox holds an exclusive ``flock`` on ``<path>.lock`` while open, so a
second streamseg pointed at the same file fails at once instead of sending every event twice.
The kernel drops the lock when the process dies, even by SIGKILL.

Only an outbox is opened: the schema is created in an empty database alone, so a path that
points at another application's SQLite file fails instead of adding tables to it. Every failure to
open raises :class:`OutboxError` with the file and what to do about it.

Open occurrences: a second table keeps, per event occurrence that has had a ``start`` and no
``end`` yet, its latest message and when it was stored, written in the same transaction as the
message itself (:meth:`Outbox.add` with ``occurrence``), and the run that stored it. While the
run goes on, :meth:`Outbox.touch_open` dates its open occurrences "still open now" (the
publisher calls it every few seconds), so the end of one left open by a run that died is dated
within seconds of the death, not at its latest message (an ``inside`` occurrence may send none
for ``update_interval_s``). A clean stop ends every occurrence, so
what is left there when the outbox is opened again was left open by a run that died (SIGKILL,
a crash, a power loss) or could not store an end: :meth:`Outbox.open_occurrences` lists it,
and the publisher ends each one (reason ``interrupted``, :mod:`streamseg.outputs.mqtt.recovery`)
before the new run's events, so a consumer that opened an incident on ``start`` gets its
``end``. The table is created in outboxes written before it existed, too: it changes nothing an
older streamseg reads.

A message the broker will never take (one it disconnects for) can be set aside with
:meth:`Outbox.quarantine`: it leaves the outbox for ``<path>.quarantine.jsonl``, so the messages
behind it go out and it stays on disk for an operator to look at.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of the outbox file; a file with another version is refused."""

_SCHEMA = """
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    created_at REAL NOT NULL
)
"""

_OCCURRENCES_SCHEMA = """
CREATE TABLE IF NOT EXISTS open_occurrences (
    event_id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    stored_at REAL NOT NULL,
    run TEXT,
    seen_at REAL
)
"""
"""The latest message of each open occurrence (see the module docstring)."""

_OCCURRENCES_ADDED_COLUMNS = (("run", "TEXT"), ("seen_at", "REAL"))
"""Columns of ``open_occurrences`` that an outbox written before them lacks (added at open)."""

_BUSY_TIMEOUT_MS = 5000


class OutboxFullError(Exception):
    """The outbox holds ``bound`` events; the new one was not stored.

    Attributes:
        depth: events waiting.
        bound: the configured maximum.
    """

    def __init__(self, depth: int, bound: int) -> None:
        """Build the error from the outbox's figures."""
        super().__init__(f"outbox full: {depth} events wait, bound is {bound}")
        self.depth = depth
        self.bound = bound


class OutboxError(RuntimeError):
    """The outbox file cannot be used; the message names the file and what to do."""


class OutboxInUseError(OutboxError):
    """Another process (or another :class:`Outbox` in this one) has the file open."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One stored message.

    Attributes:
        row_id: position in the outbox; grows with every insert, never reused.
        topic: MQTT topic to publish on.
        payload: message bytes (the event's JSON).
        qos: MQTT QoS (1 or 2).
        created_at: wall-clock UNIX seconds of the insert.
    """

    row_id: int
    topic: str
    payload: bytes
    qos: int
    created_at: float


@dataclass(frozen=True, slots=True)
class OpenOccurrence:
    """The latest stored message of an occurrence with no ``end`` yet.

    Attributes:
        event_id: the occurrence's event id.
        topic: the topic its messages go to.
        payload: its latest message (the event's JSON).
        qos: that message's QoS.
        stored_at: wall-clock UNIX seconds when that message was stored.
        seen_at: wall-clock UNIX seconds when the run that stored it last said it was still
            open (:meth:`Outbox.touch_open`); at least ``stored_at``.
    """

    event_id: str
    topic: str
    payload: bytes
    qos: int
    stored_at: float
    seen_at: float


class Outbox:
    """A bounded, durable FIFO of messages in one SQLite file (thread-safe).

    Args:
        path: the database file; its folder is created.
        max_events: bound: :meth:`add` raises :class:`OutboxFullError` when this many wait.
        synchronous: ``"full"`` or ``"normal"`` (see the module docstring).

    Raises:
        OutboxInUseError: another process has the outbox open.
        OutboxError: the file cannot be opened (damaged, not a database, not writable) or is
            a database other than an outbox.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_events: int = 100_000,
        synchronous: Literal["full", "normal"] = "full",
    ) -> None:
        if max_events < 1:
            raise ValueError(f"max_events must be >= 1, got {max_events!r}")
        if synchronous not in ("full", "normal"):
            raise ValueError(f"synchronous must be 'full' or 'normal', got {synchronous!r}")
        self.path = Path(path)
        self.bound = max_events
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_file = _lock_exclusive(self.path.with_name(self.path.name + ".lock"))
        except OSError as exc:
            failed = Path(exc.filename) if exc.filename else self.path
            raise OutboxError(
                f"outbox {self.path}: cannot create {failed} ({exc.strerror or exc}); the user "
                f"running streamseg needs write access to {failed.parent}"
            ) from exc
        try:
            self._db, self._depth = _open_database(self.path, synchronous)
        except BaseException:
            self._lock_file.close()
            raise
        self._lock = threading.Lock()
        self._closed = False
        self.run = uuid.uuid4().hex
        """This opening's id: the open occurrences it stores carry it (:meth:`touch_open`)."""
        if self._depth:
            logger.info("outbox %s: %d events from an earlier run wait", self.path, self._depth)

    def waiting_by_topic(self) -> dict[str, int]:
        """Messages stored and not yet acknowledged, per topic."""
        with self._lock:
            self._check_open()
            rows = self._db.execute("SELECT topic, COUNT(*) FROM outbox GROUP BY topic")
            return {str(topic): int(count) for topic, count in rows.fetchall()}

    @property
    def depth(self) -> int:
        """Messages stored and not yet acknowledged."""
        return self._depth

    @property
    def quarantine_path(self) -> Path:
        """``<path>.quarantine.jsonl``: where :meth:`quarantine` puts messages set aside."""
        return quarantine_path_of(self.path)

    def add(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        occurrence: str | None = None,
        ends: bool = False,
    ) -> int:
        """Store one message; it is durable (committed) when this returns.

        Args:
            topic: MQTT topic.
            payload: message bytes.
            qos: 1 or 2.
            occurrence: the event id of the occurrence the message is part of: in the same
                transaction, the message becomes that occurrence's latest in the open
                occurrences (:meth:`open_occurrences`), or with ``ends`` the occurrence leaves
                them. ``None``: a message of no occurrence.
            ends: the message ends ``occurrence``.

        Returns:
            The row id.

        Raises:
            OutboxFullError: ``bound`` messages already wait; nothing was stored.
        """
        with self._lock:
            self._check_open()
            if self._depth >= self.bound:
                raise OutboxFullError(self._depth, self.bound)
            now = time.time()
            with _transaction(self._db):
                cursor = self._db.execute(
                    "INSERT INTO outbox (topic, payload, qos, created_at) VALUES (?, ?, ?, ?)",
                    (topic, payload, qos, now),
                )
                if occurrence is not None and ends:
                    self._db.execute(
                        "DELETE FROM open_occurrences WHERE event_id = ?", (occurrence,)
                    )
                elif occurrence is not None:
                    self._db.execute(
                        "INSERT OR REPLACE INTO open_occurrences "
                        "(event_id, topic, payload, qos, stored_at, run, seen_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (occurrence, topic, payload, qos, now, self.run, now),
                    )
            self._depth += 1
            row_id = cursor.lastrowid
        if row_id is None:  # pragma: no cover - sqlite3 always sets it after an INSERT
            raise RuntimeError("sqlite3 returned no row id for an INSERT")
        return row_id

    def restore(self, messages: Iterable[tuple[str, bytes, int, float]]) -> int:
        """Store messages set aside earlier, in one transaction, keeping when they were first
        stored (``streamseg outbox --requeue`` puts quarantined events back with it).

        Args:
            messages: ``(topic, payload, qos, created_at)`` each, in the order to send them.

        Returns:
            How many were stored.

        Raises:
            OutboxFullError: they would not all fit under ``bound``; nothing was stored.
        """
        rows = [(str(t), bytes(p), int(q), float(c)) for t, p, q, c in messages]
        with self._lock:
            self._check_open()
            if self._depth + len(rows) > self.bound:
                raise OutboxFullError(self._depth, self.bound)
            with _transaction(self._db):
                self._db.executemany(
                    "INSERT INTO outbox (topic, payload, qos, created_at) VALUES (?, ?, ?, ?)",
                    rows,
                )
            self._depth += len(rows)
        return len(rows)

    def open_occurrences(self) -> list[OpenOccurrence]:
        """The occurrences whose latest stored message is not an ``end``, in the order of
        their latest messages: at open, before this run stored anything, those an earlier run
        left open."""
        with self._lock:
            self._check_open()
            rows = self._db.execute(
                "SELECT event_id, topic, payload, qos, stored_at, seen_at FROM open_occurrences "
                "ORDER BY stored_at, rowid"
            ).fetchall()
        return [
            OpenOccurrence(
                str(r[0]),
                str(r[1]),
                bytes(r[2]),
                int(r[3]),
                float(r[4]),
                float(r[4]) if r[5] is None else max(float(r[4]), float(r[5])),
            )
            for r in rows
        ]

    def release_occurrence(self, event_id: str) -> None:
        """Stop dating an occurrence "still open" (:meth:`touch_open`): this run ended it but
        could not store the end. It stays open for the next start to end, dated when this
        run last held it open."""
        with self._lock:
            self._check_open()
            self._db.execute(
                "UPDATE open_occurrences SET run = NULL WHERE event_id = ?", (event_id,)
            )

    def touch_open(self) -> int:
        """Date the occurrences this opening stored and has not ended "still open now" (their
        ``seen_at``); return how many. Nothing is written when there are none."""
        with self._lock:
            self._check_open()
            cursor = self._db.execute(
                "UPDATE open_occurrences SET seen_at = ? WHERE run = ?", (time.time(), self.run)
            )
            return max(cursor.rowcount, 0)

    def forget_occurrence(self, event_id: str) -> None:
        """Drop an open occurrence without storing a message (one whose message cannot be
        read back to end it)."""
        with self._lock:
            self._check_open()
            self._db.execute("DELETE FROM open_occurrences WHERE event_id = ?", (event_id,))

    def pending(self, after: int = 0, limit: int = 100) -> list[OutboxRow]:
        """The oldest messages with ``row_id > after``, in insertion order.

        Args:
            after: a row id; 0 starts from the oldest message.
            limit: at most this many rows.
        """
        with self._lock:
            self._check_open()
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, created_at FROM outbox "
                "WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
        return [OutboxRow(int(r[0]), str(r[1]), bytes(r[2]), int(r[3]), float(r[4])) for r in rows]

    def ack(self, row_ids: Iterable[int]) -> int:
        """Delete acknowledged messages, in one transaction.

        Args:
            row_ids: ids from :meth:`pending`; ids already deleted are ignored.

        Returns:
            The number of rows deleted.
        """
        ids = [(int(row_id),) for row_id in row_ids]
        if not ids:
            return 0
        with self._lock:
            self._check_open()
            before = self._db.total_changes
            with _transaction(self._db):
                self._db.executemany("DELETE FROM outbox WHERE id = ?", ids)
            deleted = self._db.total_changes - before
            self._depth -= deleted
        return deleted

    def quarantine(self, row: OutboxRow, reason: str) -> bool:
        """Move one message out of the outbox into :attr:`quarantine_path`.

        For a message the broker will not take: left at the head of the outbox it would be sent
        first after every reconnect and hold back every message behind it, forever. The line
        (JSON: ``topic``, ``qos``, ``created_at``, ``quarantined_at``, ``reason`` and
        ``payload``, the message as UTF-8 text) is synced to disk before the row is deleted,
        so a crash in between leaves the message in both places, never in neither.

        Args:
            row: a row from :meth:`pending`.
            reason: why, for the operator reading the file.

        Returns:
            True when the row was moved; False when it was already gone (acknowledged).

        Raises:
            OSError: the quarantine file cannot be written; the row stays in the outbox.
        """
        line = json.dumps(
            {
                "topic": row.topic,
                "qos": row.qos,
                "created_at": row.created_at,
                "quarantined_at": time.time(),
                "reason": reason,
                "payload": row.payload.decode("utf-8", errors="replace"),
            },
            sort_keys=True,
        )
        with self._lock:
            self._check_open()
            if self._db.execute("SELECT 1 FROM outbox WHERE id = ?", (row.row_id,)).fetchone():
                with self.quarantine_path.open("a", encoding="utf-8") as handle:
                    handle.write(line + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                before = self._db.total_changes
                self._db.execute("DELETE FROM outbox WHERE id = ?", (row.row_id,))
                deleted = self._db.total_changes - before
                self._depth -= deleted
                return deleted > 0
        return False

    def close(self) -> None:
        """Close the database and release the file lock (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._db.close()
            self._lock_file.close()

    def __enter__(self) -> Outbox:
        """Use as a context manager that closes the outbox."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the outbox."""
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"outbox {self.path} is closed")


def quarantine_path_of(path: Path) -> Path:
    """``<path>.quarantine.jsonl``: the quarantine file of the outbox at ``path``."""
    return path.with_name(path.name + ".quarantine.jsonl")


def _lock_exclusive(lock_path: Path) -> IO[str]:
    handle = lock_path.open("a")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise OutboxInUseError(
            f"outbox {lock_path.with_suffix('')} is in use by another process "
            f"(lock {lock_path}); give each running pipeline its own outbox path"
        ) from None
    return handle


def _open_database(path: Path, synchronous: str) -> tuple[sqlite3.Connection, int]:
    """Open (or create, when empty) the outbox database; returns it and its row count.

    The file is checked before anything is written to it: the schema goes into an empty
    database only, and WAL mode (which changes the file) is set once it is known to be ours.

    Raises:
        OutboxError: sqlite cannot open or read the file, or it is not an outbox.
    """
    try:
        # Autocommit (isolation_level=None): each INSERT is its own committed transaction;
        # batches use an explicit BEGIN (see _transaction).
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    except sqlite3.Error as exc:
        raise _open_error(path, exc) from exc
    try:
        db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        _check_schema(db, path)
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            logger.warning("outbox %s: journal mode %s, expected wal", path, mode)
        db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        db.execute(_OCCURRENCES_SCHEMA)  # also in an outbox from before the table existed
        _add_occurrence_columns(db)
        depth = int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        _check_writable(db)
    except sqlite3.Error as exc:
        db.close()
        raise _open_error(path, exc) from exc
    except BaseException:
        db.close()
        raise
    return db, depth


def _add_occurrence_columns(db: sqlite3.Connection) -> None:
    """Add the ``open_occurrences`` columns an outbox written before them lacks (an older
    streamseg reads the table as before: it names its columns)."""
    have = {str(row[1]) for row in db.execute("PRAGMA table_info(open_occurrences)")}
    for name, kind in _OCCURRENCES_ADDED_COLUMNS:
        if name not in have:
            db.execute(f"ALTER TABLE open_occurrences ADD COLUMN {name} {kind}")


def _check_schema(db: sqlite3.Connection, path: Path) -> None:
    """Create the schema in an empty database; otherwise require an outbox of this version.

    Raises:
        OutboxError: the database holds something else (another application's tables), or an
            outbox of another schema version.
    """
    version, tables = _schema_of(db)
    if not tables and version == 0:
        with _transaction(db):
            db.execute(_SCHEMA)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return
    check_outbox_schema(db, path)


def check_outbox_schema(db: sqlite3.Connection, path: Path) -> list[str]:
    """Require ``db`` to be an outbox of this schema version (``streamseg outbox`` reads one
    this way, without creating anything); return its tables, sorted (one written before the
    open-occurrences table existed lacks it).

    Raises:
        OutboxError: it holds something else (another application's tables), or an outbox of
            another schema version.
    """
    version, tables = _schema_of(db)
    if "outbox" not in tables:
        raise OutboxError(
            f"outbox {path}: not a streamseg outbox (tables {', '.join(tables) or 'none'}, "
            f"user_version {version}; expected a table 'outbox'); it looks like another "
            "application's database: point outputs.mqtt.outbox.path at a file of its own"
        )
    if version != SCHEMA_VERSION:
        raise OutboxError(
            f"outbox {path}: schema version {version}, expected {SCHEMA_VERSION} (written by "
            "another streamseg version?); run that version to drain it, or move the file aside "
            "to start with an empty outbox"
        )
    return tables


def _schema_of(db: sqlite3.Connection) -> tuple[int, list[str]]:
    """The database's ``user_version`` and its tables, sorted."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    tables = [
        str(name)
        for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]
    return version, tables


def _check_writable(db: sqlite3.Connection) -> None:
    """Write the header once, rolled back: sqlite opens a file it may not write read-only,
    without a word, and the first event (then lost) would be the first to find out.

    Raises:
        sqlite3.OperationalError: "attempt to write a readonly database".
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    finally:
        db.execute("ROLLBACK")


LOW_DISK_BYTES = 1 << 20
"""Below this much free space, a sqlite failure at open is taken for a full disk."""


def _free_bytes(folder: Path) -> int | None:
    """Bytes free for this user on ``folder``'s filesystem; ``None`` if it cannot be read."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _open_error(path: Path, exc: sqlite3.Error) -> OutboxError:
    """An :class:`OutboxError` for a sqlite failure at open, with what to do about it."""
    text = str(exc)
    free = _free_bytes(path.parent)
    if "full" in text or (free is not None and free < LOW_DISK_BYTES):
        # A full disk reads as "disk I/O error" when the -shm file cannot grow: moving a good
        # file aside, as for a damaged one, would abandon the events waiting in it.
        room = f"{free} bytes free" if free is not None else "no room"
        hint = (
            f"the filesystem of {path.parent} has {room}: free some space and start again "
            "(the events waiting in the file are kept and sent)"
        )
    elif "readonly" in text or "unable to open" in text:
        hint = (
            f"the user running streamseg needs write access to {path} and to its folder "
            f"{path.parent} (sqlite writes -wal and -shm files beside it)"
        )
    else:
        hint = (
            f"if the file is damaged, move it aside (mv {path} {path}.bad) and start again: "
            "a new, empty outbox is created (the events waiting in the old file are not sent)"
        )
    return OutboxError(f"outbox {path}: sqlite cannot use it ({text}); {hint}")


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")

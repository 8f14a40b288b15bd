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
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of the outbox file; a file with another version is refused."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    created_at REAL NOT NULL
)
"""

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


class OutboxInUseError(RuntimeError):
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


class Outbox:
    """A bounded, durable FIFO of messages in one SQLite file (thread-safe).

    Args:
        path: the database file; its folder is created.
        max_events: bound: :meth:`add` raises :class:`OutboxFullError` when this many wait.
        synchronous: ``"full"`` or ``"normal"`` (see the module docstring).

    Raises:
        OutboxInUseError: another process has the outbox open.
        sqlite3.DatabaseError: the file is not an outbox (or not a database).
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = _lock_exclusive(self.path.with_name(self.path.name + ".lock"))
        try:
            self._db = _open_database(self.path, synchronous)
        except BaseException:
            self._lock_file.close()
            raise
        self._lock = threading.Lock()
        self._depth = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        self._closed = False
        if self._depth:
            logger.info("outbox %s: %d events from an earlier run wait", self.path, self._depth)

    @property
    def depth(self) -> int:
        """Messages stored and not yet acknowledged."""
        return self._depth

    def add(self, topic: str, payload: bytes, qos: int) -> int:
        """Store one message; it is durable (committed) when this returns.

        Args:
            topic: MQTT topic.
            payload: message bytes.
            qos: 1 or 2.

        Returns:
            The row id.

        Raises:
            OutboxFullError: ``bound`` messages already wait; nothing was stored.
        """
        with self._lock:
            self._check_open()
            if self._depth >= self.bound:
                raise OutboxFullError(self._depth, self.bound)
            cursor = self._db.execute(
                "INSERT INTO outbox (topic, payload, qos, created_at) VALUES (?, ?, ?, ?)",
                (topic, payload, qos, time.time()),
            )
            self._depth += 1
            row_id = cursor.lastrowid
        if row_id is None:  # pragma: no cover - sqlite3 always sets it after an INSERT
            raise RuntimeError("sqlite3 returned no row id for an INSERT")
        return row_id

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


def _open_database(path: Path, synchronous: str) -> sqlite3.Connection:
    # Autocommit (isolation_level=None): each INSERT is its own committed transaction;
    # batches use an explicit BEGIN (see _transaction).
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            logger.warning("outbox %s: journal mode %s, expected wal", path, mode)
        db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        has_table = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox'"
        ).fetchone()
        if has_table and version != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"{path}: outbox schema version {version}, expected {SCHEMA_VERSION}"
            )
        with _transaction(db):
            db.execute(_SCHEMA)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        db.close()
        raise
    return db


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")

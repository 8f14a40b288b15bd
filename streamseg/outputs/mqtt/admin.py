"""An outbox file seen from outside the run: what waits in it, and quarantined events put back.

``streamseg outbox`` (:mod:`streamseg.cli`) uses these:

- :func:`read_outbox` reads an outbox without taking it: a read-only SQLite connection, so it
  works while ``streamseg run`` holds the file (WAL mode lets a reader in beside the writer) and
  changes no data (sqlite may create the ``-wal`` and ``-shm`` files beside a stopped outbox).
  It says whether a run holds the file (its ``.lock``, read from ``/proc/locks``), how many
  events wait (per topic, stored when), the first of them in line, and what the quarantine file
  holds.
- :func:`requeue_quarantined` moves the events of ``<outbox>.quarantine.jsonl`` back into the
  outbox, for a run to send: after the broker's limit was raised, or its ACL fixed. It takes
  the outbox's lock, so it refuses while a run holds the file, and reads the quarantine file
  under it. The rows are committed in one transaction, then the quarantine file is renamed
  ``<name>.requeued-<UTC time>`` (kept for the record). A crash between the two leaves the
  events in both places: a second requeue would store them twice, and consumers, who
  deduplicate on ``event_id`` (at-least-once delivery), see them once. A line a run could not
  send (a topic with a wildcard, a QoS other than 1 or 2, a time that is no date) stops it,
  nothing changed.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import logging
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamseg.outputs.mqtt.outbox import (
    Outbox,
    OutboxError,
    OutboxFullError,
    OutboxInUseError,
    check_outbox_schema,
    quarantine_path_of,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WaitingEvent:
    """One message waiting in an outbox, with what its payload says of the event.

    Attributes:
        row_id: its place in the outbox (sent in this order).
        topic: the topic it goes out on.
        created_at: UNIX seconds when it was stored.
        size: payload bytes.
        event_id: the payload's ``event_id`` (None: not an event's JSON).
        rule_id: the payload's ``rule_id``.
        type: the payload's ``type`` (``start``, ``update``, ``end``).
        stream_id: the payload's ``stream_id``.
    """

    row_id: int
    topic: str
    created_at: float
    size: int
    event_id: str | None
    rule_id: str | None
    type: str | None
    stream_id: str | None


@dataclass(frozen=True)
class QuarantinedEvent:
    """One line of a quarantine file (:meth:`Outbox.quarantine` writes them).

    Attributes:
        line: its line number in the file, from 1.
        topic: the topic it was to go out on.
        qos: its QoS.
        created_at: UNIX seconds when the outbox stored it.
        reason: why it was set aside (``too_large``, ``disconnects``, ``rejected``).
        payload: the message.
    """

    line: int
    topic: str
    qos: int
    created_at: float
    reason: str
    payload: bytes


@dataclass(frozen=True)
class QuarantineFile:
    """What a quarantine file holds.

    Attributes:
        path: the file (``<outbox>.quarantine.jsonl``).
        events: its readable lines, in file order.
        unreadable: the numbers of the lines that are not a quarantined event's JSON.
    """

    path: Path
    events: list[QuarantinedEvent] = field(default_factory=list)
    unreadable: list[int] = field(default_factory=list)

    @property
    def by_reason(self) -> dict[str, int]:
        """Events per reason."""
        return dict(Counter(event.reason for event in self.events))


@dataclass(frozen=True)
class OutboxReport:
    """An outbox file as :func:`read_outbox` found it.

    Attributes:
        path: the outbox file.
        exists: whether the file is there (a pipeline that never ran has none).
        in_use: whether a running streamseg holds it (its lock is taken).
        depth: events waiting.
        by_topic: events waiting per topic.
        oldest_created_at: when the oldest waiting event was stored (None: none wait).
        newest_created_at: when the newest was stored.
        first: the first waiting events in line (the order they are sent), at most the
            ``limit`` asked for.
        quarantine: what the quarantine file beside it holds.
        open_occurrences: occurrences with a ``start`` and no ``end`` stored yet: open in the
            run that holds the file, or, with none running, left open by one that died or could
            not store their end (the next start ends them with ``reason: interrupted``).
    """

    path: Path
    exists: bool
    in_use: bool
    depth: int
    by_topic: dict[str, int]
    oldest_created_at: float | None
    newest_created_at: float | None
    first: list[WaitingEvent]
    quarantine: QuarantineFile
    open_occurrences: int = 0

    def to_json(self) -> dict[str, object]:
        """The report as JSON-ready data (``streamseg outbox --json``)."""
        return {
            "path": str(self.path),
            "exists": self.exists,
            "in_use": self.in_use,
            "depth": self.depth,
            "by_topic": self.by_topic,
            "oldest_created_at": self.oldest_created_at,
            "newest_created_at": self.newest_created_at,
            "first": [vars(event) for event in self.first],
            "open_occurrences": self.open_occurrences,
            "quarantine": {
                "path": str(self.quarantine.path),
                "events": len(self.quarantine.events),
                "by_reason": self.quarantine.by_reason,
                "unreadable_lines": self.quarantine.unreadable,
            },
        }


def read_outbox(path: str | Path, limit: int = 0) -> OutboxReport:
    """Read an outbox file without taking it (see the module docstring).

    Args:
        path: the outbox file.
        limit: how many waiting events to list, first in line first.

    Raises:
        OutboxError: the file is not an outbox of this version, or sqlite cannot read it.
    """
    path = Path(path)
    quarantine = read_quarantine(quarantine_path_of(path))
    if path.is_dir():
        raise OutboxError(f"outbox {path}: is a folder; expected the outbox file")
    if not path.exists() or path.stat().st_size == 0:  # an empty file is an empty outbox
        return OutboxReport(path, path.exists(), False, 0, {}, None, None, [], quarantine)
    in_use = _held(path.with_name(path.name + ".lock"))
    try:
        by_topic, oldest_at, newest_at, rows, open_count = _read_rows(path, limit, in_use)
    except sqlite3.Error as exc:
        raise OutboxError(
            f"outbox {path}: sqlite cannot read it ({exc}); a run reports what to do with a "
            "damaged file when it starts"
        ) from exc
    first = [
        _waiting(int(row_id), str(topic), float(created), bytes(payload))
        for row_id, topic, created, payload in rows
    ]
    return OutboxReport(
        path,
        True,
        in_use,
        sum(by_topic.values()),
        by_topic,
        None if oldest_at is None else float(oldest_at),
        None if newest_at is None else float(newest_at),
        first,
        quarantine,
        open_count,
    )


_Rows = tuple[dict[str, int], float | None, float | None, list[tuple[Any, ...]], int]
"""What :func:`_read_rows` reads."""


def _read_rows(path: Path, limit: int, in_use: bool) -> _Rows:
    """Counts per topic, the oldest and newest ``created_at``, the first ``limit`` rows and the
    open occurrences, as of one moment (one read transaction: a run writing meanwhile cannot
    make the report contradict itself).

    A read-only connection to a WAL database needs its ``-shm`` file, which sqlite creates
    beside it when missing (a stopped run leaves none): a user who may not write that folder
    still reads a file no run holds, as immutable, when it has no write-ahead log to apply.
    """
    try:
        db = _connect(path, "mode=ro")
        try:
            return _query(db, path, limit)
        finally:
            db.close()
    except sqlite3.OperationalError:
        wal = path.with_name(path.name + "-wal")
        if in_use or (wal.exists() and wal.stat().st_size > 0):
            raise
    db = _connect(path, "immutable=1")
    try:
        return _query(db, path, limit)
    finally:
        db.close()


def _connect(path: Path, flags: str) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?{flags}", uri=True, isolation_level=None)


def _query(db: sqlite3.Connection, path: Path, limit: int) -> _Rows:
    db.execute("BEGIN")
    try:
        tables = check_outbox_schema(db, path)
        by_topic = {
            str(topic): int(count)
            for topic, count in db.execute(
                "SELECT topic, COUNT(*) FROM outbox GROUP BY topic ORDER BY topic"
            )
        }
        oldest_at, newest_at = db.execute(
            "SELECT MIN(created_at), MAX(created_at) FROM outbox"
        ).fetchone()
        rows = db.execute(
            "SELECT id, topic, created_at, payload FROM outbox ORDER BY id LIMIT ?",
            (max(0, limit),),
        ).fetchall()
        open_count = 0
        if "open_occurrences" in tables:  # an outbox from before the table was added has none
            open_count = int(db.execute("SELECT COUNT(*) FROM open_occurrences").fetchone()[0])
    finally:
        db.execute("COMMIT")
    return by_topic, oldest_at, newest_at, rows, open_count


def read_quarantine(path: Path) -> QuarantineFile:
    """Read a quarantine file; a missing file holds nothing.

    Raises:
        OutboxError: the file exists and cannot be read.
    """
    if not path.exists():
        return QuarantineFile(path)
    events: list[QuarantinedEvent] = []
    unreadable: list[int] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise OutboxError(
            f"quarantine file {path}: cannot read it ({exc.strerror or exc})"
        ) from exc
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(_quarantined(number, json.loads(line)))
        except (ValueError, TypeError, KeyError, OverflowError, OSError):
            unreadable.append(number)
    return QuarantineFile(path, events, unreadable)


def requeue_quarantined(path: str | Path, max_events: int = 100_000) -> int:
    """Move the quarantined events of the outbox at ``path`` back into it (see the module
    docstring). They go out after the events waiting now, with their first ``created_at``.

    Args:
        path: the outbox file (it is created when missing, as a run would).
        max_events: the outbox's bound (``outputs.mqtt.outbox.max_events``): the events are
            put back only if all of them fit under it.

    Returns:
        How many events were put back (0: the quarantine file is missing or empty; it is left
        as it is).

    Raises:
        OutboxInUseError: a run holds the outbox; nothing was changed.
        OutboxError: the outbox cannot be opened, a line of the quarantine file is not a
            quarantined event, or the events would not fit under ``max_events``; nothing was
            changed.
    """
    path = Path(path)
    if not _has_lines(quarantine_path_of(path)):
        return 0
    try:
        outbox = Outbox(path, max_events=max_events)
    except OutboxInUseError:
        raise OutboxInUseError(
            f"outbox {path} is held by a running streamseg (its lock); stop that pipeline, "
            "then put the quarantined events back: nothing was changed"
        ) from None
    with outbox:  # the quarantine file is read and renamed under the lock a run would take
        quarantine = read_quarantine(outbox.quarantine_path)
        if quarantine.unreadable:
            lines = ", ".join(str(number) for number in quarantine.unreadable[:10])
            raise OutboxError(
                f"quarantine file {quarantine.path}: line(s) {lines} are not quarantined "
                "events (JSON with a topic without wildcards, qos 1 or 2, a created_at time "
                "and a payload); nothing was put back (mend or remove those lines and try "
                "again)"
            )
        if not quarantine.events:
            return 0
        try:
            outbox.restore(
                (event.topic, event.payload, event.qos, event.created_at)
                for event in quarantine.events
            )
        except OutboxFullError as exc:
            raise OutboxError(
                f"outbox {path}: {len(quarantine.events)} quarantined events do not fit: "
                f"{exc.depth} events wait and the bound is {exc.bound} "
                "(outputs.mqtt.outbox.max_events); nothing was put back"
            ) from None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        kept = quarantine.path.with_name(f"{quarantine.path.name}.requeued-{stamp}")
        quarantine.path.rename(kept)
    logger.info(
        "outbox %s: %d quarantined events put back; the quarantine file is now %s",
        path,
        len(quarantine.events),
        kept,
    )
    return len(quarantine.events)


def _has_lines(path: Path) -> bool:
    """Whether the quarantine file at ``path`` exists and is not empty."""
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def _quarantined(number: int, entry: Any) -> QuarantinedEvent:
    """Line ``number`` of a quarantine file as an event a run can send.

    Raises:
        ValueError, TypeError, KeyError, OverflowError, OSError: it is not: a topic that is
            empty or has a wildcard (paho refuses to publish it, and it would hold back every
            event behind it), a QoS other than 1 or 2, a time that is no date.
    """
    topic, payload = _text(entry["topic"]), _text(entry["payload"])
    if not topic or "+" in topic or "#" in topic or "\0" in topic:
        raise ValueError(f"not a topic to publish on: {topic!r}")
    qos = entry["qos"]
    if qos not in (1, 2) or isinstance(qos, bool):
        raise ValueError(f"qos {qos!r}: expected 1 or 2")
    created_at = float(entry["created_at"])
    datetime.datetime.fromtimestamp(created_at, datetime.timezone.utc)  # a date, or it raises
    return QuarantinedEvent(
        number, topic, int(qos), created_at, str(entry.get("reason", "")), payload.encode()
    )


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _waiting(row_id: int, topic: str, created_at: float, payload: bytes) -> WaitingEvent:
    """A waiting message with what its payload says of its event (nothing, if not JSON)."""
    try:
        data = json.loads(payload)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        data = {}
    fields = {
        key: None if data.get(key) is None else str(data[key])
        for key in ("event_id", "rule_id", "type", "stream_id")
    }
    return WaitingEvent(row_id, topic, created_at, len(payload), **fields)


PROC_LOCKS = Path("/proc/locks")
"""Linux's table of file locks: who holds a ``flock`` can be read there without taking it."""


def _held(lock_path: Path) -> bool:
    """Whether a process holds ``lock_path``'s ``flock`` (a run has the outbox).

    Read from :data:`PROC_LOCKS` (an ``FLOCK`` entry on the file's inode), which takes nothing:
    trying the lock instead would hold it for an instant, and a ``streamseg run`` starting in
    that instant would find its outbox in use and stop. Where that table cannot be read, the
    lock is tried (shared, non-blocking) and let go at once.
    """
    try:
        inode = lock_path.stat().st_ino
    except OSError:
        return False
    try:
        table = PROC_LOCKS.read_text()
    except OSError:
        table = None
    if table is not None:
        # "1: FLOCK  ADVISORY  WRITE 8895 fe:00:2383875 0 EOF": the inode ends the 6th field.
        # Only the inode is compared: inside a container the device numbers of this table
        # need not be those stat() reports.
        return any(
            fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode)
            for fields in (line.split() for line in table.splitlines())
            if len(fields) >= 6
        )
    try:
        handle = lock_path.open("r")
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False

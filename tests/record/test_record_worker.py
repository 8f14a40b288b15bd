"""The background worker: handing it work never blocks; what it drops is counted."""

from __future__ import annotations

import errno
import logging
import threading
import time

import pytest

from streamseg.record import worker as worker_module
from streamseg.record.worker import BackgroundWorker


def test_full_queue_drops_and_counts_without_blocking() -> None:
    """A consumer stuck on its first item, fed 60 items at once: the producer never waits."""
    handled: list[int] = []
    closed = threading.Event()
    release = threading.Event()

    def stuck(item: int) -> None:
        release.wait(10)
        handled.append(item)

    worker: BackgroundWorker[int] = BackgroundWorker("slow", stuck, 4, on_close=closed.set)
    queued: list[bool] = []
    producer = threading.Thread(target=lambda: queued.extend(worker.put(i) for i in range(60)))
    producer.start()
    # The consumer holds its first item until released: a put that waited for room would still
    # be waiting when the join gives up (no timing of single calls, which a busy host upsets).
    producer.join(timeout=5)
    assert not producer.is_alive() and len(queued) == 60
    assert 4 <= sum(queued) <= 5  # the 4 pending ones, and the held one if taken in time
    release.set()
    worker.put_control(-1)  # control items are never dropped, even with a full queue
    assert worker.close(timeout=10)
    stats = worker.stats()
    assert stats.dropped > 40 and stats.accepted + stats.dropped == 61
    assert stats.handled == stats.accepted == len(handled) and handled[-1] == -1
    assert handled[:-1] == sorted(handled[:-1])  # order kept
    assert closed.is_set() and stats.pending == 0
    assert not worker.put(99)  # closed: refused and counted
    with pytest.raises(RuntimeError, match="closed"):
        worker.put_control(100)


def test_waiting_put_loses_nothing() -> None:
    handled: list[int] = []

    def slowish(item: int) -> None:
        time.sleep(0.002)
        handled.append(item)

    worker: BackgroundWorker[int] = BackgroundWorker("lossless", slowish, 2)
    for i in range(30):
        assert worker.put(i, wait=True)
    worker.close()
    assert handled == list(range(30)) and worker.stats().dropped == 0


def test_a_failing_item_is_counted_and_the_worker_goes_on() -> None:
    handled: list[int] = []

    def fragile(item: int) -> None:
        if item == 2:
            raise OSError("disk full")
        handled.append(item)

    worker: BackgroundWorker[int] = BackgroundWorker("fragile", fragile, 10)
    for i in range(5):
        worker.put(i)
    worker.close()
    assert handled == [0, 1, 3, 4] and worker.stats().errors == 1


def test_max_pending_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_pending"):
        BackgroundWorker("x", lambda i: None, 0)


def test_a_full_disk_is_one_error_not_one_per_segment_file(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: errors were told apart by file name, and a full disk fails each new segment
    file (a new name every segment): one ERROR per segment, about 43,000 a day at 2 s
    keyframes, each saying that further errors would only be counted."""
    clock = [1000.0]
    monkeypatch.setattr(worker_module.time, "monotonic", lambda: clock[0])

    def full(item: int) -> None:
        clock[0] += 60.0  # a new segment a minute
        raise OSError(errno.ENOSPC, "No space left on device", f"/rec/yard/seg{item}.mp4")

    caplog.set_level(logging.DEBUG, logger="streamseg.record.worker")
    worker: BackgroundWorker[int] = BackgroundWorker("record-yard", full, 200)
    for i in range(130):  # 130 minutes
        worker.put(i)
    worker.close()
    assert worker.stats().errors == 130
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 3, errors  # the first, then once an hour
    assert errors[0].startswith("record-yard: cannot write the recording: [Errno 28]")
    assert "logged again at most every 3600 s" in errors[0]
    assert errors[1].startswith("record-yard: still cannot write the recording: [Errno 28]")
    assert "(60 more errors of this kind in the last 3600 s)" in errors[1]
    assert all(r.exc_info is None for r in caplog.records)
    # Another folder (or another errno) is another kind: said at once.
    caplog.clear()

    def elsewhere(item: int) -> None:
        raise OSError(errno.EROFS, "Read-only file system", f"/{item}/seg.mp4")

    worker = BackgroundWorker("record-yard", elsewhere, 10)
    for i in range(2):
        worker.put(i)
    worker.close()
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 2

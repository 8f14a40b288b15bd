"""The background worker: handing it work never blocks; what it drops is counted."""

from __future__ import annotations

import threading
import time

import pytest

from streamseg.record.worker import BackgroundWorker


def test_full_queue_drops_and_counts_without_blocking() -> None:
    """A slow consumer (20 ms per item) fed 60 items at once: the producer never waits."""
    handled: list[int] = []
    closed = threading.Event()

    def slow(item: int) -> None:
        time.sleep(0.02)
        handled.append(item)

    worker: BackgroundWorker[int] = BackgroundWorker("slow", slow, 4, on_close=closed.set)
    waits = []
    for i in range(60):
        start = time.perf_counter()
        worker.put(i)
        waits.append(time.perf_counter() - start)
    # Each put returns at once while the consumer sleeps: none waits for one item's 20 ms.
    assert max(waits) < 0.015 and sum(waits) < 0.1
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

"""Default CPU threads and inference workers follow the CPUs this process may use."""

from __future__ import annotations

import pytest

from streamseg.models import device


@pytest.mark.parametrize(
    ("cpus", "threads", "workers"), [(2, 1, 2), (16, 8, 2), (16, 1, 16), (1, 1, 1), (4, 8, 1)]
)
def test_cpu_workers_fill_the_cpus_at_the_given_threads(
    monkeypatch: pytest.MonkeyPatch, cpus: int, threads: int, workers: int
) -> None:
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda _pid: set(range(cpus)))
    assert device.default_inference_workers("cpu", threads) == workers
    assert device.default_cpu_threads() == max(1, cpus // 2)


def test_one_worker_on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda _pid: set(range(16)))
    assert device.default_inference_workers("cuda", 1) == 1

"""Per-stage timings collected while a pipeline runs."""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageSummary:
    """Latency summary of one stage over the retained window, in milliseconds."""

    stage: str
    count: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    max_ms: float


class StageTimings:
    """Thread-safe store of recent durations per stage.

    Args:
        window: how many recent durations each stage keeps for percentiles.
    """

    def __init__(self, window: int = 2048) -> None:
        self._window = window
        self._samples: dict[str, deque[float]] = {}
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def record(self, stage: str, seconds: float) -> None:
        """Add one duration (seconds) for ``stage``."""
        with self._lock:
            if stage not in self._samples:
                self._samples[stage] = deque(maxlen=self._window)
                self._counts[stage] = 0
            self._samples[stage].append(seconds)
            self._counts[stage] += 1

    def summary(self) -> list[StageSummary]:
        """One summary per stage, in the order stages were first recorded."""
        with self._lock:
            items = [
                (k, np.asarray(v, dtype=np.float64), self._counts[k])
                for k, v in self._samples.items()
            ]
        out = []
        for stage, values, count in items:
            ms = values * 1000.0
            out.append(
                StageSummary(
                    stage=stage,
                    count=count,
                    mean_ms=float(ms.mean()),
                    p50_ms=float(np.percentile(ms, 50)),
                    p95_ms=float(np.percentile(ms, 95)),
                    max_ms=float(ms.max()),
                )
            )
        return out

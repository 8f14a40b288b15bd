"""Prometheus metrics of a running pipeline (served when ``metrics.enabled``).

Everything registers on the pipeline's own :class:`~prometheus_client.CollectorRegistry`, never on
prometheus_client's global one, so two pipelines in one process never clash. The MQTT publisher
adds its own (``streamseg_mqtt_*``) on the same registry (see ``streamseg.outputs.mqtt.metrics``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streamseg.rules.events import Event, EventType
from streamseg.runtime.health import OpsServer, ReadinessCheck
from streamseg.sources.base import SourceStats
from streamseg.types import SourceState

logger = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)

SourceStatsReader = Callable[[], Mapping[str, SourceStats]]
"""Each running source's :class:`SourceStats` by stream id (read at scrape time)."""

DropReader = Callable[[], Mapping[tuple[str, str], int]]
"""Frames dropped so far by ``(stream, stage)``; the stages are in :data:`DROP_STAGES`."""

DROP_STAGES = {
    "source": "a live source had no time for them (newest frame kept; frames its fps cap "
    "leaves out are streamseg_source_frames_skipped_fps_total, not drops)",
    "analytics": "a live stream's tracker, rules or sinks fell behind the model",
    "video": "the annotated-video encoder fell behind (live streams only)",
    "record": "the recorder's encoder fell behind (live streams only), or writing the "
    "recording failed (a full or unwritable disk)",
}
"""Where ``streamseg_frames_dropped_total{stage}`` counts a frame as dropped, and why."""

SOURCE_COUNTERS = {
    "frames_missing": "Frames a source's timestamps skip (lost or damaged data)",
    "frames_skipped_fps": "Decoded frames the source's fps cap left out",
    "corrupt_packets": "Packets the demuxer or decoder rejected as invalid data",
    "decode_errors": "Other decoder errors on a single packet",
    "reconnects": "Reconnect attempts after a lost or failed connection",
}
"""``streamseg_source_<name>_total{stream}``: the :class:`SourceStats` counters exported."""


class SourceStateGauge(Collector):
    """``streamseg_source_state{stream, state}``: 1 for each stream's current state, else 0.

    A custom collector rather than a labelled :class:`Gauge`, whose per-label ``set`` calls a
    scrape could fall between, showing a stream in two states or in none; here a scrape reads
    one consistent snapshot.
    """

    NAME = "streamseg_source_state"

    def __init__(self, registry: CollectorRegistry) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, SourceState] = {}
        registry.register(self)

    def set(self, stream_id: str, state: SourceState) -> None:
        """Make ``state`` the stream's current one."""
        with self._lock:
            self._states[stream_id] = state

    def describe(self) -> list[Metric]:
        return [GaugeMetricFamily(self.NAME, "1 for the source's current state")]

    def collect(self) -> list[Metric]:
        with self._lock:
            states = dict(self._states)
        family = GaugeMetricFamily(
            self.NAME, "1 for the source's current state", labels=["stream", "state"]
        )
        for stream_id, current in states.items():
            for state in SourceState:
                family.add_metric([stream_id, state.value], 1.0 if state is current else 0.0)
        return [family]


class RunCounters(Collector):
    """The counters the sources and outputs keep themselves, read at each scrape.

    - ``streamseg_frames_dropped_total{stream, stage}``: every dropped frame, by where it went
      (:data:`DROP_STAGES`); one alert on its rate catches them all.
    - ``streamseg_source_<name>_total{stream}`` for :data:`SOURCE_COUNTERS`, and the gauge
      ``streamseg_source_fps{stream}`` (decoded frames per second, recent).

    Reading the owners' counts at scrape time, rather than copying them into metrics on a
    timer, keeps a scrape current and the figures counters (they only grow). Every stream's
    series exist from its source's start, zeros included, so ``rate()`` sees the first drop.

    Args:
        registry: where to register.
        sources: :data:`SourceStatsReader`.
        drops: :data:`DropReader` for the stages other than ``source``.
    """

    def __init__(
        self, registry: CollectorRegistry, sources: SourceStatsReader, drops: DropReader
    ) -> None:
        self._sources = sources
        self._drops = drops
        registry.register(self)

    def describe(self) -> list[Metric]:
        dropped, fps, counters = self._families()
        return [dropped, fps, *counters]

    def collect(self) -> list[Metric]:
        dropped, fps, counters = self._families()
        for stream_id, stats in self._sources().items():
            dropped.add_metric([stream_id, "source"], stats.frames_dropped)
            fps.add_metric([stream_id], stats.fps)
            for family, name in zip(counters, SOURCE_COUNTERS, strict=True):
                family.add_metric([stream_id], getattr(stats, name))
        for (stream_id, stage), count in sorted(self._drops().items()):
            dropped.add_metric([stream_id, stage], count)
        return [dropped, fps, *counters]

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, GaugeMetricFamily, list[CounterMetricFamily]]:
        """Empty families: frames dropped, source fps, then :data:`SOURCE_COUNTERS`."""
        why = "; ".join(f"{stage}: {reason}" for stage, reason in DROP_STAGES.items())
        dropped = CounterMetricFamily(
            "streamseg_frames_dropped",
            f"Frames dropped, by stage ({why})",
            labels=["stream", "stage"],
        )
        fps = GaugeMetricFamily("streamseg_source_fps", "Measured source fps", labels=["stream"])
        counters = [
            CounterMetricFamily(f"streamseg_source_{name}", text, labels=["stream"])
            for name, text in SOURCE_COUNTERS.items()
        ]
        return dropped, fps, counters


class PipelineMetrics:
    """The pipeline's metrics in their own registry (two pipelines in a process never clash).

    Args:
        sources: the running sources' stats (:class:`RunCounters`); none by default.
        drops: frames dropped after the sources (:class:`RunCounters`); none by default.
    """

    def __init__(
        self, sources: SourceStatsReader | None = None, drops: DropReader | None = None
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames_processed = Counter(
            "streamseg_frames_processed", "Frames analysed", ["stream"], registry=r
        )
        self.run_counters = RunCounters(r, sources or dict, drops or dict)
        self.source_state = SourceStateGauge(r)
        self.detections = Counter(
            "streamseg_detections", "Detections produced", ["stream"], registry=r
        )
        self.inference_latency = Histogram(
            "streamseg_inference_seconds",
            "Forward + decode time per batch",
            registry=r,
            buckets=LATENCY_BUCKETS_S,
        )
        self.batch_size = Histogram(
            "streamseg_batch_size",
            "Frames per forward",
            registry=r,
            buckets=(1, 2, 3, 4, 6, 8, 16, 32),
        )
        self.stage_latency = Histogram(
            "streamseg_stage_seconds",
            "Analytics and sink time per frame",
            ["stage"],
            registry=r,
            buckets=LATENCY_BUCKETS_S,
        )
        self.events = Counter(
            "streamseg_events",
            "Event messages the rules raised",
            ["stream", "rule", "type"],
            registry=r,
        )
        self.failures = Counter(
            "streamseg_analytics_failures",
            "Frames on which a stage (tracker, rules) or a sink (sink.VideoWriter) raised",
            ["stream", "step"],
            registry=r,
        )

    def count_failure(self, stream_id: str, step: str) -> None:
        """One frame of ``stream_id`` on which ``step`` raised."""
        self.failures.labels(stream=stream_id, step=step).inc()

    def set_state(self, stream_id: str, state: SourceState) -> None:
        """Mark ``state`` as the stream's current one."""
        self.source_state.set(stream_id, state)

    def serve(self, host: str, port: int, readiness: ReadinessCheck) -> OpsServer:
        """Serve ``/metrics``, ``/healthz`` and ``/readyz`` from a daemon thread.

        Args:
            host: address to bind.
            port: TCP port; ``0`` lets the OS pick one (read it from the returned server).
            readiness: the check behind ``/readyz``.

        Returns:
            The running server; :meth:`OpsServer.stop` ends it.
        """
        return OpsServer(self.registry, readiness, host, port)


class EventCounter:
    """An event listener that counts every event message in ``streamseg_events_total``.

    Args:
        metrics: the pipeline's metrics.
    """

    def __init__(self, metrics: PipelineMetrics) -> None:
        self._events = metrics.events
        self._known: set[tuple[str, str]] = set()

    def on_event(self, event: Event) -> None:
        """Count one message by stream, rule and type (``start`` / ``update`` / ``end``)."""
        self._events.labels(stream=event.stream_id, rule=event.rule_id, type=event.type).inc()

    def on_rule_state(self, stream_id: str, rule_id: str, active: bool) -> None:
        """Rule states are not counted here (MQTT carries them); a rule's first state (told
        when its stream's rule engine is built, before any frame) creates its event series at
        0, so ``rate()`` and dashboards see the rule before its first event."""
        if (stream_id, rule_id) in self._known:
            return
        self._known.add((stream_id, rule_id))
        for event_type in get_args(EventType):
            self._events.labels(stream=stream_id, rule=rule_id, type=event_type)

    def on_zone_count(self, stream_id: str, zone_id: str, class_name: str, count: int) -> None:
        """Zone counts are not counted here (MQTT carries them)."""

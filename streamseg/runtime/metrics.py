"""Prometheus metrics of a running pipeline (served when ``metrics.enabled``).

Everything registers on the pipeline's own :class:`~prometheus_client.CollectorRegistry`, never on
prometheus_client's global one, so two pipelines in one process never clash. The MQTT publisher
adds its own (``streamseg_mqtt_*``) on the same registry (see ``streamseg.outputs.mqtt.metrics``).
"""

from __future__ import annotations

import logging
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streamseg.rules.events import Event
from streamseg.runtime.health import OpsServer, ReadinessCheck
from streamseg.types import SourceState

logger = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)


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


class PipelineMetrics:
    """The pipeline's metrics in their own registry (two pipelines in a process never clash)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames_processed = Counter(
            "streamseg_frames_processed", "Frames analysed", ["stream"], registry=r
        )
        self.frames_dropped = Gauge(
            "streamseg_source_frames_dropped", "Frames a source dropped", ["stream"], registry=r
        )
        self.frames_missing = Gauge(
            "streamseg_source_frames_missing",
            "Frames a source's timestamps skip (lost or damaged data)",
            ["stream"],
            registry=r,
        )
        self.source_fps = Gauge(
            "streamseg_source_fps", "Measured source fps", ["stream"], registry=r
        )
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

    def on_event(self, event: Event) -> None:
        """Count one message by stream, rule and type (``start`` / ``update`` / ``end``)."""
        self._events.labels(stream=event.stream_id, rule=event.rule_id, type=event.type).inc()

    def on_rule_state(self, stream_id: str, rule_id: str, active: bool) -> None:
        """Rule states are not counted here (MQTT carries them)."""

    def on_zone_count(self, stream_id: str, zone_id: str, class_name: str, count: int) -> None:
        """Zone counts are not counted here (MQTT carries them)."""

"""Prometheus metrics of a running pipeline (served when ``metrics.enabled``)."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from streamseg.types import SourceState

logger = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)


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
        self.source_fps = Gauge(
            "streamseg_source_fps", "Measured source fps", ["stream"], registry=r
        )
        self.source_state = Gauge(
            "streamseg_source_state",
            "1 for the source's current state",
            ["stream", "state"],
            registry=r,
        )
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

    def set_state(self, stream_id: str, state: SourceState) -> None:
        """Mark ``state`` as the stream's current one."""
        for s in SourceState:
            self.source_state.labels(stream=stream_id, state=s.value).set(1 if s is state else 0)

    def serve(self, host: str, port: int) -> None:
        """Start the HTTP endpoint (``/metrics``) in a daemon thread."""
        start_http_server(port, addr=host, registry=self.registry)
        logger.info("metrics on http://%s:%d/metrics", host, port)

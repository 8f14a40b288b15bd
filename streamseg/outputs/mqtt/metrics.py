"""Prometheus metrics of one MQTT publisher.

They register on the registry they are given (the pipeline's
:class:`~streamseg.runtime.metrics.PipelineMetrics` registry when it runs one), or on a private
registry, never on prometheus_client's global default: two publishers in one process (tests,
two pipelines) would otherwise clash on the metric names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

logger = logging.getLogger(__name__)


REFUSED_REASONS = ("full", "too_large", "error")
"""The ``reason`` labels of ``streamseg_mqtt_events_refused_total``."""

QUARANTINED_REASONS = ("too_large", "disconnects", "rejected")
"""The ``reason`` labels of ``streamseg_mqtt_events_quarantined_total``."""

REJECTED_REASONS = (
    "Unspecified error",
    "Implementation specific error",
    "Not authorized",
    "Topic name invalid",
    "Packet identifier in use",
    "Quota exceeded",
    "Payload format invalid",
)
"""The ``reason`` labels of ``streamseg_mqtt_events_rejected_total``: the refusals MQTT 5 allows
in a PUBACK, as paho names them."""

SNAPSHOT_SKIPPED_REASONS = ("too_large", "unreadable")
"""The ``reason`` labels of ``streamseg_mqtt_snapshots_skipped_total``."""


class MqttMetrics:
    """The publisher's counters and gauges.

    Args:
        depth: returns the number of events waiting in the outbox (read at scrape time).
        registry: where to register; ``None`` creates a private registry.

    Attributes:
        registry: the registry holding them.
        outbox_depth: events waiting in the outbox (gauge, read from ``depth``).
        outbox_full: 1 while the outbox is full (from the first refused event until it drains
            below its low-water mark), else 0.
        events_refused: events not stored, by ``reason``: ``full`` (bound reached),
            ``too_large`` (over ``max_payload_bytes``) or ``error`` (the database failed).
        events_acked: events the broker acknowledged (removed from the outbox).
        events_sent_unstored: events refused with ``error`` that were published anyway
            (connected at the time), without the outbox's guarantee.
        events_quarantined: events moved out of the outbox into its quarantine file, by
            ``reason``: ``too_large`` (stored by a run with a higher ``max_payload_bytes``) or
            ``disconnects`` (the broker dropped the connection every time it was sent) or
            ``rejected`` (the broker refused it as malformed: MQTT 5 ``Payload format invalid``).
        snapshots_skipped: snapshots not published, by ``reason``: ``too_large`` (over
            ``max_snapshot_bytes``) or ``unreadable`` (the file).
        events_rejected: events the broker acknowledged with a refusal (MQTT 5 reason code),
            by ``reason`` (the code's name, e.g. ``Not authorized``): they stay in the outbox
            and are sent again (:mod:`streamseg.outputs.mqtt.sender`).
        connected: 1 while connected to the broker.
    """

    def __init__(self, depth: Callable[[], float], registry: CollectorRegistry | None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.outbox_depth = Gauge(
            "streamseg_mqtt_outbox_depth", "Events waiting in the MQTT outbox", registry=r
        )
        self.outbox_depth.set_function(depth)
        self.outbox_full = Gauge(
            "streamseg_mqtt_outbox_full", "1 while the MQTT outbox is full", registry=r
        )
        self.events_refused = Counter(
            "streamseg_mqtt_events_refused",
            "Events the MQTT outbox could not store",
            ["reason"],
            registry=r,
        )
        self.events_acked = Counter(
            "streamseg_mqtt_events_acked", "Events the MQTT broker acknowledged", registry=r
        )
        self.events_sent_unstored = Counter(
            "streamseg_mqtt_events_sent_unstored",
            "Events the outbox could not store (a disk error) published directly, without its "
            "guarantee",
            registry=r,
        )
        self.events_quarantined = Counter(
            "streamseg_mqtt_events_quarantined",
            "Events moved out of the MQTT outbox into its quarantine file",
            ["reason"],
            registry=r,
        )
        self.snapshots_skipped = Counter(
            "streamseg_mqtt_snapshots_skipped",
            "Snapshots not published over MQTT",
            ["reason"],
            registry=r,
        )
        self.events_rejected = Counter(
            "streamseg_mqtt_events_rejected",
            "Event publishes the MQTT broker refused (MQTT 5 reason code); the events stay in "
            "the outbox",
            ["reason"],
            registry=r,
        )
        self.connected = Gauge(
            "streamseg_mqtt_connected", "1 while connected to the MQTT broker", registry=r
        )
        # Every reason's series exists at 0 from the start: an increase() alert sees the first
        # refusal (a series that appears with its first increment shows no increase).
        for counter, reasons in (
            (self.events_refused, REFUSED_REASONS),
            (self.events_quarantined, QUARANTINED_REASONS),
            (self.events_rejected, REJECTED_REASONS),
            (self.snapshots_skipped, SNAPSHOT_SKIPPED_REASONS),
        ):
            for reason in reasons:
                counter.labels(reason=reason)

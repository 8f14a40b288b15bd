"""MQTT alerts: events through a durable SQLite outbox, retained state topics, a last will.

Typical use (the runtime does this when ``outputs.mqtt`` is set)::

    publisher = build_mqtt_publisher(pipeline_config, registry=metrics.registry)
    if publisher is not None:
        publisher.start()
        source.add_state_listener(publisher.on_source_state)
        ...  # rules call publisher.on_event / on_rule_state / on_zone_count
        publisher.close(timeout=5.0)

Topics: :mod:`streamseg.outputs.mqtt.topics`; Home Assistant discovery (``home_assistant:``
in the section): :mod:`streamseg.outputs.mqtt.discovery`. Delivery is at-least-once: consumers
deduplicate on ``(event_id, type, seq)``.
"""

from streamseg.outputs.mqtt.build import (
    build_mqtt_publisher,
    default_client_id,
    default_outbox_path,
    default_topic_prefix,
)
from streamseg.outputs.mqtt.discovery import (
    DiscoveryMessage,
    HomeAssistantDiscovery,
    discovery_for_pipeline,
)
from streamseg.outputs.mqtt.outbox import (
    Outbox,
    OutboxError,
    OutboxFullError,
    OutboxInUseError,
    OutboxRow,
)
from streamseg.outputs.mqtt.publisher import MqttPublisher
from streamseg.outputs.mqtt.topics import Topics, topic_level

__all__ = [
    "DiscoveryMessage",
    "HomeAssistantDiscovery",
    "MqttPublisher",
    "Outbox",
    "OutboxError",
    "OutboxFullError",
    "OutboxInUseError",
    "OutboxRow",
    "Topics",
    "build_mqtt_publisher",
    "default_client_id",
    "default_outbox_path",
    "default_topic_prefix",
    "discovery_for_pipeline",
    "topic_level",
]

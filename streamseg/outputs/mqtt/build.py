"""Build the MQTT publisher of a pipeline: resolve the defaults that depend on it."""

from __future__ import annotations

import logging
import re
import socket

from prometheus_client import CollectorRegistry

import streamseg
from streamseg.config.pipeline import PipelineConfig
from streamseg.outputs.mqtt.discovery import discovery_for_pipeline
from streamseg.outputs.mqtt.outbox import Outbox
from streamseg.outputs.mqtt.publisher import MqttPublisher

logger = logging.getLogger(__name__)

_CLIENT_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def default_client_id(pipeline_name: str, hostname: str) -> str:
    """``streamseg-<pipeline name>-<host name>``: stable across restarts, unique per machine.

    Characters other than letters, digits, ``_`` and ``-`` become ``-`` (some brokers accept
    only those).
    """
    host = _CLIENT_ID_UNSAFE.sub("-", hostname) or "host"
    return f"streamseg-{pipeline_name}-{host}"


def default_topic_prefix(pipeline_name: str) -> str:
    """``streamseg/<pipeline name>``."""
    return f"streamseg/{pipeline_name}"


def default_outbox_path(pipeline_name: str) -> str:
    """``out/<pipeline name>.outbox.sqlite3`` (relative to the working directory)."""
    return f"out/{pipeline_name}.outbox.sqlite3"


def build_mqtt_publisher(
    config: PipelineConfig, registry: CollectorRegistry | None = None
) -> MqttPublisher | None:
    """The pipeline's MQTT publisher, or ``None`` when ``outputs.mqtt`` is absent.

    Opens (creates) the outbox file; connects nothing: call :meth:`MqttPublisher.start`, then
    :meth:`MqttPublisher.close` at shutdown. With ``outputs.mqtt.home_assistant.enabled``, the
    publisher also gets the Home Assistant discovery settings, with the (stream, rule) pairs of
    ``config`` (a shard's copy: only its own streams).

    Args:
        config: the validated pipeline.
        registry: Prometheus registry for the publisher's metrics (the pipeline's
            ``PipelineMetrics.registry``); ``None`` = a private registry.

    Raises:
        OutboxInUseError: another process uses the same outbox file.
        ValueError: the TLS files cannot be loaded.
    """
    mqtt_config = config.outputs.mqtt
    if mqtt_config is None:
        return None
    client_id = mqtt_config.client_id or default_client_id(config.name, socket.gethostname())
    prefix = mqtt_config.topic_prefix or default_topic_prefix(config.name)
    discovery = discovery_for_pipeline(
        config, prefix, sw_version=getattr(streamseg, "__version__", None)
    )
    outbox = Outbox(
        mqtt_config.outbox.path or default_outbox_path(config.name),
        max_events=mqtt_config.outbox.max_events,
        synchronous=mqtt_config.outbox.synchronous,
    )
    try:
        return MqttPublisher(
            mqtt_config,
            client_id=client_id,
            topic_prefix=prefix,
            outbox=outbox,
            registry=registry,
            discovery=discovery,
        )
    except BaseException:
        outbox.close()
        raise

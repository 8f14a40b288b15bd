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
from streamseg.outputs.mqtt.stale import owned_topics
from streamseg.outputs.mqtt.topics import Topics
from streamseg.runtime.shard import Shard

logger = logging.getLogger(__name__)

_CLIENT_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def default_client_id(pipeline_name: str, hostname: str, shard: int | None = None) -> str:
    """``streamseg-<pipeline name>-<host name>``: stable across restarts, unique per machine;
    ``-shard<i>`` appended for one shard of several (two shards on one machine must not share
    a client id: the broker would disconnect one whenever the other connects).

    Characters other than letters, digits, ``_`` and ``-`` become ``-`` (some brokers accept
    only those).
    """
    host = _CLIENT_ID_UNSAFE.sub("-", hostname) or "host"
    suffix = "" if shard is None else f"-shard{shard}"
    return f"streamseg-{pipeline_name}-{host}{suffix}"


def default_topic_prefix(pipeline_name: str) -> str:
    """``streamseg/<pipeline name>``."""
    return f"streamseg/{pipeline_name}"


def topic_prefix_of(config: PipelineConfig) -> str:
    """The pipeline's topic prefix: ``outputs.mqtt.topic_prefix``, else
    :func:`default_topic_prefix` of its name."""
    mqtt_config = config.outputs.mqtt
    given = mqtt_config.topic_prefix if mqtt_config is not None else None
    return given or default_topic_prefix(config.name)


def default_outbox_path(pipeline_name: str, shard: int | str | None = None) -> str:
    """``out/<pipeline name>.outbox.sqlite3`` (relative to the working directory);
    ``out/<pipeline name>.shard<i>.outbox.sqlite3`` for one shard of several (``shard="*"``:
    the pattern of every shard's, for a glob)."""
    middle = "" if shard is None else f".shard{shard}"
    return f"out/{pipeline_name}{middle}.outbox.sqlite3"


def build_mqtt_publisher(
    config: PipelineConfig, registry: CollectorRegistry | None = None, shard: Shard | None = None
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
        shard: the shard this process runs (``--shard i/n``). With more than one shard, the
            process's availability and outbox topics, its client id (default or configured,
            ``-shard<i>`` appended) and its default outbox file are its own
            (``<prefix>/shards/<i>/available``, ``...-shard<i>``).

    Raises:
        OutboxInUseError: another process uses the same outbox file.
        OutboxError: the outbox file cannot be opened, or is not an outbox (the message says
            what to do).
        ValueError: the TLS files cannot be loaded.
    """
    mqtt_config = config.outputs.mqtt
    if mqtt_config is None:
        return None
    index = shard.index if shard is not None and shard.count > 1 else None
    client_id = mqtt_config.client_id or default_client_id(config.name, socket.gethostname(), index)
    if mqtt_config.client_id and index is not None:
        # Every shard reads the same file, and a client id is the broker's, not the machine's:
        # shards sharing one knocked each other off the broker once a second.
        client_id = f"{mqtt_config.client_id}-shard{index}"
        logger.info(
            "MQTT: client id %r for shard %d (outputs.mqtt.client_id + -shard<i>)", client_id, index
        )
    prefix = topic_prefix_of(config)
    discovery = discovery_for_pipeline(
        config, prefix, sw_version=getattr(streamseg, "__version__", None), shard=index
    )
    owned = None
    if mqtt_config.clear_stale_retained:
        owned = owned_topics(config, Topics(prefix, index), shard)
        if owned is None:
            logger.info(
                "MQTT: retained topics that earlier configurations left under %s/ are not "
                "cleared: the pipeline has no name, and every unnamed pipeline shares this "
                "prefix (set name, or outputs.mqtt.topic_prefix)",
                prefix,
            )
    outbox = Outbox(
        mqtt_config.outbox.path or default_outbox_path(config.name, index),
        max_events=mqtt_config.outbox.max_events,
        synchronous=mqtt_config.outbox.synchronous,
    )
    try:
        _warn_foreign_topics(outbox, Topics(prefix, index).events)
        return MqttPublisher(
            mqtt_config,
            client_id=client_id,
            topic_prefix=prefix,
            outbox=outbox,
            registry=registry,
            discovery=discovery,
            shard=index,
            owned=owned,
        )
    except BaseException:
        outbox.close()
        raise


def _warn_foreign_topics(outbox: Outbox, events_topic: str) -> None:
    """Warn about waiting events an earlier run stored for another topic (a renamed pipeline,
    another ``topic_prefix``, another shard): they go out on that topic, as stored, where
    consumers of ``events_topic`` never see them."""
    foreign = {t: n for t, n in outbox.waiting_by_topic().items() if t != events_topic}
    if foreign:
        listing = ", ".join(f"{n} on {t}" for t, n in sorted(foreign.items()))
        logger.warning(
            "outbox %s holds events an earlier run stored for other topics than %s (%s): they "
            "are published on those topics as stored; give each pipeline its own outbox path",
            outbox.path,
            events_topic,
            listing,
        )

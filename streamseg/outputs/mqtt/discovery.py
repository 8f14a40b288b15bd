"""Home Assistant MQTT discovery: the config messages that make rules and counts entities.

Home Assistant's MQTT integration reads JSON configs on
``<discovery_prefix>/<component>/<node_id>/<object_id>/config`` (retained, so it finds them when
it starts) and creates one entity per config. streamseg publishes, per pipeline:

* a ``binary_sensor`` per (stream, rule): ``state_topic`` ``<prefix>/<stream>/<rule>/state``,
  ``payload_on`` ``ON``, ``payload_off`` ``OFF`` (an ``enter``, ``exit`` or ``cross`` rule
  reads ``ON`` for its ``state_hold_s`` after each occurrence, see
  :mod:`streamseg.rules.engine`);
* a ``sensor`` per zone count topic ``<prefix>/<stream>/<zone>/<class>/count``
  (``state_class: measurement``);
* a diagnostic ``enum`` ``sensor`` per stream on ``<prefix>/<stream>/status`` (the source
  state: ``connecting``, ``streaming``, ``stalled``, ``reconnecting``, ``ended``, ``stopped``,
  ``failed``),
  so an automation can tell that a camera is down;
* with ``outputs.mqtt.snapshots``, an ``image`` per (stream, rule) on
  ``<prefix>/<stream>/<rule>/snapshot``: the last event's snapshot, in a dashboard or a
  notification.

Every config lists two availability topics, both of which must say available
(``availability_mode: all``): the publishing process's (``online`` / ``offline``, the last
will): ``<prefix>/available``, or for a pipeline run as shards, ``<prefix>/shards/<i>/available``
of the shard that runs the entity's stream (see :class:`~streamseg.outputs.mqtt.topics.Topics`);
and the entity's stream's ``<prefix>/<stream>/status``, available only while ``streaming``. The
entities turn unavailable when their process stops or vanishes and while their camera is down
(a value a crashed run left retained is not shown as current), and one ``device`` per pipeline
groups them. Ids:

* ``node_id``: ``streamseg_<pipeline name>`` unless configured (``[A-Za-z0-9_-]`` only);
* ``object_id``: the state topic's levels under the prefix joined with ``_``, every character
  other than ``[A-Za-z0-9_-]`` turned into ``_`` (``gate/pen 1/cow/count`` ->
  ``gate_pen_1_cow_count``);
* ``unique_id``: ``<node_id>_<object_id>``: stable across restarts, so Home Assistant keeps the
  entity's name, area and history.

Everything here is pure: building a config touches no network and no clock.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from streamseg.config.pipeline import PipelineConfig
from streamseg.config.rules import rule_runs_on
from streamseg.outputs.mqtt.topics import OFFLINE, ONLINE, Topics
from streamseg.types import SourceState

logger = logging.getLogger(__name__)

MANUFACTURER: Final = "streamseg"
MODEL: Final = "video analytics pipeline"
PAYLOAD_ON: Final = "ON"
PAYLOAD_OFF: Final = "OFF"
PAYLOAD_AVAILABLE: Final = ONLINE.decode()
PAYLOAD_NOT_AVAILABLE: Final = OFFLINE.decode()
STREAMING_TEMPLATE: Final = (
    f"{{{{ '{PAYLOAD_AVAILABLE}' if value == '{SourceState.STREAMING.value}' "
    f"else '{PAYLOAD_NOT_AVAILABLE}' }}}}"
)
"""Maps a stream's ``status`` payload to the availability payloads: only ``streaming`` is
available (a camera ``connecting``, ``stalled``, ``reconnecting``, ``failed``, ``ended`` or
``stopped`` shows no current state)."""
DISCOVERY_QOS: Final = 1
"""Discovery configs go out at QoS 1 and retained, whatever ``state_qos`` and ``retain`` say."""

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def discovery_id(*parts: str) -> str:
    """``parts`` joined with ``_``, as a Home Assistant ``node_id`` / ``object_id``.

    Characters other than letters, digits, ``_`` and ``-`` become ``_`` (Home Assistant accepts
    only those in discovery topics); an empty result becomes ``_``.
    """
    return _ID_UNSAFE.sub("_", "_".join(parts)) or "_"


def default_node_id(pipeline_name: str) -> str:
    """``streamseg_<pipeline name>``, made discovery-safe."""
    return discovery_id("streamseg", pipeline_name)


@dataclass(frozen=True)
class DiscoveryMessage:
    """One retained discovery config.

    Attributes:
        topic: ``<discovery_prefix>/<component>/<node_id>/<object_id>/config``.
        payload: the JSON config, UTF-8.
        state_topic: the streamseg topic the entity reads.
    """

    topic: str
    payload: bytes
    state_topic: str


@dataclass(frozen=True)
class HomeAssistantDiscovery:
    """What every discovery config of one publisher shares, and the entities known up front.

    Build it with :func:`discovery_for_pipeline`; the publisher calls :meth:`rule_state` and
    :meth:`zone_count` for each state topic it publishes.

    Attributes:
        discovery_prefix: Home Assistant's discovery prefix, e.g. ``homeassistant``.
        node_id: discovery node id and device identifier (``[A-Za-z0-9_-]`` only).
        topic_prefix: the publisher's topic prefix, e.g. ``streamseg/yard``.
        device: the ``device`` block shared by every entity.
        origin: the ``origin`` block (who published the config).
        rules: the ``(stream id, rule id)`` pairs that run, in pipeline order.
        shard: the shard index of the process (``--shard i/n``, n > 1), else ``None``.
        streams: the streams this process runs (each gets a status sensor).
        snapshots: event snapshots are published (``outputs.mqtt.snapshots``): each rule and
            stream gets an ``image`` entity.
    """

    discovery_prefix: str
    node_id: str
    topic_prefix: str
    device: dict[str, Any] = field(hash=False)
    origin: dict[str, Any] = field(hash=False)
    rules: tuple[tuple[str, str], ...] = ()
    shard: int | None = None
    streams: tuple[str, ...] = ()
    snapshots: bool = False

    @property
    def availability_topic(self) -> str:
        """The process's ``available`` topic (:class:`Topics`): ``online`` / ``offline``, the
        last will."""
        return Topics(self.topic_prefix, self.shard).available

    def object_id(self, state_topic: str) -> str:
        """The state topic's levels under the prefix, as one discovery id."""
        relative = state_topic.removeprefix(f"{self.topic_prefix}/")
        return discovery_id(*relative.split("/"))

    def rule_state(self, stream_id: str, rule_id: str, state_topic: str) -> DiscoveryMessage:
        """The ``binary_sensor`` config of a rule's ``ON`` / ``OFF`` state on one stream.

        Args:
            stream_id: the stream (source id).
            rule_id: the rule id.
            state_topic: ``<prefix>/<stream>/<rule>/state``, as the publisher writes it.
        """
        config = {
            "name": f"{stream_id} {rule_id}",
            "state_topic": state_topic,
            "payload_on": PAYLOAD_ON,
            "payload_off": PAYLOAD_OFF,
        }
        return self._message("binary_sensor", stream_id, state_topic, config)

    def zone_count(
        self, stream_id: str, zone_id: str, class_name: str, state_topic: str
    ) -> DiscoveryMessage:
        """The ``sensor`` config of the count of one class in one zone of one stream.

        Args:
            stream_id: the stream (source id).
            zone_id: the zone id.
            class_name: the object class counted.
            state_topic: ``<prefix>/<stream>/<zone>/<class>/count``, as the publisher writes it.
        """
        config = {
            "name": f"{stream_id} {zone_id} {class_name} count",
            "state_topic": state_topic,
            "state_class": "measurement",
        }
        return self._message("sensor", stream_id, state_topic, config)

    def source_status(self, stream_id: str, state_topic: str) -> DiscoveryMessage:
        """The ``sensor`` config of a stream's source state (``streaming``, ``reconnecting``,
        ...), a diagnostic entity an automation can alert on when a camera goes down. It is
        available while the process is (not only while the stream streams: that is what it
        tells).

        Args:
            stream_id: the stream (source id).
            state_topic: ``<prefix>/<stream>/status``, as the publisher writes it.
        """
        config = {
            "name": f"{stream_id} status",
            "state_topic": state_topic,
            "device_class": "enum",
            "options": [state.value for state in SourceState],
            "entity_category": "diagnostic",
        }
        return self._message("sensor", stream_id, state_topic, config, stream_availability=False)

    def snapshot(self, stream_id: str, rule_id: str, image_topic: str) -> DiscoveryMessage:
        """The ``image`` config of a rule's latest event snapshot on one stream (the retained
        JPEG on ``<prefix>/<stream>/<rule>/snapshot``). Available while the process is: a
        snapshot is of a past event, whatever the camera does now.

        Args:
            stream_id: the stream (source id).
            rule_id: the rule id.
            image_topic: ``<prefix>/<stream>/<rule>/snapshot``, as the publisher writes it.
        """
        config = {
            "name": f"{stream_id} {rule_id} snapshot",
            "image_topic": image_topic,
            "content_type": "image/jpeg",
        }
        return self._message("image", stream_id, image_topic, config, stream_availability=False)

    def availability(self, stream_id: str) -> list[dict[str, str]]:
        """The ``availability`` of a stream's entities: the process's ``available`` topic and
        the stream's ``status`` topic, which reads available only while ``streaming`` (with
        ``availability_mode: all``, both must say so)."""
        return [
            {
                "topic": self.availability_topic,
                "payload_available": PAYLOAD_AVAILABLE,
                "payload_not_available": PAYLOAD_NOT_AVAILABLE,
            },
            {
                "topic": Topics(self.topic_prefix, self.shard).source_status(stream_id),
                "value_template": STREAMING_TEMPLATE,
                "payload_available": PAYLOAD_AVAILABLE,
                "payload_not_available": PAYLOAD_NOT_AVAILABLE,
            },
        ]

    def _message(
        self,
        component: str,
        stream_id: str,
        state_topic: str,
        config: dict[str, Any],
        stream_availability: bool = True,
    ) -> DiscoveryMessage:
        object_id = self.object_id(state_topic)
        availability = self.availability(stream_id)
        payload = {
            **config,
            "unique_id": f"{self.node_id}_{object_id}",
            "availability": availability if stream_availability else availability[:1],
            "availability_mode": "all",
            "device": self.device,
            "origin": self.origin,
        }
        topic = f"{self.discovery_prefix}/{component}/{self.node_id}/{object_id}/config"
        data = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
        return DiscoveryMessage(topic, data, state_topic)


def device_block(pipeline_name: str, node_id: str, sw_version: str | None) -> dict[str, Any]:
    """The ``device`` of every entity: one device per pipeline.

    Args:
        pipeline_name: the pipeline's ``name``.
        node_id: the identifier Home Assistant knows the device by.
        sw_version: streamseg's version; ``None`` leaves it out.
    """
    device: dict[str, Any] = {
        "identifiers": [node_id],
        "name": f"streamseg {pipeline_name}",
        "manufacturer": MANUFACTURER,
        "model": MODEL,
    }
    if sw_version is not None:
        device["sw_version"] = sw_version
    return device


def origin_block(sw_version: str | None) -> dict[str, Any]:
    """The ``origin`` of every config (Home Assistant logs which software published it)."""
    origin: dict[str, Any] = {"name": MANUFACTURER}
    if sw_version is not None:
        origin["sw_version"] = sw_version
    return origin


def rule_streams(config: PipelineConfig) -> Iterator[tuple[str, str]]:
    """The ``(stream id, rule id)`` pairs whose state the rule engine publishes.

    Args:
        config: the validated pipeline (a shard's copy lists only its own sources).
    """
    zones = {zone.id: zone for zone in config.zones}
    for source in config.sources:
        for rule in config.rules:
            if rule_runs_on(rule, zones, source.id):
                yield source.id, rule.id


def discovery_for_pipeline(
    config: PipelineConfig,
    topic_prefix: str,
    sw_version: str | None = None,
    shard: int | None = None,
) -> HomeAssistantDiscovery | None:
    """The discovery settings of a pipeline, or ``None`` when discovery is off (or no MQTT).

    Args:
        config: the validated pipeline (a shard's copy lists only its own sources).
        topic_prefix: the publisher's resolved topic prefix.
        sw_version: streamseg's version for the device and origin blocks.
        shard: the shard index of the process when the pipeline runs as several shards.
    """
    mqtt = config.outputs.mqtt
    if mqtt is None or not mqtt.home_assistant.enabled:
        return None
    settings = mqtt.home_assistant
    node_id = settings.node_id or default_node_id(config.name)
    return HomeAssistantDiscovery(
        discovery_prefix=settings.discovery_prefix,
        node_id=node_id,
        topic_prefix=topic_prefix,
        device=device_block(config.name, node_id, sw_version),
        origin=origin_block(sw_version),
        rules=tuple(rule_streams(config)),
        shard=shard,
        streams=tuple(source.id for source in config.sources),
        snapshots=mqtt.snapshots,
    )

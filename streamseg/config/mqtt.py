"""The ``outputs.mqtt`` section: the broker, credentials, topics, the durable outbox, and Home
Assistant discovery.

Defaults that depend on the pipeline or the machine (the client id, the topic prefix, the outbox
file, the port) stay ``None`` here; :func:`streamseg.outputs.mqtt.build_mqtt_publisher` resolves
them (validation stays pure: no hostname lookup, no file access).
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from typing_extensions import Self

from streamseg.config._base import (
    ConfigModel,
    Float,
    Identifier,
    Int,
    NonEmptyStr,
    none_as_empty,
)

logger = logging.getLogger(__name__)

DEFAULT_PORTS = {("tcp", False): 1883, ("tcp", True): 8883, ("websockets", False): 80}
"""Port used when ``port`` is null, by ``(transport, tls)``; websockets with TLS uses 443."""

TOPIC_WILDCARDS = "+#"

MAX_MQTT_PAYLOAD_BYTES = 268_435_455 - 2 - 65_535 - 2
"""The largest payload an MQTT 3.1.1 PUBLISH can carry with the longest topic: the remaining
length is at most 268,435,455 bytes and also holds the topic (2 + up to 65,535 bytes) and the
packet id (2)."""


class MqttTlsConfig(ConfigModel):
    """TLS towards the broker (server certificate check, optional client certificate)."""

    enabled: bool = Field(default=False, description="connect with TLS")
    ca_certs: NonEmptyStr | None = Field(
        default=None,
        description="CA bundle that signed the broker's certificate; null = system CAs",
    )
    certfile: NonEmptyStr | None = Field(
        default=None, description="client certificate (PEM) for brokers that require one"
    )
    keyfile: NonEmptyStr | None = Field(
        default=None, description="private key of certfile (PEM); null when certfile holds it"
    )
    keyfile_password: SecretStr | None = Field(
        default=None,
        description="password of an encrypted private key (use ${VAR}; never logged); an "
        "encrypted key without it is a clear error at start, never a prompt",
    )
    insecure: bool = Field(
        default=False,
        description="skip the broker hostname check (testing only: allows a man in the middle)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.keyfile is not None and self.certfile is None:
            raise ValueError("keyfile is set without certfile; expected both, or certfile alone")
        if self.keyfile_password is not None and self.certfile is None:
            raise ValueError(
                "keyfile_password is set without certfile; expected the client certificate "
                "(certfile, and keyfile unless certfile holds the key) it unlocks"
            )
        # The files without `enabled` would connect in plain text: most likely meant as TLS.
        # `enabled: false` written out is a deliberate switch that keeps them for later.
        if not self.enabled and "enabled" not in self.model_fields_set:
            set_keys = [
                key
                for key in ("ca_certs", "certfile", "keyfile", "keyfile_password", "insecure")
                if getattr(self, key) not in (None, False)
            ]
            if set_keys:
                raise ValueError(
                    f"{', '.join(set_keys)} set while enabled is false (the default); "
                    "expected enabled: true to use them (or enabled: false, written out, to "
                    "keep them switched off)"
                )
        return self


class MqttReconnectConfig(ConfigModel):
    """Back-off between connection attempts: doubles from ``min_delay_s`` up to ``max_delay_s``."""

    min_delay_s: Float = Field(default=1.0, gt=0, description="first retry delay, seconds")
    max_delay_s: Float = Field(default=60.0, gt=0, description="longest retry delay, seconds")

    @field_validator("max_delay_s")
    @classmethod
    def _max_not_below_min(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("min_delay_s")
        if low is not None and value < low:
            raise ValueError(f"expected max_delay_s >= min_delay_s ({low:g})")
        return value


class MqttOutboxConfig(ConfigModel):
    """The on-disk queue of events not yet acknowledged by the broker."""

    path: NonEmptyStr | None = Field(
        default=None,
        description="SQLite file; null = out/<pipeline name>.outbox.sqlite3 (use ${STATE_DIR}/...)",
    )
    max_events: Int = Field(
        default=100_000,
        ge=1,
        description="bound; when reached new events are refused (logged, counted, status topic)",
    )
    synchronous: Literal["full", "normal"] = Field(
        default="full",
        description="SQLite sync: full survives power loss; normal only a process crash",
    )


class MqttHomeAssistantConfig(ConfigModel):
    """Home Assistant MQTT discovery: the rules and zone counts appear as entities by themselves.

    When enabled, the publisher sends a retained discovery config (QoS 1) on every (re)connect:
    a ``binary_sensor`` per (stream, rule) on ``<prefix>/<stream>/<rule>/state``, and a
    ``sensor`` per zone count topic ``<prefix>/<stream>/<zone>/<class>/count`` (the first time
    that count is published: classes are only known once seen). Every entity belongs to one
    device per pipeline and is unavailable while ``<prefix>/available`` says ``offline`` (the
    last will). See :mod:`streamseg.outputs.mqtt.discovery`.

    Example::

        outputs:
          mqtt:
            home_assistant:
              enabled: true
              discovery_prefix: homeassistant   # Home Assistant's default
              node_id: streamseg_yard           # default streamseg_<pipeline name>
    """

    enabled: bool = Field(default=False, description="publish Home Assistant discovery configs")
    discovery_prefix: NonEmptyStr = Field(
        default="homeassistant",
        description="Home Assistant's discovery prefix (its MQTT integration setting)",
    )
    node_id: Identifier | None = Field(
        default=None,
        description="discovery node id and device identifier; null = streamseg_<pipeline name>",
    )

    @field_validator("discovery_prefix")
    @classmethod
    def _valid_discovery_prefix(cls, value: str) -> str:
        problems = check_topic_prefix(value)
        if problems:
            raise ValueError(f"expected a topic prefix such as homeassistant: {problems}")
        return value

    @model_validator(mode="after")
    def _keys_need_enabled(self) -> Self:
        # Keys without `enabled` look like discovery meant on; `enabled: false` written out is
        # the operator switching it off, the keys kept for later.
        if not self.enabled and "enabled" not in self.model_fields_set:
            set_keys = sorted(self.model_fields_set)
            if set_keys:
                raise ValueError(
                    f"{', '.join(set_keys)} set while enabled is false (the default); "
                    "expected enabled: true to use them (or enabled: false, written out, to "
                    "keep them switched off)"
                )
        return self


class MqttOutputConfig(ConfigModel):
    """Alerts over MQTT: events at QoS 1 through a durable outbox, retained state topics.

    ``max_payload_bytes`` and ``max_snapshot_bytes`` keep every message under the broker's
    maximum packet size (mosquitto ``max_packet_size``, EMQX 1 MB by default, AWS IoT 128 KB):
    a broker disconnects a client that sends a larger one, and a message sent again after every
    reconnect would then stop all delivery. Events are small JSON (a few KB), so their 256 KiB
    default leaves room; a snapshot is a JPEG of a whole frame, so its default is 1 MB.
    """

    host: NonEmptyStr = Field(default="localhost", description="broker host name or address")
    port: Int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="broker port; null = 1883, 8883 with TLS, 80/443 for websockets",
    )
    transport: Literal["tcp", "websockets"] = Field(default="tcp", description="MQTT transport")
    protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        description="MQTT version: 5 (the broker's acknowledgement says when it refuses an event, "
        "e.g. not authorized by its ACL: the event stays in the outbox and the refusal is "
        "logged and counted) or 3.1.1 (for a broker without MQTT 5; it acknowledges an event "
        "it refuses as if delivered)",
    )
    ws_path: NonEmptyStr = Field(default="/mqtt", description="websockets path on the broker")
    client_id: NonEmptyStr | None = Field(
        default=None,
        description="MQTT client id; null = streamseg-<pipeline name>-<host name> (stable)",
    )
    password: SecretStr | None = Field(
        default=None, description="password; write ${VAR} to take it from the environment"
    )
    # After ``password`` so its check can see it; validated even when absent.
    username: NonEmptyStr | None = Field(
        default=None, validate_default=True, description="user name for the broker"
    )
    tls: MqttTlsConfig = Field(default_factory=MqttTlsConfig, description="TLS settings")
    keepalive_s: Int = Field(
        default=30,
        ge=1,
        le=65535,
        description="keepalive; the broker sends the last will after 1.5x this of silence",
    )
    topic_prefix: NonEmptyStr | None = Field(
        default=None, description="first topic levels; null = streamseg/<pipeline name>"
    )
    qos: Int = Field(
        default=1,
        ge=1,
        le=2,
        description="QoS of event messages: 1 (2 only with protocol: 3.1.1: with MQTT 5 it would "
        "hide a broker's refusal)",
    )
    state_qos: Int = Field(
        default=1, ge=0, le=2, description="QoS of availability, state, count and status messages"
    )
    retain: bool = Field(
        default=True,
        description="retain availability, state, count and status (new subscribers see them)",
    )
    snapshots: bool = Field(
        default=False,
        description="publish outputs.record's event snapshots on <prefix>/<stream>/<rule>/snapshot",
    )
    clear_stale_retained: bool = Field(
        default=True,
        description="at the first connection, clear the retained topics under the prefix (and "
        "the Home Assistant configs of this pipeline) that no stream, rule or zone of the "
        "pipeline publishes any more; false when another program keeps retained topics of "
        "streamseg's layout under the same prefix",
    )
    max_payload_bytes: Int = Field(
        default=256 * 1024,
        ge=1,
        le=MAX_MQTT_PAYLOAD_BYTES,
        description="largest event message; a larger event is refused (logged, counted)",
    )
    max_snapshot_bytes: Int = Field(
        default=1_000_000,
        ge=1,
        le=MAX_MQTT_PAYLOAD_BYTES,
        description="largest snapshot JPEG published; a larger one is skipped with a warning",
    )
    max_inflight: Int = Field(
        default=100, ge=1, le=65535, description="messages sent and not yet acknowledged, at most"
    )
    reconnect: MqttReconnectConfig = Field(
        default_factory=MqttReconnectConfig, description="reconnect back-off"
    )
    outbox: MqttOutboxConfig = Field(
        default_factory=MqttOutboxConfig, description="durable queue of unacknowledged events"
    )
    home_assistant: MqttHomeAssistantConfig = Field(
        default_factory=MqttHomeAssistantConfig,
        description="Home Assistant MQTT discovery of rule states and zone counts (off by default)",
    )

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_number(cls, value: object) -> object:
        """``protocol: 5`` (a YAML number) is the version "5"."""
        if isinstance(value, int | float) and not isinstance(value, bool) and value == 5:
            return "5"
        return value

    _sections_none = field_validator("tls", "reconnect", "outbox", "home_assistant", mode="before")(
        none_as_empty
    )

    @field_validator("qos")
    @classmethod
    def _refusals_seen(cls, value: int, info: ValidationInfo) -> int:
        # protocol is declared before qos, so it is in info.data when it is valid.
        if value == 2 and info.data.get("protocol", "5") == "5":
            raise ValueError(
                "qos 2 would hide a broker's refusal of an event (paho drops the reason code "
                "of the PUBREC that answers it), so a refused event would leave the outbox as "
                "delivered; expected qos: 1 (consumers deduplicate on event_id), or protocol: "
                "3.1.1, where no acknowledgement says whether the broker took an event"
            )
        return value

    @field_validator("username")
    @classmethod
    def _username_with_password(cls, value: str | None, info: ValidationInfo) -> str | None:
        # The message never repeats the password.
        if value is None and info.data.get("password") is not None:
            raise ValueError("a password is set without a username; expected both")
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _valid_prefix(cls, value: str | None) -> str | None:
        if value is None:
            return value
        problems = check_topic_prefix(value)
        if problems:
            raise ValueError(f"expected a topic prefix such as streamseg/yard: {problems}")
        return value

    @model_validator(mode="after")
    def _discovery_needs_retain(self) -> Self:
        # Home Assistant reads availability and states from retained messages when it starts.
        if self.home_assistant.enabled and not self.retain:
            raise ValueError(
                "home_assistant.enabled needs retain: true (Home Assistant reads the retained "
                "availability, rule states and counts when it starts); expected retain: true"
            )
        return self

    def resolved_port(self) -> int:
        """``port``, or the usual port of the transport (with or without TLS)."""
        if self.port is not None:
            return self.port
        if self.transport == "websockets" and self.tls.enabled:
            return 443
        return DEFAULT_PORTS[(self.transport, self.tls.enabled)]


def check_topic_prefix(prefix: str) -> str:
    """What is wrong with a topic prefix, or ``""`` when it is fine.

    A prefix is one or more topic levels: no wildcards (``+``, ``#``), no empty level (a leading,
    trailing or doubled ``/``), no leading ``$`` (reserved for broker topics), no NUL.
    """
    if any(char in prefix for char in TOPIC_WILDCARDS):
        return "it contains a wildcard (+ or #)"
    if "\x00" in prefix:
        return "it contains a NUL character"
    if prefix.startswith("$"):
        return "it starts with $ (reserved for broker topics)"
    if "" in prefix.split("/"):
        return "it has an empty level (leading, trailing or doubled /)"
    return ""

"""The paho client of the MQTT publisher, configured from the ``outputs.mqtt`` section.

:func:`make_client` sets everything but the callbacks: transport, login, TLS, the last will,
the reconnect back-off and paho's logging. A TLS file that cannot be loaded is a
:class:`ValueError` naming the setting, raised when the publisher is built (before any frame).
"""

from __future__ import annotations

import logging
import ssl
from typing import Any, cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from streamseg.config.mqtt import MqttOutputConfig
from streamseg.outputs.mqtt.topics import OFFLINE

logger = logging.getLogger(__name__)


def make_client(config: MqttOutputConfig, client_id: str, will_topic: str | None) -> mqtt.Client:
    """A paho client (MQTT 5 or 3.1.1 as ``config.protocol`` says, callback API 2) for
    ``config``, not connected.

    Args:
        config: the ``outputs.mqtt`` section.
        client_id: MQTT client id (stable across restarts).
        will_topic: availability topic; the broker publishes ``offline`` there (retained as
            ``config.retain`` says) when the client vanishes. ``None``: no last will (a
            client that is not the pipeline, such as ``streamseg alert-test``).

    Raises:
        ValueError: the TLS files cannot be loaded (the message names the key).
    """
    v5 = config.protocol == "5"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        # The outbox is the durable state and events need no subscription, so a broker-side
        # session would hold nothing of use. (MQTT 5 has no clean_session: without a session
        # expiry interval its session ends with the connection.)
        clean_session=None if v5 else True,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        transport=config.transport,
        reconnect_on_failure=True,
    )
    # A bug in a callback must not end paho's network thread (and with it reconnecting).
    client.suppress_exceptions = True
    client.on_log = _log_paho
    if config.transport == "websockets":
        client.ws_set_options(path=config.ws_path)
    if config.username is not None:
        password = config.password.get_secret_value() if config.password else None
        client.username_pw_set(config.username, password)
    if config.tls.enabled:
        _configure_tls(client, config)
    if will_topic is not None:
        client.will_set(will_topic, OFFLINE, qos=config.state_qos, retain=config.retain)
    # paho types the delays as int; it computes with them as seconds, floats included.
    client.reconnect_delay_set(
        min_delay=cast(int, config.reconnect.min_delay_s),
        max_delay=cast(int, config.reconnect.max_delay_s),
    )
    # No window in paho: the sender keeps max_inflight events in flight itself, and a paho
    # window full of events would hold back the retained values behind them, among them
    # close()'s 'offline' (a clean disconnect then leaves 'online' retained).
    client.max_inflight_messages_set(0)
    return client


_PAHO_LOGGER = logging.getLogger(f"{__name__}.paho")
# paho reports these at error level on every lost connection and failed retry; the publisher
# already logs outages once, with what it means for the events.
_PAHO_ROUTINE_ERRORS = ("failed to receive on socket", "Client is not connected")


def _log_paho(client: mqtt.Client, userdata: Any, level: int, text: str) -> None:
    if level == mqtt.MQTT_LOG_ERR and not text.startswith(_PAHO_ROUTINE_ERRORS):
        _PAHO_LOGGER.error("paho: %s", text)
    elif level == mqtt.MQTT_LOG_WARNING:
        _PAHO_LOGGER.warning("paho: %s", text)
    else:
        _PAHO_LOGGER.debug("paho: %s", text)


def _no_key_password() -> str:
    """The password callback when none is configured: OpenSSL would otherwise prompt for one on
    the terminal (a service has none: it would fail obscurely, or hang in a container)."""
    raise ValueError(
        "the private key is encrypted: set outputs.mqtt.tls.keyfile_password "
        "(e.g. keyfile_password: ${MQTT_KEY_PASSWORD})"
    )


def _configure_tls(client: mqtt.Client, config: MqttOutputConfig) -> None:
    tls = config.tls
    password = tls.keyfile_password
    try:
        client.tls_set(
            ca_certs=tls.ca_certs,
            certfile=tls.certfile,
            keyfile=tls.keyfile,
            # ssl's load_cert_chain takes a callable too (paho passes it through).
            keyfile_password=cast(
                str, password.get_secret_value() if password is not None else _no_key_password
            ),
        )
    except (OSError, ssl.SSLError, ValueError) as exc:
        if password is not None and isinstance(exc, ssl.SSLError):
            exc = ssl.SSLError(f"{exc} (is keyfile_password the key's password?)")
        files = ", ".join(
            f"{key}={value}"
            for key, value in (
                ("ca_certs", tls.ca_certs),
                ("certfile", tls.certfile),
                ("keyfile", tls.keyfile),
            )
            if value is not None
        )
        raise ValueError(
            f"outputs.mqtt.tls: cannot load {files or 'the system CA certificates'}: {exc}"
        ) from exc
    if tls.insecure:
        client.tls_insecure_set(True)

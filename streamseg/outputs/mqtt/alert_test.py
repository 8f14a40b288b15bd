"""``streamseg alert-test``: one test occurrence of a rule, sent to the pipeline's broker now.

What it checks is the path an alert takes after streamseg raises it: the broker's address,
TLS, login, the ACL on ``<prefix>/events`` (MQTT 5 says in its acknowledgement whether the
broker took each message), and whatever listens there (a Home Assistant automation, a
dispatcher). It publishes a ``start`` and an ``end`` message of one occurrence of the rule on
the events topic, as the pipeline would, with ``details.test: true`` (and ``reason: test`` on
the end), so consumers can tell it from a real alert, and waits for the broker's
acknowledgements.

It touches nothing of a running pipeline: its own client id (``<client id>-alert-test``: the
broker would otherwise close the pipeline's connection), no last will, no retained topic (the
rule's ON/OFF state, counts and availability stay as the pipeline left them), and not the
outbox (the messages are sent directly; an unreachable broker is the answer).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from streamseg.config.pipeline import PipelineConfig
from streamseg.config.rules import RuleConfig, rule_runs_on
from streamseg.outputs.mqtt.build import default_client_id, topic_prefix_of
from streamseg.outputs.mqtt.client import make_client
from streamseg.outputs.mqtt.topics import Topics
from streamseg.rules.events import Event, new_event_id

logger = logging.getLogger(__name__)

CLIENT_ID_SUFFIX = "-alert-test"


class AlertTestError(RuntimeError):
    """The test could not be sent; the message says where it stopped."""


@dataclass(frozen=True)
class AlertTestResult:
    """What the broker said.

    Attributes:
        topic: the events topic the messages went to.
        event_id: the test occurrence's id.
        rule_id: the rule it is an occurrence of.
        stream_id: the stream it names.
        refusals: ``(message type, the broker's reason)`` of each message the broker refused
            (MQTT 5; empty: it took both).
        seconds: from the connection to the last acknowledgement.
    """

    topic: str
    event_id: str
    rule_id: str
    stream_id: str
    refusals: list[tuple[str, str]]
    seconds: float


def alert_test_events(
    config: PipelineConfig, rule_id: str | None, stream_id: str | None
) -> list[Event]:
    """The ``start`` and ``end`` message of a test occurrence of a rule on a stream.

    Args:
        config: the pipeline.
        rule_id: the rule (None: the first).
        stream_id: the stream (None: the first the rule runs on).

    Raises:
        AlertTestError: no such rule, no rules, or the rule does not run on the stream.
    """
    rule = _rule(config, rule_id)
    zones = {zone.id: zone for zone in config.zones}
    streams = [s.id for s in config.sources if rule_runs_on(rule, zones, s.id)]
    if stream_id is None:
        if not streams:
            raise AlertTestError(f"rule {rule.id!r} runs on no stream of the pipeline")
        stream_id = streams[0]
    elif stream_id not in streams:
        raise AlertTestError(
            f"rule {rule.id!r} does not run on stream {stream_id!r}; it runs on: "
            f"{', '.join(streams) or 'none'}"
        )
    now = time.time()
    start = Event(
        event_id=new_event_id(),
        type="start",
        rule_id=rule.id,
        rule_kind=rule.type,
        stream_id=stream_id,
        started_at=now,
        started_pts=0.0,
        frame_pts=0.0,
        frame_index=0,
        zone_id=getattr(rule, "zone", None),
        severity=rule.severity,
        details={"test": True},
    )
    end = Event(
        **{
            **vars(start),
            "type": "end",
            "seq": 1,
            "ended_at": now,
            "details": {"test": True, "reason": "test"},
        }
    )
    return [start, end]


def send_test_alert(
    config: PipelineConfig,
    rule_id: str | None = None,
    stream_id: str | None = None,
    timeout_s: float = 10.0,
) -> AlertTestResult:
    """Send a test occurrence to the pipeline's broker (see the module docstring).

    Raises:
        AlertTestError: the pipeline has no ``outputs.mqtt``, the rule or stream is wrong, the
            broker refused the connection or did not answer within ``timeout_s``.
        ValueError: the TLS files cannot be loaded.
    """
    mqtt_config = config.outputs.mqtt
    if mqtt_config is None:
        raise AlertTestError("the pipeline has no outputs.mqtt section")
    events = alert_test_events(config, rule_id, stream_id)
    topics = Topics(topic_prefix_of(config))
    base = mqtt_config.client_id or default_client_id(config.name, socket.gethostname())
    # No last will: the pipeline's availability is not this client's to change.
    client = make_client(mqtt_config, base + CLIENT_ID_SUFFIX, will_topic=None)
    connected = threading.Event()
    answered = threading.Condition()
    connect_failure: list[str] = []
    acks: dict[int, str | None] = {}

    def on_connect(c: mqtt.Client, u: Any, flags: Any, reason: Any, p: Any) -> None:
        if reason.is_failure:
            connect_failure.append(str(reason))
        connected.set()

    def on_publish(c: mqtt.Client, u: Any, mid: int, reason: Any, p: Any) -> None:
        with answered:
            acks[mid] = str(reason) if reason.is_failure else None
            answered.notify_all()

    client.on_connect = on_connect
    client.on_publish = on_publish
    host, port = mqtt_config.host, mqtt_config.resolved_port()
    where = f"{host}:{port} ({mqtt_config.transport}{'+tls' if mqtt_config.tls.enabled else ''})"
    deadline = time.monotonic() + timeout_s  # one limit for the whole exchange
    client.connect_timeout = timeout_s
    try:
        # Connected here, not by paho's thread, which retries and says nothing of why a
        # connection failed (a certificate from another CA, a wrong port, a name that does not
        # resolve): the point of the test.
        client.connect(host, port, keepalive=mqtt_config.keepalive_s)
    except (OSError, ValueError) as exc:
        raise AlertTestError(f"cannot connect to the broker at {where}: {exc}") from None
    try:
        client.loop_start()
        if not connected.wait(max(0.0, deadline - time.monotonic())):
            raise AlertTestError(f"no answer from the broker at {where} within {timeout_s:g} s")
        if connect_failure:
            raise AlertTestError(
                f"the broker at {where} refused the connection: {connect_failure[0]}"
            )
        began = time.monotonic()
        refusals: list[tuple[str, str]] = []
        for event in events:
            info = client.publish(topics.events, event.to_json().encode(), qos=mqtt_config.qos)
            with answered:
                while info.mid not in acks:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise AlertTestError(
                            f"the broker at {where} did not acknowledge the test {event.type} "
                            f"within {timeout_s:g} s"
                        )
                    answered.wait(left)
            refusal = acks[info.mid]
            if refusal is not None:
                refusals.append((event.type, refusal))
        seconds = time.monotonic() - began
    finally:
        client.disconnect()
        client.loop_stop()
    return AlertTestResult(
        topics.events, events[0].event_id, events[0].rule_id, events[0].stream_id, refusals, seconds
    )


def _rule(config: PipelineConfig, rule_id: str | None) -> RuleConfig:
    if not config.rules:
        raise AlertTestError("the pipeline has no rules")
    if rule_id is None:
        return config.rules[0]
    for rule in config.rules:
        if rule.id == rule_id:
            return rule
    raise AlertTestError(
        f"no rule {rule_id!r}; the pipeline's rules: {', '.join(r.id for r in config.rules)}"
    )

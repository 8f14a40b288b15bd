"""Fixtures of the output tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from streamseg.config import PipelineConfig
from streamseg.outputs.mqtt import MqttPublisher, build_mqtt_publisher


@pytest.fixture
def built_publisher() -> Iterator[Callable[[PipelineConfig], MqttPublisher]]:
    """Factory: the MQTT publisher of a pipeline (built, not started); closed at teardown."""
    made: list[MqttPublisher] = []

    def build(config: PipelineConfig) -> MqttPublisher:
        publisher = build_mqtt_publisher(config)
        assert publisher is not None
        made.append(publisher)
        return publisher

    yield build
    for publisher in made:
        publisher.close(timeout=0)

"""Pipeline configuration: the YAML schema (one module per section), its loader and errors.

Typical use::

    from streamseg.config import ConfigError, load_pipeline

    try:
        config = load_pipeline("pipelines/yard.yaml")
    except ConfigError as exc:
        print(exc)  # one "file:line:column: key.path: message" line per problem
"""

from streamseg.config.errors import MISSING, ConfigError, ConfigIssue
from streamseg.config.loader import load_pipeline, load_pipeline_text
from streamseg.config.metrics import MetricsConfig
from streamseg.config.model import ModelConfig
from streamseg.config.mqtt import MqttOutputConfig
from streamseg.config.outputs import (
    EventsOutputConfig,
    JsonlOutputConfig,
    MotsOutputConfig,
    OutputsConfig,
    VideoOutputConfig,
)
from streamseg.config.pipeline import (
    CrossCheckError,
    PipelineConfig,
    check_unique_source_ids,
    check_video_path_template,
)
from streamseg.config.record import RecordConfig
from streamseg.config.rules import RuleConfig
from streamseg.config.sources import (
    FileSourceConfig,
    ReconnectConfig,
    RtspSourceConfig,
    SourceConfig,
    UsbSourceConfig,
    redact_url,
)
from streamseg.config.tracker import TrackerConfig
from streamseg.config.zones import CalibrationConfig, ZoneConfig

__all__ = [
    "MISSING",
    "CalibrationConfig",
    "ConfigError",
    "ConfigIssue",
    "CrossCheckError",
    "EventsOutputConfig",
    "FileSourceConfig",
    "JsonlOutputConfig",
    "MetricsConfig",
    "ModelConfig",
    "MotsOutputConfig",
    "MqttOutputConfig",
    "OutputsConfig",
    "PipelineConfig",
    "ReconnectConfig",
    "RecordConfig",
    "RtspSourceConfig",
    "RuleConfig",
    "SourceConfig",
    "TrackerConfig",
    "UsbSourceConfig",
    "VideoOutputConfig",
    "ZoneConfig",
    "check_unique_source_ids",
    "check_video_path_template",
    "load_pipeline",
    "load_pipeline_text",
    "redact_url",
]

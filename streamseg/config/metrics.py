"""The ``metrics`` section: the Prometheus endpoint."""

from __future__ import annotations

import logging

from pydantic import Field

from streamseg.config._base import ConfigModel, Int, NonEmptyStr

logger = logging.getLogger(__name__)


class MetricsConfig(ConfigModel):
    """Prometheus metrics over HTTP."""

    enabled: bool = Field(default=False, description="serve /metrics, /healthz and /readyz")
    host: NonEmptyStr = Field(default="127.0.0.1", description="address to bind")
    port: Int = Field(
        default=9108, ge=1, le=65535, description="TCP port of /metrics, /healthz and /readyz"
    )

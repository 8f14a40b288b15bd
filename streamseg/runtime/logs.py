"""JSON log lines for log collectors (``streamseg run --log-format json``).

One JSON object per line on stderr: ``time`` (ISO 8601, UTC), ``level``, ``logger``,
``message``, any ``extra=`` fields the call passed, and ``exception`` when there is one.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

logger = logging.getLogger(__name__)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (values that are not JSON become their ``str``)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as compact JSON, no newline inside."""
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in payload:
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, separators=(",", ":"))


def setup_json_logging(level: str, stream: TextIO | None = None) -> None:
    """Send every log record, as JSON lines, to ``stream`` (stderr by default).

    Args:
        level: ``debug``, ``info``, ``warning`` or ``error``.
        stream: where to write; ``None`` = ``sys.stderr``.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler], force=True)

"""MQTT topic names (DESIGN.md, "MQTT conventions").

Under a prefix (default ``streamseg/<pipeline name>``):

* ``<prefix>/available``: ``online`` / ``offline``, retained; ``offline`` is also the last will.
* ``<prefix>/events``: every event message, JSON, QoS 1 (through the durable outbox).
* ``<prefix>/<stream>/<rule>/state``: ``ON`` / ``OFF``, retained.
* ``<prefix>/<stream>/<zone>/<class>/count``: the current count, retained.
* ``<prefix>/<stream>/status``: the source state (``streaming``, ``reconnecting`` ...), retained.
* ``<prefix>/<stream>/<rule>/snapshot``: JPEG of the latest event frame, retained (optional).
* ``<prefix>/outbox``: ``{"depth": n, "bound": m, "full": bool, "refused": k}``, retained,
  published when the outbox becomes full or has room again, and on every (re)connect.

The two topics of the process itself, ``available`` (with the last will) and ``outbox``, belong to
one process. A pipeline run as shards (``streamseg run --shard i/n``, n > 1) is n processes under
one prefix, so each shard keeps its own: ``<prefix>/shards/<i>/available`` and
``<prefix>/shards/<i>/outbox``. Otherwise one shard's last will would mark every shard offline.

Ids from the pipeline (stream, rule, zone, class name) become single topic levels: characters
that would change the topic structure (``/``, ``+``, ``#``, NUL) and whitespace become ``_``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Final

logger = logging.getLogger(__name__)

ONLINE: Final = b"online"
"""Payload of ``<prefix>/available`` while streamseg runs."""
OFFLINE: Final = b"offline"
"""Payload of ``<prefix>/available`` after a clean stop, and the last will."""

_UNSAFE = re.compile(r"[/+#\x00\s]")


def topic_level(name: str) -> str:
    """``name`` as one topic level: ``/``, ``+``, ``#``, NUL and whitespace become ``_``.

    An empty name becomes ``_`` (an empty level would merge with its neighbours in readers'
    eyes), and a leading ``$`` is escaped to ``_$`` (``$`` topics are the broker's).
    """
    level = _UNSAFE.sub("_", name)
    if not level:
        return "_"
    if level.startswith("$"):
        return "_" + level
    return level


@dataclass(frozen=True)
class Topics:
    """The topic names of one publisher.

    Attributes:
        prefix: the first levels, already checked (no wildcards, no empty level).
        shard: the shard index of a process that runs one shard of a sharded pipeline
            (``--shard i/n`` with n > 1), else ``None``: the process topics (:attr:`available`,
            :attr:`outbox`) go under ``<prefix>/shards/<i>``.
    """

    prefix: str
    shard: int | None = None

    @property
    def process_prefix(self) -> str:
        """Where the process's own topics live: ``<prefix>`` or ``<prefix>/shards/<i>``."""
        return self.prefix if self.shard is None else f"{self.prefix}/shards/{self.shard}"

    @property
    def available(self) -> str:
        """``<prefix>/available`` (``<prefix>/shards/<i>/available`` for a shard)."""
        return f"{self.process_prefix}/available"

    @property
    def events(self) -> str:
        """``<prefix>/events``."""
        return f"{self.prefix}/events"

    @property
    def outbox(self) -> str:
        """``<prefix>/outbox`` (``<prefix>/shards/<i>/outbox`` for a shard)."""
        return f"{self.process_prefix}/outbox"

    def rule_state(self, stream_id: str, rule_id: str) -> str:
        """``<prefix>/<stream>/<rule>/state``."""
        return f"{self.prefix}/{topic_level(stream_id)}/{topic_level(rule_id)}/state"

    def snapshot(self, stream_id: str, rule_id: str) -> str:
        """``<prefix>/<stream>/<rule>/snapshot``."""
        return f"{self.prefix}/{topic_level(stream_id)}/{topic_level(rule_id)}/snapshot"

    def zone_count(self, stream_id: str, zone_id: str, class_name: str) -> str:
        """``<prefix>/<stream>/<zone>/<class>/count``."""
        levels = "/".join(topic_level(part) for part in (stream_id, zone_id, class_name))
        return f"{self.prefix}/{levels}/count"

    def source_status(self, stream_id: str) -> str:
        """``<prefix>/<stream>/status``."""
        return f"{self.prefix}/{topic_level(stream_id)}/status"

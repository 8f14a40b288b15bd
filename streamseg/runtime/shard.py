"""Sharding the cameras of a pipeline over processes: ``streamseg run FILE --shard i/n``.

Each source goes to one shard by rendezvous (highest-random-weight) hashing: every shard
``0..n-1`` scores the source id with a stable hash of ``f"{shard}:{source_id}"`` and the highest
score wins. The assignment depends only on the id and ``n`` (never on the order of the sources
or on the process), and going from ``n`` to ``n + 1`` shards moves only the sources the new shard
wins: every other source keeps its shard.

On Kubernetes a StatefulSet names its pods ``<name>-0``, ``<name>-1``, ...;
``--shard-from-hostname n`` reads ``i`` from the trailing ``-<int>`` of ``HOSTNAME``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePath

from streamseg.config import PipelineConfig

logger = logging.getLogger(__name__)

_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_ORDINAL_RE = re.compile(r"-(\d+)$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (``0 <= index < count``).

    Raises:
        ValueError: ``count < 1`` or ``index`` outside ``0..count-1``.
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"shard count: expected a whole number >= 1, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(
                f"shard index: expected 0 <= i < {self.count}, got {self.index}"
                f" (shards are numbered from 0)"
            )

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, source_id: str) -> bool:
        """Whether this shard runs the source ``source_id``."""
        return shard_of(source_id, self.count) == self.index


def parse_shard(text: str) -> Shard:
    """Read ``"i/n"`` (e.g. ``"0/3"``).

    Raises:
        ValueError: not of the form ``i/n`` with whole numbers, or ``i`` outside ``0..n-1``.
    """
    match = _SHARD_RE.match(text)
    if match is None:
        raise ValueError(f"shard: expected i/n with whole numbers, e.g. 0/3; got {text!r}")
    return Shard(int(match.group(1)), int(match.group(2)))


def shard_from_hostname(hostname: str, count: int) -> Shard:
    """The shard of a StatefulSet pod: ``i`` is the trailing ``-<int>`` of ``hostname``.

    Args:
        hostname: e.g. ``"streamseg-2"`` (the ``HOSTNAME`` environment variable of a pod).
        count: the number of shards (the StatefulSet's replicas).

    Raises:
        ValueError: ``hostname`` does not end in ``-<int>``, or the ordinal is not below
            ``count``.
    """
    match = _ORDINAL_RE.search(hostname)
    if match is None:
        raise ValueError(
            f"HOSTNAME: expected a name ending in -<ordinal> (e.g. streamseg-0), got {hostname!r}"
        )
    return Shard(int(match.group(1)), count)


def _weight(shard_index: int, source_id: str) -> int:
    # blake2b, not hash(): Python salts str hashes per process, and every pod must agree.
    digest = hashlib.blake2b(f"{shard_index}:{source_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def shard_of(source_id: str, count: int) -> int:
    """The shard (``0..count-1``) that runs ``source_id``: the highest rendezvous weight wins.

    Raises:
        ValueError: ``count < 1``.
    """
    if count < 1:
        raise ValueError(f"shard count: expected a whole number >= 1, got {count}")
    return max(range(count), key=lambda i: _weight(i, source_id))


def select_sources(source_ids: Iterable[str], shard: Shard) -> list[str]:
    """The ids among ``source_ids`` that ``shard`` owns, in their given order."""
    return [s for s in source_ids if shard.owns(s)]


def shard_config(config: PipelineConfig, shard: Shard) -> PipelineConfig:
    """``config`` with only the sources ``shard`` owns (possibly none).

    Zones and rules stay as they are: those of other shards' streams simply never see a frame
    here. The copy is not validated again (a pipeline has at least one source; a shard may not).

    With several shards, the outputs that hold every stream in one file (``outputs.jsonl``,
    ``outputs.events``) get the shard in their name (``out/detections.shard1.jsonl``): two
    shards on one machine would otherwise write over each other's file. Per-stream outputs
    are named by stream, which only one shard runs.
    """
    owned = set(select_sources((s.id for s in config.sources), shard))
    sources = [s for s in config.sources if s.id in owned]
    logger.info(
        "shard %s: %d of %d sources (%s)",
        shard,
        len(sources),
        len(config.sources),
        ", ".join(s.id for s in sources) or "none",
    )
    outputs = config.outputs
    if shard.count > 1:
        shared = {
            key: section.model_copy(update={"path": shard_path(section.path, shard)})
            for key in ("jsonl", "events")
            if (section := getattr(outputs, key)) is not None
        }
        outputs = outputs.model_copy(update=shared)
    return config.model_copy(update={"sources": sources, "outputs": outputs})


def shard_path(path: str, shard: Shard) -> str:
    """``path`` with ``.shard<i>`` before its suffix: ``out/d.jsonl`` -> ``out/d.shard1.jsonl``."""
    pure = PurePath(path)
    return str(pure.with_name(f"{pure.stem}.shard{shard.index}{pure.suffix}"))

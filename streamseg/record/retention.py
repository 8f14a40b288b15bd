"""Retention of recorded files: by age and by total size, oldest first.

A folder's files are ordered by modification time (a finished segment's is its end) and then by
name (names start with the UTC start time). Files older than ``max_age_s`` go; then, while the
folder holds more than ``max_total_bytes``, the oldest remaining file goes. Files in use (the
segment or clip being written) are never deleted, but their size counts. Only files with the
folder's own suffix, one level below it (``<dir>/<stream>/<file>``), are considered, so a
misconfigured folder never loses anything else.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionPolicy:
    """How long and how much to keep.

    Attributes:
        max_age_s: delete files last modified longer ago than this; None keeps them.
        max_total_bytes: delete the oldest files while the folder holds more; None = no cap.
    """

    max_age_s: float | None = None
    max_total_bytes: int | None = None

    @classmethod
    def from_config(cls, max_age_h: float | None, max_total_mb: float | None) -> RetentionPolicy:
        """From the config's units (hours, megabytes of 10^6 bytes)."""
        return cls(
            max_age_s=None if max_age_h is None else max_age_h * 3600.0,
            max_total_bytes=None if max_total_mb is None else int(max_total_mb * 1e6),
        )

    @property
    def active(self) -> bool:
        """Some limit is set."""
        return self.max_age_s is not None or self.max_total_bytes is not None


def enforce_retention(
    directory: Path,
    policy: RetentionPolicy,
    suffix: str,
    in_use: Collection[Path] = (),
    now: float | None = None,
) -> list[Path]:
    """Delete what ``policy`` says must go from ``directory/*/*<suffix>``.

    Args:
        directory: the recording folder (one sub-folder per stream).
        policy: the limits.
        suffix: file suffix to consider, e.g. ``.mp4``.
        in_use: files being written; kept whatever their age.
        now: the current UNIX time (tests); None uses ``time.time()``.

    Returns:
        The deleted files, oldest first.
    """
    if not policy.active or not directory.is_dir():
        return []
    now = time.time() if now is None else now
    keep = {path.resolve() for path in in_use}
    files: list[tuple[float, str, Path, int]] = []
    for path in directory.glob(f"*/*{suffix}"):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue  # removed meanwhile
        if path.is_file():
            files.append((stat.st_mtime, path.name, path, stat.st_size))
    files.sort()
    total = sum(size for _, _, _, size in files)
    deleted: list[Path] = []
    for mtime, _, path, size in files:
        if path.resolve() in keep:
            continue
        too_old = policy.max_age_s is not None and now - mtime > policy.max_age_s
        too_big = policy.max_total_bytes is not None and total > policy.max_total_bytes
        if not (too_old or too_big):
            break  # sorted by age: nothing newer is too old, and the size already fits
        path.unlink(missing_ok=True)
        total -= size
        deleted.append(path)
    if deleted:
        logger.info(
            "retention: deleted %d file(s) from %s (%.1f MB left)",
            len(deleted),
            directory,
            total / 1e6,
        )
    return deleted


class RetentionKeeper:
    """Applies one policy to one folder from several threads (one stream worker each).

    Args:
        directory: the recording folder.
        policy: the limits.
        suffix: file suffix to consider.
    """

    def __init__(self, directory: Path, policy: RetentionPolicy, suffix: str) -> None:
        self.directory = directory
        self.policy = policy
        self.suffix = suffix
        self.deleted = 0
        self._in_use: set[Path] = set()
        self._lock = threading.Lock()

    def opened(self, path: Path) -> None:
        """``path`` is being written: never delete it."""
        with self._lock:
            self._in_use.add(path.resolve())

    def closed(self, path: Path) -> None:
        """``path`` is finished: it may age out."""
        with self._lock:
            self._in_use.discard(path.resolve())

    def enforce(self, now: float | None = None) -> list[Path]:
        """Run :func:`enforce_retention` (serialized; errors are logged, not raised)."""
        with self._lock:
            try:
                deleted = enforce_retention(
                    self.directory, self.policy, self.suffix, self._in_use, now
                )
            except OSError:
                logger.exception("retention on %s failed", self.directory)
                return []
            self.deleted += len(deleted)
            return deleted

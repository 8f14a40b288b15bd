"""Errors of pipeline files, each pointing into the operator's YAML.

A :class:`ConfigError` carries every problem found in one file as a :class:`ConfigIssue`
(file, line, column, key path, value, message), so an operator fixes them all in one pass.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

logger = logging.getLogger(__name__)


class _MissingType(enum.Enum):
    """Type of :data:`MISSING` (an enum member: one instance, survives copy and pickle)."""

    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _MissingType.MISSING
"""The ``value`` of an issue when there is no value: a missing key, a YAML syntax error."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in one pipeline file.

    Attributes:
        file: the file name as given to the loader (``"<string>"`` for text).
        line: 1-based line in the file, ``None`` when the problem is the file itself.
        column: 1-based column, ``None`` with ``line``.
        key_path: where in the document, e.g. ``sources[1].transport``; ``""`` for the document.
        value: the offending value as written in the file (``${VAR}`` references are shown
            unsubstituted, so secrets never reach an error), or :data:`MISSING`.
        message: what is wrong and what was expected, e.g. ``got 'tcpp', expected one of
            'tcp', 'udp'``. One line.
    """

    file: str
    line: int | None
    column: int | None
    key_path: str
    value: object
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        if self.key_path:
            return f"{where}: {self.key_path}: {self.message}"
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """A pipeline file is invalid; ``issues`` lists every problem found, in file order.

    ``str(error)`` is one line per issue: ``file:line:column: key.path: message``.
    """

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        """Build the error.

        Args:
            issues: at least one issue.

        Raises:
            ValueError: ``issues`` is empty.
        """
        if not issues:
            raise ValueError("ConfigError needs at least one ConfigIssue, got none")
        self.issues: list[ConfigIssue] = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))

    def __reduce__(self) -> tuple[type[ConfigError], tuple[list[ConfigIssue]]]:
        return (type(self), (self.issues,))

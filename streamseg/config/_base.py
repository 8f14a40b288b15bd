"""What every config model shares: unknown keys are errors, ids have one spelling."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints
from pydantic_core import PydanticCustomError

logger = logging.getLogger(__name__)

ID_PATTERN = r"^[A-Za-z0-9_-]+$"
"""Pipeline names and source ids: letters, digits, ``_`` and ``-`` (they end up in MQTT topics,
metric labels and file names)."""

Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
"""A ``str`` that matches :data:`ID_PATTERN`."""

NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]
"""A ``str`` with at least one character."""


class ConfigModel(BaseModel):
    """Base of every config model: unknown keys are errors; YAML numbers may fill string fields.

    ``coerce_numbers_to_str`` lets an operator write ``id: 7`` or ``name: 2024`` without quotes;
    ``.inf`` and ``.nan`` are refused. Number fields use :data:`Int` and :data:`Float`, which also
    refuse ``true``/``false``.
    """

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, allow_inf_nan=False)


def _reject_bool(value: Any) -> Any:
    # pydantic's lax mode reads true as 1; in a YAML file that is a mistake, not a count.
    if isinstance(value, bool):
        raise PydanticCustomError("bool_as_number", "expected a number, not true/false")
    return value


Int = Annotated[int, BeforeValidator(_reject_bool)]
"""An ``int`` field that refuses ``true``/``false``."""

Float = Annotated[float, BeforeValidator(_reject_bool)]
"""A ``float`` field that refuses ``true``/``false``."""


def none_as_empty(value: Any) -> Any:
    """A ``before`` validator: a YAML key with no value (``model:``) means "use the defaults".

    Returns ``{}`` for ``None`` so a section written as an empty key takes its defaults; any
    other value passes through unchanged.
    """
    return {} if value is None else value


def none_as_empty_list(value: Any) -> Any:
    """Like :func:`none_as_empty` for list fields: ``None`` becomes ``[]``."""
    return [] if value is None else value

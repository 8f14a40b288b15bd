"""The ``tracker`` section: declared for issue #4, no options yet.

``tracker: null`` (the default) and ``tracker: {}`` are accepted; any key is an error that says
the options are not implemented yet, instead of being ignored.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import model_validator
from pydantic_core import PydanticCustomError

from streamseg.config._base import ConfigModel

logger = logging.getLogger(__name__)

NOT_IMPLEMENTED = "not_implemented"
"""pydantic error type of keys and items that name a feature that does not exist yet."""


class TrackerConfig(ConfigModel):
    """Tracker options (issue #4). It has no fields yet: any key is rejected."""

    @model_validator(mode="before")
    @classmethod
    def _no_options_yet(cls, data: Any) -> Any:
        if isinstance(data, dict) and data:
            keys = [str(key) for key in data]
            raise PydanticCustomError(
                NOT_IMPLEMENTED,
                "tracker options are not implemented yet (issue #4); remove {keys}",
                {"keys": ", ".join(repr(k) for k in keys), "key": keys[0]},
            )
        return data

"""The root of a pipeline file, and the checks that span sections."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError
from typing_extensions import Self

from streamseg.config._base import (
    ConfigModel,
    Identifier,
    none_as_empty,
    none_as_empty_list,
)
from streamseg.config.metrics import MetricsConfig
from streamseg.config.model import ModelConfig
from streamseg.config.outputs import STREAM_PLACEHOLDER, OutputsConfig
from streamseg.config.sources import SourceConfig
from streamseg.config.tracker import NOT_IMPLEMENTED, TrackerConfig

logger = logging.getLogger(__name__)

CROSS_CHECK = "cross_check"
"""pydantic error type raised by :class:`PipelineConfig` when a cross-section check fails; its
``ctx["failures"]`` holds one ``(loc, message)`` pair per :class:`CrossCheckError`."""

Loc = tuple[str | int, ...]


class CrossCheckError(ValueError):
    """A check across sections failed.

    Attributes:
        loc: where the problem is, as a key path, e.g. ``("sources", 2, "id")``.
        message: what is wrong, naming the objects involved.
    """

    def __init__(self, loc: Loc, message: str) -> None:
        """Build the error.

        Args:
            loc: key path of the offending value.
            message: what is wrong and what was expected.
        """
        super().__init__(message)
        self.loc = loc
        self.message = message


def check_unique_source_ids(sources: Sequence[SourceConfig]) -> None:
    """Every source id appears once.

    Args:
        sources: the ``sources`` list.

    Raises:
        CrossCheckError: at the second use of the first repeated id; the message names every
            repeated id and where it was first used.
    """
    counts = Counter(source.id for source in sources)
    repeated = [source_id for source_id, count in counts.items() if count > 1]
    if not repeated:
        return
    first_index: dict[str, int] = {}
    for index, source in enumerate(sources):
        if source.id not in first_index:
            first_index[source.id] = index
        elif source.id == repeated[0]:
            others = "" if len(repeated) == 1 else f" (also repeated: {', '.join(repeated[1:])})"
            raise CrossCheckError(
                ("sources", index, "id"),
                f"duplicate source id {source.id!r}, already used by sources"
                f"[{first_index[source.id]}]; expected unique ids{others}",
            )


def check_video_path_template(outputs: OutputsConfig, sources: Sequence[SourceConfig]) -> None:
    """With several sources, ``outputs.video.path`` contains ``{stream}`` (one file per stream).

    Args:
        outputs: the ``outputs`` section.
        sources: the ``sources`` list.

    Raises:
        CrossCheckError: at ``outputs.video.path``, naming the sources that would share one file.
    """
    video = outputs.video
    if video is None or len(sources) < 2 or STREAM_PLACEHOLDER in video.path:
        return
    ids = ", ".join(source.id for source in sources)
    raise CrossCheckError(
        ("outputs", "video", "path"),
        f"expected a path containing {STREAM_PLACEHOLDER}: the {len(sources)} sources "
        f"({ids}) would all write to this one file",
    )


CROSS_CHECKS: tuple[Callable[[PipelineConfig], None], ...] = (
    lambda config: check_unique_source_ids(config.sources),
    lambda config: check_video_path_template(config.outputs, config.sources),
)
"""Every cross-section check, run in order by :class:`PipelineConfig`."""


def _reject_zone(item: Any) -> Any:
    raise PydanticCustomError(
        NOT_IMPLEMENTED, "zones are not implemented yet (issue #5); leave 'zones' empty"
    )


def _reject_rule(item: Any) -> Any:
    raise PydanticCustomError(
        NOT_IMPLEMENTED, "rules are not implemented yet (issue #5); leave 'rules' empty"
    )


class PipelineConfig(ConfigModel):
    """One pipeline file: sources, model, tracker, zones, rules, outputs, metrics."""

    name: Identifier = Field(
        default="streamseg", description="pipeline name (part of the MQTT prefix and metric labels)"
    )
    sources: list[SourceConfig] = Field(
        min_length=1, description="cameras and files to analyse, at least one"
    )
    model: ModelConfig = Field(default_factory=ModelConfig, description="segmentation model")
    tracker: TrackerConfig | None = Field(default=None, description="tracker options (issue #4)")
    zones: list[Annotated[Any, AfterValidator(_reject_zone)]] = Field(
        default_factory=list, description="zones (issue #5; must be empty for now)"
    )
    rules: list[Annotated[Any, AfterValidator(_reject_rule)]] = Field(
        default_factory=list, description="rules over zones (issue #5; must be empty for now)"
    )
    outputs: OutputsConfig = Field(default_factory=OutputsConfig, description="result outputs")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="Prometheus endpoint")

    _sections_none = field_validator("model", "outputs", "metrics", mode="before")(none_as_empty)
    _lists_none = field_validator("zones", "rules", mode="before")(none_as_empty_list)

    @model_validator(mode="after")
    def _cross_checks(self) -> Self:
        failures: list[CrossCheckError] = []
        for check in CROSS_CHECKS:
            try:
                check(self)
            except CrossCheckError as exc:
                failures.append(exc)
        if failures:
            raise PydanticCustomError(
                CROSS_CHECK,
                "{summary}",
                {
                    "summary": "; ".join(f"{format_loc(f.loc)}: {f.message}" for f in failures),
                    "failures": [(f.loc, f.message) for f in failures],
                },
            )
        return self

    def source(self, source_id: str) -> SourceConfig:
        """The source with id ``source_id``.

        Raises:
            KeyError: no source has that id; the message lists the ids there are.
        """
        for candidate in self.sources:
            if candidate.id == source_id:
                return candidate
        ids = ", ".join(s.id for s in self.sources)
        raise KeyError(f"source id {source_id!r}: expected one of {ids}")


def format_loc(loc: Sequence[str | int]) -> str:
    """A key path as operators read it: ``("sources", 1, "url")`` -> ``sources[1].url``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text

"""The root of a pipeline file, and the checks that span sections."""

from __future__ import annotations

import difflib
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence

from pydantic import Field, ValidationInfo, field_validator, model_validator
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
from streamseg.config.rules import LINE_KINDS, ZONE_KINDS, NearRuleConfig, RuleConfig
from streamseg.config.sources import SourceConfig
from streamseg.config.tracker import TrackerConfig
from streamseg.config.zones import LineZoneConfig, PolygonZoneConfig, ZoneConfig

logger = logging.getLogger(__name__)

CROSS_CHECK = "cross_check"
"""pydantic error type raised by :class:`PipelineConfig` when a cross-section check fails; its
``ctx["failures"]`` holds one ``(loc, message)`` pair per :class:`CrossCheckError`."""

Loc = tuple[str | int, ...]

LIST_SECTIONS = ("sources", "zones", "rules")
"""The sections that are lists of items with ids."""

POSITIONS_CONTEXT = "positions"
"""Key of the validation context that maps a list section to the position in the file of each
item given: the loader validates a file that has invalid items again without them, so that its
cross-section problems come in the same round of errors as the field errors. The failures' key
paths and messages then name the items' places in the file."""

ID_REFERENCES: Mapping[tuple[str, str], str] = {
    ("zones", "stream"): "sources",
    ("zones", "streams"): "sources",
    ("rules", "stream"): "sources",
    ("rules", "streams"): "sources",
    ("rules", "zone"): "zones",
}
"""The keys of list items that name items of another section by id, as ``(section, key) ->
named section``: a cross-check failure at ``(section, index, key)`` may be about an item of the
named section that the validation left out because it is invalid."""

Position = Callable[[str, int], int]
"""``(section, index) -> place in the file`` of an item of a list section."""


def same_position(section: str, index: int) -> int:
    """The :data:`Position` of a file validated whole: every item is where the file has it."""
    return index


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


def check_unique_source_ids(
    sources: Sequence[SourceConfig], position: Position = same_position
) -> None:
    """Every source id appears once.

    Args:
        sources: the ``sources`` list.
        position: where each source is in the file (the message names the first use by it).

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
                f"[{position('sources', first_index[source.id])}]; expected unique ids{others}",
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


def check_unique_ids(
    section: str, ids: Sequence[str], position: Position = same_position
) -> list[CrossCheckError]:
    """Every id of a ``zones`` or ``rules`` list appears once.

    Args:
        section: ``zones`` or ``rules``.
        ids: the ids in list order.
        position: where each item is in the file (the message names the first use by it).

    Returns:
        One error at each repeated use of an id, naming where it was first used.
    """
    failures: list[CrossCheckError] = []
    first_index: dict[str, int] = {}
    for index, item_id in enumerate(ids):
        if item_id in first_index:
            what = section.removesuffix("s")
            failures.append(
                CrossCheckError(
                    (section, index, "id"),
                    f"duplicate {what} id {item_id!r}, already used by {section}"
                    f"[{position(section, first_index[item_id])}]; expected unique ids",
                )
            )
        else:
            first_index[item_id] = index
    return failures


def _unknown_streams(
    loc: Loc, owner: str, item: ZoneConfig | NearRuleConfig, sources: Sequence[SourceConfig]
) -> list[CrossCheckError]:
    """The error, if any, for the streams ``item`` names that are not source ids.

    Args:
        loc: the item's key path (``("zones", 2)``); the error is at its ``stream``/``streams``.
        owner: the item as the message names it (``zone 'z'``).
        item: a zone or a ``near`` rule.
        sources: the ``sources`` list.
    """
    known = [source.id for source in sources]
    unknown = [stream for stream in item.stream_ids or () if stream not in known]
    if not unknown:
        return []
    key = "stream" if item.stream is not None else "streams"
    named = ", ".join(repr(stream) for stream in unknown)
    if len(unknown) == 1:
        what = f"stream {named}, which is not a source"
    else:
        what = f"streams {named}, which are not sources"
    return [
        CrossCheckError((*loc, key), f"{owner} names {what}; expected one of: {', '.join(known)}")
    ]


def check_zone_streams(
    zones: Sequence[ZoneConfig], sources: Sequence[SourceConfig]
) -> list[CrossCheckError]:
    """Every stream a zone names is a source id.

    Returns:
        One error per zone naming unknown streams, at its ``stream``/``streams``, naming the
        zone, the unknown streams and the sources there are.
    """
    return [
        failure
        for index, zone in enumerate(zones)
        for failure in _unknown_streams(("zones", index), f"zone {zone.id!r}", zone, sources)
    ]


def check_near_streams(
    rules: Sequence[RuleConfig], sources: Sequence[SourceConfig]
) -> list[CrossCheckError]:
    """Every stream a ``near`` rule names is a source id.

    Returns:
        One error per such rule, at its ``stream``/``streams``, naming the rule and the streams.
    """
    return [
        failure
        for index, rule in enumerate(rules)
        if isinstance(rule, NearRuleConfig)
        for failure in _unknown_streams(("rules", index), f"rule {rule.id!r}", rule, sources)
    ]


def check_rule_zones(
    rules: Sequence[RuleConfig], zones: Sequence[ZoneConfig]
) -> list[CrossCheckError]:
    """Every rule names an existing zone of the right shape.

    ``inside``, ``enter``, ``exit``, ``dwell`` and ``count`` need a polygon; ``cross`` needs a
    line.

    Returns:
        One error per rule whose zone is missing or of the wrong shape, at the rule's ``zone``,
        naming the rule and the zone.
    """
    failures: list[CrossCheckError] = []
    by_id = {zone.id: zone for zone in zones}
    for index, rule in enumerate(rules):
        if isinstance(rule, NearRuleConfig):
            continue
        loc: Loc = ("rules", index, "zone")
        zone = by_id.get(rule.zone)
        if zone is None:
            known = ", ".join(by_id) if by_id else "none defined"
            message = (
                f"rule {rule.id!r} names zone {rule.zone!r}, which is not defined; zones: {known}"
            )
            failures.append(CrossCheckError(loc, message))
        elif rule.type in LINE_KINDS and not isinstance(zone, LineZoneConfig):
            message = (
                f"rule {rule.id!r} ({rule.type}) needs a line zone, but zone {zone.id!r} is a "
                f"{zone.type}"
            )
            failures.append(CrossCheckError(loc, message))
        elif rule.type in ZONE_KINDS and not isinstance(zone, PolygonZoneConfig):
            message = (
                f"rule {rule.id!r} ({rule.type}) needs a polygon zone, but zone {zone.id!r} is "
                f"a {zone.type}"
            )
            failures.append(CrossCheckError(loc, message))
    return failures


def check_metre_calibration(
    rules: Sequence[RuleConfig], sources: Sequence[SourceConfig]
) -> list[CrossCheckError]:
    """A ``near`` rule in metres runs only on streams with a ground calibration.

    Returns:
        One error per such rule with uncalibrated streams, at its ``units``, naming the rule
        and every uncalibrated source it runs on.
    """
    failures: list[CrossCheckError] = []
    for index, rule in enumerate(rules):
        if not isinstance(rule, NearRuleConfig) or rule.units != "m":
            continue
        streams = rule.stream_ids
        bare = [
            source.id
            for source in sources
            if (streams is None or source.id in streams) and source.calibration is None
        ]
        if bare:
            what = "source" if len(bare) == 1 else "sources"
            failures.append(
                CrossCheckError(
                    ("rules", index, "units"),
                    f"rule {rule.id!r} measures in metres but {what} "
                    f"{', '.join(repr(b) for b in bare)} {'has' if len(bare) == 1 else 'have'} "
                    "no calibration; add sources[].calibration or use units: px",
                )
            )
    return failures


def check_rules_have_tracks(rules: Sequence[RuleConfig], tracker: TrackerConfig) -> None:
    """Rules count confirmed tracks only, so they need the tracker on.

    Raises:
        CrossCheckError: at ``tracker.enabled``, naming the rules that would never fire.
    """
    if rules and not tracker.enabled:
        ids = ", ".join(rule.id for rule in rules)
        raise CrossCheckError(
            ("tracker", "enabled"),
            f"rules ({ids}) count tracked objects only; expected the tracker enabled",
        )


def check_rules_within_model_classes(config: PipelineConfig) -> list[CrossCheckError]:
    """With ``model.classes`` set, every class a rule watches is one it keeps: the model drops
    the others before any rule sees them, so such a rule could never fire.

    Returns:
        One error per class outside ``model.classes``, at the rule's list item.
    """
    kept = config.model.classes
    if kept is None:
        return []
    return [
        CrossCheckError(
            loc,
            f"rule {rule.id!r} watches class {name!r}, which model.classes "
            f"({', '.join(kept)}) filters out: the rule could never fire; add it to model.classes",
        )
        for loc, rule, name in _rule_class_names(config.rules)
        if name not in kept
    ]


def _rule_class_names(rules: Sequence[RuleConfig]) -> Iterator[tuple[Loc, RuleConfig, str]]:
    """Every class name the rules filter on, with its key path: ``classes``, and a ``near``
    rule's ``other_classes``."""
    for index, rule in enumerate(rules):
        lists = [("classes", rule.classes)]
        if isinstance(rule, NearRuleConfig):
            lists.append(("other_classes", rule.other_classes))
        for key, names in lists:
            for position, name in enumerate(names or ()):
                yield ("rules", index, key, position), rule, name


def check_mqtt_snapshots(outputs: OutputsConfig) -> None:
    """``outputs.mqtt.snapshots`` publishes the JPEGs ``outputs.record.snapshots`` writes.

    Raises:
        CrossCheckError: at ``outputs.mqtt.snapshots`` when nothing would write them (it would
            publish nothing, silently).
    """
    mqtt, record = outputs.mqtt, outputs.record
    if mqtt is None or not mqtt.snapshots or (record is not None and record.snapshots_on):
        return
    raise CrossCheckError(
        ("outputs", "mqtt", "snapshots"),
        "publishes the event snapshots outputs.record.snapshots writes, but that is not "
        "enabled; expected outputs.record.snapshots (e.g. `record: {snapshots: {}}`) or "
        "snapshots: false",
    )


def check_class_names(config: PipelineConfig, known: Sequence[str]) -> list[CrossCheckError]:
    """Every class name the file filters on is one the model outputs.

    A rule watching a class the model does not have never fires, and ``model.classes`` with such
    a name drops every detection of it: both are silent at run time, so they are errors here.
    ``model.classes`` is left to :class:`ModelConfig` when ``model.class_names`` renames the
    classes (it checks against those).

    Args:
        config: the validated pipeline.
        known: the model's class names (``model.class_names``, else the file's).

    Returns:
        One error per unknown name, at the list item, with the closest known name if any.
    """
    names = set(known)
    listing = ", ".join(known)
    failures: list[CrossCheckError] = []

    def check(loc: Loc, value: str, who: str) -> None:
        if value in names:
            return
        close = difflib.get_close_matches(value, list(known), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        failures.append(
            CrossCheckError(
                loc,
                f"{who} names class {value!r}, which model {config.model.weights!r} does not "
                f"output; {hint}its classes: {listing} (model.class_names can rename them)",
            )
        )

    if config.model.class_names is None:
        for position, value in enumerate(config.model.classes or ()):
            check(("model", "classes", position), value, "model.classes")
    for loc, rule, value in _rule_class_names(config.rules):
        check(loc, value, f"rule {rule.id!r}")
    return failures


CrossCheck = Callable[["PipelineConfig", Position], list[CrossCheckError] | None]

CROSS_CHECKS: tuple[tuple[tuple[Loc, ...], CrossCheck], ...] = (
    ((), lambda config, at: check_unique_source_ids(config.sources, at)),
    (
        (("outputs", "video"),),
        lambda config, _: check_video_path_template(config.outputs, config.sources),
    ),
    ((), lambda config, at: check_unique_ids("zones", [zone.id for zone in config.zones], at)),
    ((), lambda config, at: check_unique_ids("rules", [rule.id for rule in config.rules], at)),
    ((), lambda config, _: check_zone_streams(config.zones, config.sources)),
    ((), lambda config, _: check_near_streams(config.rules, config.sources)),
    ((), lambda config, _: check_rule_zones(config.rules, config.zones)),
    ((), lambda config, _: check_metre_calibration(config.rules, config.sources)),
    (
        (("tracker", "enabled"),),
        lambda config, _: check_rules_have_tracks(config.rules, config.tracker),
    ),
    (
        (("outputs", "mqtt"), ("outputs", "record")),
        lambda config, _: check_mqtt_snapshots(config.outputs),
    ),
    ((("model", "classes"),), lambda config, _: check_rules_within_model_classes(config)),
)
"""Every cross-section check, run in order by :class:`PipelineConfig` with the items' places
in the file: each either returns its failures (one per offending item) or raises its single
one. Their key paths count the items given; :class:`PipelineConfig` renumbers them. Each comes
with the keys of the sections (not of the lists' items) it reads: it is skipped when the file
is validated without one of them (:data:`DROPPED_CONTEXT`), as it would judge a default the
file does not have."""

DROPPED_CONTEXT = "dropped"
"""Key of the validation context listing the key paths (of ``model``, ``tracker``,
``outputs``, ...) that the loader left out of a file with field errors, so that the checks
reading them are skipped (:data:`CROSS_CHECKS`)."""


def overlaps(dropped: Loc, read: Loc) -> bool:
    """Whether the key path ``dropped`` is, holds or lies within the key path ``read``."""
    shorter = min(len(dropped), len(read))
    return dropped[:shorter] == read[:shorter]


CLASS_NAMES_CONTEXT = "class_names"
"""Key of the validation context holding the model's class names: with it,
:class:`PipelineConfig` also runs :func:`check_class_names` (see ``load_pipeline``'s
``class_names_of``)."""


class PipelineConfig(ConfigModel):
    """One pipeline file: sources, model, tracker, zones, rules, outputs, metrics."""

    name: Identifier = Field(
        default="streamseg", description="pipeline name (part of the MQTT prefix and metric labels)"
    )
    sources: list[SourceConfig] = Field(
        min_length=1, description="cameras and files to analyse, at least one"
    )
    model: ModelConfig = Field(default_factory=ModelConfig, description="segmentation model")
    tracker: TrackerConfig = Field(
        default_factory=TrackerConfig,
        description="per-stream tracker (on by default; tracker: {enabled: false} turns it off)",
    )
    zones: list[ZoneConfig] = Field(
        default_factory=list, description="polygons and lines the rules watch, per stream"
    )
    rules: list[RuleConfig] = Field(
        default_factory=list, description="rules that raise events over zones and objects"
    )
    outputs: OutputsConfig = Field(default_factory=OutputsConfig, description="result outputs")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="Prometheus endpoint")

    _sections_none = field_validator("model", "tracker", "outputs", "metrics", mode="before")(
        none_as_empty
    )
    _lists_none = field_validator("zones", "rules", mode="before")(none_as_empty_list)

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> Self:
        context = info.context or {}
        positions: Mapping[str, Sequence[int]] = context.get(POSITIONS_CONTEXT) or {}

        def position(section: str, index: int) -> int:
            given = positions.get(section)
            return given[index] if given is not None else index

        dropped: Sequence[Loc] = context.get(DROPPED_CONTEXT) or ()
        failures: list[CrossCheckError] = []
        for reads, check in CROSS_CHECKS:
            if any(overlaps(tuple(d), read) for d in dropped for read in reads):
                continue
            try:
                failures.extend(check(self, position) or ())
            except CrossCheckError as exc:
                failures.append(exc)
        known = context.get(CLASS_NAMES_CONTEXT)
        if known is not None:
            # A name the model does not have at all says so (with its "did you mean"), not
            # also that model.classes filters it out.
            by_name = check_class_names(self, known)
            taken = {failure.loc for failure in by_name}
            failures = [f for f in failures if f.loc not in taken] + by_name
        if positions:
            failures = [_in_file(failure, position) for failure in failures]
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


def _in_file(failure: CrossCheckError, position: Position) -> CrossCheckError:
    """``failure`` with its key path counting the items where the file has them."""
    loc = failure.loc
    if len(loc) < 2 or loc[0] not in LIST_SECTIONS or not isinstance(loc[1], int):
        return failure
    return CrossCheckError((loc[0], position(str(loc[0]), loc[1]), *loc[2:]), failure.message)


def format_loc(loc: Sequence[str | int]) -> str:
    """A key path as operators read it: ``("sources", 1, "url")`` -> ``sources[1].url``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text

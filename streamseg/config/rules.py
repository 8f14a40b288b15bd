"""The ``rules`` section: what raises events, over zones and between objects.

Every rule has an ``id``, a ``type`` (its kind) and the shared keys of :class:`_RuleBase`
(class filter, debouncing, cooldown, severity). Durations are seconds of stream time (``pts``).
Only confirmed tracks (``tracker_id >= 1``) count, so rules need the tracker.

Example::

    rules:
      - id: person-in-swing
        type: inside               # fraction of the person's mask in the zone >= min_overlap
        zone: swing
        classes: [person]
        min_overlap: 0.1
        min_duration_s: 0.5        # must hold 0.5 s to start, be false 0.5 s to end
        cooldown_s: 10
        severity: critical
      - id: person-near-machine
        type: near                 # mask-to-mask distance
        classes: [person]
        other_classes: [excavator, truck]
        max_distance: 2.0
        units: m                   # needs the stream's calibration

The semantics of each kind are in :mod:`streamseg.rules.kinds` and the README.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from streamseg.config._base import ConfigModel, Float, Identifier, Int, NonEmptyStr
from streamseg.config.schedule import ScheduleConfig
from streamseg.config.zones import ZoneConfig

logger = logging.getLogger(__name__)

Basis = Literal["mask", "bottom_center", "center", "any_pixel"]
"""How "inside a zone" is decided: ``mask`` (fraction of mask pixels), or the peers' tests:
``bottom_center`` / ``center`` of the box (DeepStream, Frigate / Ultralytics), ``any_pixel``."""

Anchor = Literal["bottom_center", "center", "centroid"]
"""The point of an object whose side of a line counts: box bottom-centre or centre, or the
mean of the mask's pixels (``centroid``)."""

ZONE_KINDS = ("inside", "enter", "exit", "dwell", "count")
"""Rule kinds that watch a polygon zone."""

LINE_KINDS = ("cross",)
"""Rule kinds that watch a line zone."""


def _name(info: ValidationInfo) -> str:
    rule_id = info.data.get("id")
    return f"rule {rule_id!r}" if rule_id is not None else "rule"


class _RuleBase(ConfigModel):
    """Keys every rule has."""

    id: Identifier = Field(description="unique id of the rule (letters, digits, _ and -)")
    classes: list[NonEmptyStr] = Field(
        default_factory=list, description="object classes the rule watches; empty: every class"
    )
    min_duration_s: Float = Field(
        default=0.5,
        ge=0,
        le=3600,
        description="the condition must hold this long before a start, and be false this long "
        "before an end, seconds",
    )
    cooldown_s: Float = Field(
        default=0.0,
        ge=0,
        le=86400,
        description="after an end, no new start for the same object (or zone) for this long",
    )
    severity: Literal["info", "warning", "critical"] = Field(
        default="warning", description="severity carried by the events"
    )
    update_interval_s: Float | None = Field(
        default=10.0,
        gt=0,
        description="while active, send an update this often, seconds; null: no periodic update",
    )
    lost_timeout_s: Float = Field(
        default=2.0,
        ge=0,
        le=3600,
        description="a track unseen for this long ends its occurrences (details.reason: lost); "
        "not while the tracker reports it hidden behind an object of another class",
    )
    schedule: ScheduleConfig | None = Field(
        default=None,
        description="when the rule runs: time windows on days of the week (default: always)",
    )
    min_area_px: Int | None = Field(
        default=None,
        ge=1,
        description="the rule ignores an object showing fewer mask pixels on a frame (far away, "
        "or a sliver of one); null: no limit",
    )
    max_area_px: Int | None = Field(
        default=None,
        ge=1,
        description="the rule ignores an object showing more mask pixels on a frame; null: no "
        "limit",
    )

    @field_validator("max_area_px")
    @classmethod
    def _area_range(cls, value: int | None, info: ValidationInfo) -> int | None:
        least = info.data.get("min_area_px")
        if value is not None and least is not None and value < least:
            raise ValueError(f"{_name(info)}: max_area_px is below min_area_px ({least})")
        return value


class _ZoneRuleBase(_RuleBase):
    """A rule that watches one zone."""

    zone: Identifier = Field(description="id of the zone the rule watches")


class _MembershipRuleBase(_ZoneRuleBase):
    """A rule that asks whether an object is inside a polygon zone."""

    basis: Basis = Field(
        default="mask",
        description="mask: fraction of mask pixels in the zone >= min_overlap; bottom_center / "
        "center: that point of the box; any_pixel: any mask pixel",
    )
    min_overlap: Float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="basis mask: fraction of the object's mask pixels that must be in the zone",
    )

    @field_validator("min_overlap")
    @classmethod
    def _overlap_needs_mask_basis(cls, value: float, info: ValidationInfo) -> float:
        # Runs only when min_overlap is written (defaults are not validated).
        basis = info.data.get("basis", "mask")
        if basis != "mask":
            raise ValueError(
                f"{_name(info)}: min_overlap applies to basis: mask only, not basis: {basis}"
            )
        return value


class _PulseRuleBase(ConfigModel):
    """A rule whose occurrences are instantaneous (``enter``, ``exit``, ``cross``)."""

    state_hold_s: Float = Field(
        default=1.0,
        ge=0,
        le=3600,
        description="seconds of stream time the rule's published state (MQTT, Home Assistant, "
        "the recording's overlay) stays ON after an occurrence, so a dashboard shows it; 0: ON "
        "then OFF on the same frame. Events are not affected",
    )


class InsideRuleConfig(_MembershipRuleBase):
    """Active while an object is inside the zone; one occurrence per (rule, track)."""

    type: Literal["inside"] = Field(description="rule kind")


class EnterRuleConfig(_PulseRuleBase, _MembershipRuleBase):
    """An object that was outside the zone is now inside (an instantaneous occurrence)."""

    type: Literal["enter"] = Field(description="rule kind")


class ExitRuleConfig(_PulseRuleBase, _MembershipRuleBase):
    """An object that was inside the zone is now outside (an instantaneous occurrence)."""

    type: Literal["exit"] = Field(description="rule kind")


class DwellRuleConfig(_MembershipRuleBase):
    """Active once an object has been inside for ``dwell_s``, until it leaves."""

    type: Literal["dwell"] = Field(description="rule kind")
    dwell_s: Float = Field(gt=0, le=86400, description="seconds inside before the rule starts")


class CountRuleConfig(_MembershipRuleBase):
    """Active while the number of objects inside is above (or below) a threshold."""

    type: Literal["count"] = Field(description="rule kind")
    above: Int | None = Field(
        default=None, ge=0, description="active while more than this many objects are inside"
    )
    below: Int | None = Field(
        default=None,
        ge=1,
        validate_default=True,
        description="active while fewer than this many objects are inside",
    )

    @field_validator("below")
    @classmethod
    def _one_threshold(cls, value: int | None, info: ValidationInfo) -> int | None:
        if "above" not in info.data:
            return value  # above itself is invalid and already reported
        above = info.data["above"]
        if (above is None) == (value is None):
            both = ", not both" if value is not None else ""
            raise ValueError(f"{_name(info)}: expected exactly one of 'above' or 'below'{both}")
        return value


class CrossRuleConfig(_PulseRuleBase, _ZoneRuleBase):
    """An object's anchor moved from one side of a line zone to the other."""

    type: Literal["cross"] = Field(description="rule kind")
    direction: Literal["left_to_right", "right_to_left", "any"] = Field(
        default="any",
        description="which crossings count; sides are seen looking from points[0] to points[1]",
    )
    anchor: Anchor = Field(
        default="bottom_center",
        description="point whose side counts: bottom_center or center of the box, or the "
        "mask's centroid",
    )
    margin_px: Float = Field(
        default=0.0,
        ge=0,
        description="hysteresis band, frame pixels: positions this close to the line count "
        "as neither side",
    )


class NearRuleConfig(_RuleBase):
    """An object of ``classes`` whose mask comes within ``max_distance`` of one of
    ``other_classes``; one occurrence per (rule, track of ``classes``)."""

    type: Literal["near"] = Field(description="rule kind")
    other_classes: list[NonEmptyStr] = Field(
        min_length=1, description="classes of the objects to keep away from"
    )
    max_distance: Float = Field(gt=0, description="active below this distance (see units)")
    units: Literal["px", "m"] = Field(
        default="px",
        description="px: mask-to-mask distance in frame pixels; m: on the ground, in metres "
        "(needs the stream's calibration)",
    )
    stream: Identifier | None = Field(
        default=None, description="the one stream this rule runs on (omit for every stream)"
    )
    streams: list[Identifier] | None = Field(
        default=None, min_length=1, description="the streams this rule runs on"
    )
    # 2.0 s and 0.1: bench/motion.py on the synthetic yard, built-in model and tracker.
    other_moving: bool = Field(
        default=False,
        description="only objects of other_classes that move count (a truck driving, an "
        "excavator swinging or digging): their mask changed by min_motion within "
        "motion_window_s",
    )
    motion_window_s: Float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="other_moving: an object moves while its mask differs from one of its masks "
        "of this many seconds back; a shorter pause keeps it moving",
    )
    min_motion: Float = Field(
        default=0.1,
        gt=0,
        lt=1,
        description="other_moving: the change (1 - IoU of the two masks) from which it moves",
    )

    @field_validator("motion_window_s", "min_motion")
    @classmethod
    def _with_other_moving(cls, value: float, info: ValidationInfo) -> float:
        # Only when other_moving itself is valid: a wrong value there has its own error.
        if info.data.get("other_moving", True) is False:
            raise ValueError(
                f"{_name(info)}: {info.field_name} applies only with other_moving: true"
            )
        return value

    @field_validator("streams")
    @classmethod
    def _one_stream_key(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is not None and info.data.get("stream") is not None:
            raise ValueError(f"{_name(info)}: expected either 'stream' or 'streams', not both")
        return value

    @property
    def stream_ids(self) -> tuple[str, ...] | None:
        """The streams this rule runs on, or ``None`` for every stream."""
        if self.stream is not None:
            return (self.stream,)
        return tuple(self.streams) if self.streams is not None else None


RuleConfig = Annotated[
    InsideRuleConfig
    | EnterRuleConfig
    | ExitRuleConfig
    | DwellRuleConfig
    | CountRuleConfig
    | CrossRuleConfig
    | NearRuleConfig,
    Field(discriminator="type"),
]
"""One entry of ``rules``: ``type`` picks the kind."""

MembershipRuleConfig = (
    InsideRuleConfig | EnterRuleConfig | ExitRuleConfig | DwellRuleConfig | CountRuleConfig
)
"""The rule kinds that test membership of a polygon zone."""


def rule_runs_on(rule: RuleConfig, zones: dict[str, ZoneConfig], stream_id: str) -> bool:
    """Whether ``rule`` runs on ``stream_id``: its zone exists there (or, for ``near``, the
    rule names the stream or no stream).

    Args:
        rule: one rule of the pipeline.
        zones: the pipeline's zones by id.
        stream_id: the stream (source id).
    """
    if isinstance(rule, NearRuleConfig):
        streams = rule.stream_ids
        return streams is None or stream_id in streams
    zone = zones.get(rule.zone)
    return zone is not None and zone.applies_to(stream_id)

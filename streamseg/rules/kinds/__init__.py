"""The rule kinds, one module each, and :func:`build_rule` that picks one by ``type``.

============  ==========================================================================
kind          active when (per track unless noted)
============  ==========================================================================
``inside``    the object is inside a polygon zone (:mod:`.membership`)
``enter``     instantaneous: it went from outside to inside (:mod:`.membership`)
``exit``      instantaneous: it went from inside to outside (:mod:`.membership`)
``dwell``     it has been inside for ``dwell_s`` (:mod:`.membership`)
``cross``     instantaneous: its anchor changed side of a line zone (:mod:`.cross`)
``count``     zone-level: the number inside is above/below a threshold (:mod:`.count`)
``near``      its mask is within ``max_distance`` of an object of other classes (:mod:`.near`)
============  ==========================================================================
"""

from __future__ import annotations

from streamseg.config.rules import (
    CountRuleConfig,
    CrossRuleConfig,
    DwellRuleConfig,
    EnterRuleConfig,
    ExitRuleConfig,
    InsideRuleConfig,
    NearRuleConfig,
    RuleConfig,
)
from streamseg.rules.geometry import GroundPlane, LineZone, PolygonZone
from streamseg.rules.kinds.base import FrameContext, Rule, TrackRule, TrackState
from streamseg.rules.kinds.count import CountRule
from streamseg.rules.kinds.cross import CrossRule
from streamseg.rules.kinds.membership import DwellRule, EnterRule, ExitRule, InsideRule
from streamseg.rules.kinds.near import NearRule

RULE_KINDS: dict[str, type[Rule]] = {
    "inside": InsideRule,
    "enter": EnterRule,
    "exit": ExitRule,
    "dwell": DwellRule,
    "cross": CrossRule,
    "count": CountRule,
    "near": NearRule,
}
"""Rule classes by kind."""


def build_rule(
    config: RuleConfig,
    stream_id: str,
    zones: dict[str, PolygonZone | LineZone],
    ground: GroundPlane | None = None,
) -> Rule:
    """The rule object for one rule on one stream.

    Args:
        config: the rule's config.
        stream_id: the stream it runs on.
        zones: the stream's zones by id.
        ground: the stream's ground plane, for ``near`` in metres.

    Raises:
        ValueError: the rule's zone is missing or of the wrong shape, or a metre distance
            has no calibration (the config's cross-checks catch these first).
    """
    if isinstance(config, NearRuleConfig):
        return NearRule(config, stream_id, ground)
    zone = zones.get(config.zone)
    if isinstance(config, CrossRuleConfig):
        if not isinstance(zone, LineZone):
            raise ValueError(f"rule {config.id!r} needs line zone {config.zone!r}")
        return CrossRule(config, stream_id, zone)
    if not isinstance(zone, PolygonZone):
        raise ValueError(f"rule {config.id!r} needs polygon zone {config.zone!r}")
    if isinstance(config, InsideRuleConfig):
        return InsideRule(config, stream_id, zone)
    if isinstance(config, EnterRuleConfig):
        return EnterRule(config, stream_id, zone)
    if isinstance(config, ExitRuleConfig):
        return ExitRule(config, stream_id, zone)
    if isinstance(config, DwellRuleConfig):
        return DwellRule(config, stream_id, zone)
    if isinstance(config, CountRuleConfig):
        return CountRule(config, stream_id, zone)
    raise ValueError(f"unknown rule kind {config.type!r}; expected one of {', '.join(RULE_KINDS)}")


__all__ = [
    "RULE_KINDS",
    "CountRule",
    "CrossRule",
    "DwellRule",
    "EnterRule",
    "ExitRule",
    "FrameContext",
    "InsideRule",
    "NearRule",
    "Rule",
    "TrackRule",
    "TrackState",
    "build_rule",
]

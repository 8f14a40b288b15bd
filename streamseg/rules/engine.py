"""The rule engine of one stream: zones, rules, and what it tells its listeners.

:meth:`RuleEngine.evaluate` takes one frame and the tracker's detections, runs every rule of the
stream and returns the frame's events. It also tells its :class:`EventListener`\\ s, in this
order per frame:

1. for each rule, in config order: ``on_event`` for each of its events, then
   ``on_rule_state(stream, rule, active)`` when the rule's "any occurrence open" flag flipped.
   An instantaneous occurrence (``enter``, ``exit``, ``cross``) opens and closes on one frame;
   its rule reports ``True`` and then ``False`` on the first frame ``state_hold_s`` of stream
   time later (a later occurrence extends the hold), so a dashboard or Home Assistant shows
   it; with ``state_hold_s: 0`` it reports ``True`` then ``False`` on the same frame (a
   pulse). :meth:`RuleEngine.close` reports ``False`` for a rule still held.
2. ``on_zone_count(stream, zone, class, count)`` for each (zone, class) whose count changed.
   Counts are kept for every polygon zone that a rule on the stream watches; an object counts
   in a zone when at least :data:`COUNT_MIN_OVERLAP` of its mask pixels are inside (the
   ``mask`` basis), whatever the rules' own bases. Classes appear once seen in the zone and
   are reported at 0 when the last one leaves. While the stream warms up (``warmup_s``, at
   the start and after a gap that made the tracker start afresh) a count may rise but not fall.

When it is built, before any frame, the engine reports every rule ``False`` and the classes the
rules on each zone name at 0, as :meth:`RuleEngine.close` leaves them, so retained state and
count topics that a crashed run left do not stand while a camera is down.

Only confirmed tracks (``tracker_id >= 1``) take part. The tracker's ``HIDDEN_TRACK_IDS``
(``detections.metadata``) keep the open occurrences of tracks hidden behind another object
(:class:`~streamseg.rules.kinds.base.TrackRule`); its ``RETRACTED_TRACK_IDS`` (ids shown at
once on a fresh start, withdrawn as a flicker) are forgotten at once. A listener that raises is
logged and skipped; it never stops the rules or the other listeners.

Time is the stream's ``pts`` made monotonic (:class:`~streamseg.track.clock.TrackClock`, as in
the tracker): a missing, repeated or backwards timestamp (a restarted stream) advances the
rules' clock by one frame interval, so durations never run backwards. For a well-behaved
stream the events' ``frame_pts`` are the frames' ``pts_s``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import supervision as sv

from streamseg import accel
from streamseg.config.pipeline import PipelineConfig
from streamseg.config.rules import RuleConfig, rule_runs_on
from streamseg.config.zones import CalibrationConfig, LineZoneConfig, ZoneConfig
from streamseg.rules.events import Event, EventListener
from streamseg.rules.geometry import GroundPlane, LineZone, PolygonZone
from streamseg.rules.kinds import FrameContext, Rule, build_rule
from streamseg.rules.lifecycle import TIME_EPS_S, Stamp
from streamseg.rules.measures import FrameObjects
from streamseg.rules.schedule import Schedule
from streamseg.track.clock import TrackClock
from streamseg.types import HIDDEN_TRACK_IDS, RETRACTED_TRACK_IDS, Frame

logger = logging.getLogger(__name__)

COUNT_MIN_OVERLAP = 0.5
"""Fraction of an object's mask that must be in a zone for the zone's published count."""

FALLBACK_FRAME_S = 1 / 30
"""Step of the rules' clock for a bad timestamp before any valid frame interval was seen."""


class RuleEngine:
    """Zones and rules of one stream.

    Args:
        stream_id: the stream.
        zones: every zone of the pipeline (those of other streams are ignored).
        rules: every rule of the pipeline (those not on this stream are ignored).
        calibration: the stream's ground calibration, for ``near`` in metres.
        listeners: told about events, rule states and zone counts (module docstring).
        warmup_s: how long the tracker may take to give the objects in view ids
            (:attr:`TrackerConfig.acquire_s`): for this long after the stream's first frame,
            and after a gap that made the tracker drop its tracks, the objects in view may
            have no id yet, or one given at once to a flicker: ``count`` rules judge nothing
            (:attr:`FrameContext.warming_up`).
        restart_gap_s: the tracker's ``lost_buffer_s``: a frame that comes more than this
            after the one before it (a camera back after an outage, a stalled stream) finds
            every track dropped, and the warm-up starts again. ``None``: only at the start.
    """

    def __init__(
        self,
        stream_id: str,
        zones: Sequence[ZoneConfig],
        rules: Sequence[RuleConfig],
        calibration: CalibrationConfig | None = None,
        listeners: Sequence[EventListener] = (),
        warmup_s: float = 0.0,
        restart_gap_s: float | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.warmup_s = warmup_s
        self.restart_gap_s = restart_gap_s
        self.listeners = list(listeners)
        by_id = {zone.id: zone for zone in zones if zone.applies_to(stream_id)}
        self.zones: dict[str, PolygonZone | LineZone] = {
            zone_id: (
                LineZone(zone, stream_id)
                if isinstance(zone, LineZoneConfig)
                else PolygonZone(zone, stream_id)
            )
            for zone_id, zone in by_id.items()
        }
        ground = GroundPlane(calibration) if calibration is not None else None
        self._ground = ground
        self.rules: list[Rule] = [
            build_rule(rule, stream_id, self.zones, ground)
            for rule in rules
            if rule_runs_on(rule, by_id, stream_id)
        ]
        watched = {getattr(rule, "zone", None) for rule in self.rules}
        self.count_zones: list[PolygonZone] = [
            zone
            for zone in self.zones.values()
            if isinstance(zone, PolygonZone) and zone in watched
        ]
        self._schedules = {
            rule.id: Schedule(rule.config.schedule)
            for rule in self.rules
            if rule.config.schedule is not None
        }
        self._off_schedule: set[str] = set()
        """Ids of the rules outside their schedule's windows now (they do not run)."""
        self._active: dict[str, bool] = {}
        self._held_until: dict[str, float] = {}
        """Rule id -> rules' clock time until which an instantaneous occurrence holds it on."""
        self._counts: dict[str, dict[str, int]] = {zone.id: {} for zone in self.count_zones}
        for rule in self.rules:
            zone = getattr(rule, "zone", None)
            if isinstance(zone, PolygonZone) and zone.id in self._counts:
                for name in rule.classes:
                    self._counts[zone.id][name] = 0
        self._last: Stamp | None = None
        self._clock = TrackClock(FALLBACK_FRAME_S, name=f"rules of stream {stream_id!r}")
        self._base_pts: float | None = None
        self._warm_until = -math.inf
        """Rules' clock time until which the stream is warming up (see ``warmup_s``)."""
        logger.debug(
            "stream %r: %d rules over %d zones", stream_id, len(self.rules), len(self.zones)
        )
        if self.rules:
            accel.kernels()  # compiled now, not on the first frame
        self._report_start()

    @classmethod
    def from_config(
        cls, config: PipelineConfig, stream_id: str, listeners: Sequence[EventListener] = ()
    ) -> RuleEngine:
        """The engine of ``stream_id`` in a validated pipeline."""
        calibration = config.source(stream_id).calibration
        tracker = config.tracker
        if not tracker.enabled:
            return cls(stream_id, config.zones, config.rules, calibration, listeners)
        return cls(
            stream_id,
            config.zones,
            config.rules,
            calibration,
            listeners,
            warmup_s=tracker.acquire_s,
            restart_gap_s=tracker.lost_buffer_s,
        )

    @property
    def rule_ids(self) -> list[str]:
        """Ids of the rules that run on this stream, in config order."""
        return [rule.id for rule in self.rules]

    def evaluate(self, frame: Frame, detections: sv.Detections) -> list[Event]:
        """Run every rule on one frame.

        Args:
            frame: the frame (its ``pts_s``, ``wall_time``, ``index`` and size are used).
            detections: the tracker's output for it: ``tracker_id`` (N,) int (>= 1 confirmed),
                ``xyxy`` (N, 4) float frame pixels, ``data["class_name"]`` (else ``class_id``),
                ``mask`` a ``CompactMask`` in frame pixels, a dense (N, H, W) bool array, or
                ``None`` (boxes stand for masks). Not modified.

        Returns:
            The frame's events, rule by rule in config order.
        """
        dt = self._clock.advance(frame.pts_s)
        first = self._base_pts is None
        if self._base_pts is None:
            pts = float(frame.pts_s)
            self._base_pts = pts if math.isfinite(pts) else 0.0
        now = Stamp(self._base_pts + self._clock.now_s, float(frame.wall_time), int(frame.index))
        self._last = now
        hidden = frozenset(int(i) for i in detections.metadata.get(HIDDEN_TRACK_IDS, ()))
        retracted = frozenset(int(i) for i in detections.metadata.get(RETRACTED_TRACK_IDS, ()))
        restarted = self.restart_gap_s is not None and dt > self.restart_gap_s + TIME_EPS_S
        if first or restarted:
            self._warm_until = now.pts + self.warmup_s
            if restarted and self.warmup_s > 0:
                logger.debug(
                    "stream %r: %.1f s without frames; the tracker starts afresh, so count "
                    "rules wait %.2f s",
                    self.stream_id,
                    dt,
                    self.warmup_s,
                )
        warming_up = now.pts < self._warm_until - TIME_EPS_S
        ctx = FrameContext(
            now, FrameObjects(detections, frame.resolution_wh), hidden, warming_up, retracted
        )
        events: list[Event] = []
        for index, rule in enumerate(self.rules):
            if rule.id in self._schedules:
                runs, closed = self._follow_schedule(index, now)
                events.extend(closed)
                if not runs:
                    rule.observe_paused(ctx)  # what it remembers of the objects stays current
                    continue
                rule = self.rules[index]  # afresh when its window opened
            rule_events = rule.evaluate(ctx)
            events.extend(rule_events)
            self._tell(rule, rule_events, now.pts)
        if self.count_zones and self.listeners:
            self._report_counts(ctx)
        return events

    def close(self) -> list[Event]:
        """End every open occurrence (``details.reason: stream_end``) at the last frame seen.

        Call it when the stream ends; returns (and tells the listeners) the ``end`` events.
        """
        if self._last is None:
            return []
        events: list[Event] = []
        for rule in self.rules:
            rule_events = rule.close(self._last)
            events.extend(rule_events)
            self._tell(rule, rule_events, None)
        self._held_until.clear()
        # The stream shows nothing any more: its zone counts go to 0, or retained count topics
        # would keep the last value until a later run saw that class there again.
        for zone_id, previous in self._counts.items():
            for name, count in previous.items():
                if count:
                    self._call("on_zone_count", self.stream_id, zone_id, name, 0)
            self._counts[zone_id] = {name: 0 for name in previous}
        return events

    def _follow_schedule(self, index: int, now: Stamp) -> tuple[bool, list[Event]]:
        """Whether rule ``index`` runs on this frame (its schedule holds at the frame's wall
        time), and the events of a window that closed: its open occurrences end there
        (``details.reason: schedule``) and its state goes ``OFF``. While paused the rule only
        observes (:meth:`Rule.observe_paused`); a rule whose window opens is built again, starting
        afresh as on a new stream, with what the paused one remembers of the objects
        (:meth:`Rule.carry_memory`: a head count keeps the animals hidden at the opening)."""
        rule = self.rules[index]
        runs = self._schedules[rule.id].holds(now.wall)
        off = rule.id in self._off_schedule
        if runs and off:
            self._off_schedule.discard(rule.id)
            fresh = build_rule(rule.config, self.stream_id, self.zones, self._ground)
            fresh.carry_memory(rule)
            self.rules[index] = fresh
            logger.info(
                "stream %r: rule %r runs (its schedule window opened)", self.stream_id, rule.id
            )
        elif not runs and not off:
            self._off_schedule.add(rule.id)
            closed = rule.close(now, reason="schedule")
            self._held_until.pop(rule.id, None)
            self._tell(rule, closed, None)
            logger.info("stream %r: rule %r paused (outside its schedule)", self.stream_id, rule.id)
            return False, closed
        return runs, []

    # ------------------------------------------------------------------ listeners

    def _report_start(self) -> None:
        """Every rule ``OFF`` and the classes the rules on a zone name at 0, before any frame:
        as a clean stop (:meth:`close`) leaves them. Retained topics may hold the values of a
        run that crashed (kill -9, power loss), and a camera that is down may deliver its
        first frame minutes later: until then they would show that run's alert as active.
        A rule that names no class leaves the other classes' counts as they were (every class
        of an 80-class model would be 80 topics and Home Assistant sensors per zone)."""
        for rule in self.rules:
            self._active[rule.id] = False
            self._call("on_rule_state", self.stream_id, rule.id, False)
        for zone_id, counts in self._counts.items():
            for name in sorted(counts):
                self._call("on_zone_count", self.stream_id, zone_id, name, 0)

    def _tell(self, rule: Rule, events: list[Event], now_pts: float | None) -> None:
        """Tell the listeners a rule's events and, when it changed, its state.

        ``now_pts`` is the rules' clock on this frame; ``None`` when the stream ended (nothing
        is held on any more).
        """
        for event in events:
            self._call("on_event", event)
        held = False
        if now_pts is not None:
            if rule.pulsed and rule.state_hold_s > 0:
                self._held_until[rule.id] = now_pts + rule.state_hold_s
            held = self._held_until.get(rule.id, -math.inf) > now_pts + TIME_EPS_S
        active = rule.active or held
        before = self._active.get(rule.id)
        if rule.pulsed and not active and not before:
            self._call("on_rule_state", self.stream_id, rule.id, True)
            self._call("on_rule_state", self.stream_id, rule.id, False)
        elif before != active:
            self._call("on_rule_state", self.stream_id, rule.id, active)
        self._active[rule.id] = active

    def _report_counts(self, ctx: FrameContext) -> None:
        objects = ctx.objects
        for zone in self.count_zones:
            counts: dict[str, int] = {}
            for name, value in zip(objects.class_names, objects.overlaps(zone), strict=True):
                if value >= COUNT_MIN_OVERLAP:
                    counts[name] = counts.get(name, 0) + 1
            previous = self._counts[zone.id]
            if ctx.warming_up:
                # Objects in view are still getting ids: a count may rise, not fall (after an
                # outage the retained counts would dip to 0 and back).
                counts = {
                    name: max(counts.get(name, 0), previous.get(name, 0))
                    for name in previous | counts
                }
            for name in sorted(set(previous) | set(counts)):
                count = counts.get(name, 0)
                if previous.get(name) != count:
                    self._call("on_zone_count", self.stream_id, zone.id, name, count)
            self._counts[zone.id] = {name: counts.get(name, 0) for name in previous | counts}

    def _call(self, method: str, *args: object) -> None:
        for listener in self.listeners:
            try:
                getattr(listener, method)(*args)
            except Exception:
                logger.exception(
                    "stream %r: event listener %s.%s failed; continuing",
                    self.stream_id,
                    type(listener).__name__,
                    method,
                )

"""What every rule kind shares: the frame context, the per-track bookkeeping, lost tracks.

A rule object serves one rule on one stream. :meth:`Rule.evaluate` sees that stream's frames in
order and returns the events of the frame; the engine calls it once per frame.

Lost tracks: a track the rule follows that has not been seen for more than the rule's
``lost_timeout_s`` is dropped; an occurrence it had open ends then, with
``details["reason"] == "lost"`` and ``ended_at`` at the last frame the track was seen. A track
that comes back within ``lost_timeout_s`` keeps its state (the gap neither starts nor ends
anything by itself); one that comes back later starts afresh.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from streamseg.config.rules import RuleConfig
from streamseg.rules.events import Event
from streamseg.rules.lifecycle import TIME_EPS_S, Debounce, OccurrenceBook, Stamp
from streamseg.rules.measures import FrameObjects

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameContext:
    """One frame as the rules see it.

    Attributes:
        stamp: the frame's times and index.
        objects: its confirmed tracks and their measures.
        hidden: ids of confirmed tracks unseen on this frame that the tracker keeps as hidden
            behind an object of another class (``HIDDEN_TRACK_IDS`` of its output).
        warming_up: the stream started (or came back after a gap that made the tracker drop
            its tracks) too recently for the tracker to have given the objects in view ids
            (:attr:`~streamseg.config.tracker.TrackerConfig.acquire_s`): an absence proves
            nothing.
        retracted: ids the tracker showed at once on a fresh start and withdrew on this frame
            (``RETRACTED_TRACK_IDS``): a flicker, forgotten at once, not kept as lost.
    """

    stamp: Stamp
    objects: FrameObjects
    hidden: frozenset[int] = frozenset()
    warming_up: bool = False
    retracted: frozenset[int] = frozenset()

    @property
    def frame_wh(self) -> tuple[int, int]:
        """(width, height) of the frame."""
        return self.objects.frame_wh


class Rule(ABC):
    """One rule on one stream.

    Args:
        config: the rule's config.
        stream_id: the stream it runs on.
        zone_id: the zone or line it watches, or ``None``.

    Attributes:
        pulsed: True when the last :meth:`evaluate` produced an instantaneous occurrence
            (its start and end on the same frame).
        state_hold_s: how long the engine reports the rule on after such an occurrence
            (``state_hold_s`` of the ``enter``, ``exit`` and ``cross`` configs; 0 for the
            other kinds, whose state follows their open occurrences).
    """

    def __init__(self, config: RuleConfig, stream_id: str, zone_id: str | None) -> None:
        self.config = config
        self.id = config.id
        self.kind = config.type
        self.stream_id = stream_id
        self.classes = frozenset(config.classes)
        self.book = OccurrenceBook(
            config.id,
            config.type,
            stream_id,
            zone_id,
            config.severity,
            config.cooldown_s,
            config.update_interval_s,
        )
        self.pulsed = False
        self.state_hold_s = float(getattr(config, "state_hold_s", 0.0))
        self.min_area = config.min_area_px
        self.max_area = config.max_area_px

    def watched(self, objects: FrameObjects) -> list[int]:
        """Indices of the objects this rule watches on a frame: of its classes, and showing
        between ``min_area_px`` and ``max_area_px`` mask pixels (when set). An object outside
        that range is, for the rule, not seen on that frame."""
        found = objects.of_classes(self.classes)
        if self.min_area is None and self.max_area is None:
            return found
        least = self.min_area or 0
        most = self.max_area if self.max_area is not None else math.inf
        return [k for k in found if least <= objects.area(k) <= most]

    @property
    def active(self) -> bool:
        """Whether any occurrence of this rule is open on the stream."""
        return bool(self.book.open)

    @abstractmethod
    def evaluate(self, ctx: FrameContext) -> list[Event]:
        """The events this rule raises on one frame."""

    def update_details(self, key: Hashable) -> dict[str, Any]:
        """Details of a periodic ``update`` of the occurrence of ``key``."""
        return {}

    def current_tracks(self, key: Hashable) -> tuple[list[int], list[str]] | None:
        """The tracks (ids, classes) a message about ``key`` names now, when they can change
        during an occurrence (``near``: A and its nearest B); ``None``: as at the start."""
        return None

    def periodic_updates(self, now: Stamp) -> list[Event]:
        """The ``update`` messages due on this frame (every ``update_interval_s``)."""
        events = []
        for key in self.book.due_updates(now.pts):
            tracks = self.current_tracks(key)
            ids, names = tracks if tracks is not None else (None, None)
            details = {**self.update_details(key), **self.staleness(key, now)}
            events.append(self.book.update(key, now, details, ids, names))
        return events

    def staleness(self, key: Hashable, now: Stamp) -> dict[str, Any]:
        """Details that say an ``update``'s figures are not this frame's (see
        :meth:`TrackRule.staleness`); ``{}`` when they are."""
        return {}

    def observe_paused(self, ctx: FrameContext) -> None:
        """Keep what the rule remembers of the objects on a frame it does not run on (its
        schedule pauses it); raises nothing. By default it remembers nothing across a pause."""
        return

    def carry_memory(self, paused: Rule) -> None:
        """Take over what ``paused`` (this rule before its pause) remembers of the objects,
        when its schedule window opens; by default nothing."""
        return

    def close(self, now: Stamp, reason: str = "stream_end") -> list[Event]:
        """End every open occurrence at ``now``: the stream ended (``details["reason"]`` is
        ``stream_end``), or the rule's schedule window closed (``schedule``)."""
        self.pulsed = False
        return [self.book.end(key, now, now, {"reason": reason}) for key in list(self.book.open)]


@dataclass(slots=True)
class TrackState:
    """What a per-track rule remembers about one track.

    Attributes:
        last_seen: the last frame the track was seen on (during :meth:`TrackRule.observe`: the
            frame being observed).
        seen_before: the frame the track was seen on before ``last_seen`` (``None`` on its
            first frame).
        unseen_since: ``seen_before`` when the track was not seen on the frame before
            ``last_seen`` (it comes back after frames without it), else ``None``.
        debounce: the debounced condition.
        last_true: the last frame the (raw) condition held, or ``None``.
        value: a kind-specific figure from the last frame (overlap, distance, ...).
        other: a kind-specific companion (the nearest other track of ``near``).
        fired: kind-specific flag (``dwell``: the current visit already raised).
        held: unseen, and reported hidden behind another object by the tracker on the last
            frame evaluated: kept past ``lost_timeout_s`` (:class:`TrackRule`).
        extra: other kind-specific figures (``dwell``: ``entered_pts``).
    """

    last_seen: Stamp
    debounce: Debounce
    seen_before: Stamp | None = None
    unseen_since: Stamp | None = None
    last_true: Stamp | None = None
    value: float | None = None
    other: tuple[int, str] | None = None
    fired: bool = False
    held: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class TrackRule(Rule):
    """A rule with one state (and at most one open occurrence) per track.

    Subclasses implement :meth:`observe` (one track seen on one frame) and may override
    :meth:`lost` (a track gone for longer than ``lost_timeout_s``).

    A track is not lost while the tracker reports it hidden behind an object of another class
    (:attr:`FrameContext.hidden`), however long past ``lost_timeout_s``: a worker behind the
    machine in its swing zone is still there, and one alert covers the whole stay; the side of
    a zone or line a hidden track was last on is kept too, so one that comes out on the other
    side raises its ``enter``, ``exit`` or ``cross`` (the tracker says it is the same object).
    Once the tracker gives the track up (``hidden_buffer_s``) or finds it again, the usual rules
    apply.
    """

    initial_state: bool | None = False
    """Debounced state of a new track: ``False`` (outside, apart) or ``None`` (unknown: the
    first observations set it without an event; ``enter``/``exit``/``cross``)."""

    def __init__(self, config: RuleConfig, stream_id: str, zone_id: str | None) -> None:
        super().__init__(config, stream_id, zone_id)
        self.tracks: dict[int, TrackState] = {}
        self.min_duration_s = config.min_duration_s
        self.lost_timeout_s = config.lost_timeout_s
        self._hidden: frozenset[int] = frozenset()
        """The tracks the tracker holds hidden on the frame being evaluated."""
        self._previous: Stamp | None = None
        """The frame evaluated before this one."""

    def evaluate(self, ctx: FrameContext) -> list[Event]:
        """Observe every track of the rule's classes, drop lost ones, send due updates."""
        self.pulsed = False
        self._hidden = ctx.hidden
        events: list[Event] = []
        now = ctx.stamp
        objects = ctx.objects
        tracks = self.tracks
        track_ids = objects.track_ids
        indices = self.watched(objects)
        # A track last seen before `oldest` has been unseen for longer than lost_timeout_s.
        oldest = now.pts - (self.lost_timeout_s + TIME_EPS_S)
        for k in indices:
            track_id = track_ids[k]
            state = tracks.get(track_id)
            if state is not None and not state.held and state.last_seen.pts < oldest:
                # Back after longer than lost_timeout_s, with no frame in between to notice (a
                # stalled stream) or on the first frame past it: lost all the same, and it
                # starts afresh.
                self.lost(track_id, tracks.pop(track_id), now, events)
                state = None
            if state is None:
                state = TrackState(now, Debounce(self.initial_state))
                tracks[track_id] = state
            else:
                if state.held and state.last_seen.pts < oldest:
                    # Back from longer than lost_timeout_s hidden: a change it was waiting to
                    # confirm before it went must be seen for min_duration_s again, so an event
                    # is never dated further back than max_start_lead_s allows for.
                    state.debounce.drop_pending()
                state.seen_before = state.last_seen
                state.held = False
            previous = self._previous
            before = state.seen_before
            state.unseen_since = (
                before
                if before is not None and previous is not None and before.pts < previous.pts
                else None
            )
            state.last_seen = now
            self.observe(ctx, k, track_id, state, events)
        for track_id in ctx.retracted & tracks.keys():  # a flicker: gone, not lost for a while
            self.lost(track_id, tracks.pop(track_id), now, events)
        if len(tracks) > len(indices):
            gone = []
            for track_id, state in tracks.items():
                if state.last_seen is now:
                    continue
                # Noted on every unseen frame, not only past lost_timeout_s: a track found again
                # on the first frame past it is no longer listed hidden on that frame.
                state.held = track_id in ctx.hidden
                if state.last_seen.pts < oldest and not state.held:
                    gone.append(track_id)
            for track_id in gone:
                self.lost(track_id, tracks.pop(track_id), now, events)
        if self.book.open:
            events.extend(self.periodic_updates(now))
        self._previous = now
        return events

    def staleness(self, key: Hashable, now: Stamp) -> dict[str, Any]:
        """For an ``update`` of a track not seen on this frame (hidden behind another object,
        or within ``lost_timeout_s``): ``last_seen_pts``, the frame its figures (overlap,
        distance) are from, and ``hidden`` when the tracker holds it hidden. A consumer would
        otherwise read them as this frame's."""
        state = self.tracks.get(key) if isinstance(key, int) else None
        if state is None or state.last_seen is now:
            return {}
        details: dict[str, Any] = {"last_seen_pts": state.last_seen.pts}
        if key in self._hidden:
            details["hidden"] = True
        return details

    @abstractmethod
    def observe(
        self, ctx: FrameContext, k: int, track_id: int, state: TrackState, events: list[Event]
    ) -> None:
        """Track ``track_id`` (object ``k`` of the frame) was seen; append any events."""

    def lost(self, track_id: int, state: TrackState, now: Stamp, events: list[Event]) -> None:
        """Track ``track_id`` has not been seen for ``lost_timeout_s``: end its occurrence.

        It ends at the last frame its condition held: a track last seen after it had left
        (too briefly for ``min_duration_s`` to confirm) was no longer inside when it vanished.
        """
        if track_id in self.book.open:
            occurrence = self.book.open[track_id]
            last = state.last_true
            if last is None or last.pts < occurrence.started.pts:
                last = state.last_seen
            events.append(
                self.book.end(
                    track_id,
                    now,
                    last,
                    {"reason": "lost", "last_seen_pts": state.last_seen.pts},
                )
            )

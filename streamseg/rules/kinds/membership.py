"""Rules on whether an object is inside a polygon zone: ``inside``, ``enter``, ``exit``,
``dwell``.

"Inside" is decided per frame by the rule's ``basis`` (see :mod:`streamseg.rules.measures`),
then debounced with ``min_duration_s`` on the way in and on the way out.

- ``inside``: an occurrence per (rule, track) from the first frame of a debounced stay inside
  to the end of it (``details.reason``: ``left``, ``lost`` or ``stream_end``).
- ``enter`` / ``exit``: instantaneous. A track whose debounced state goes outside -> inside
  (``enter``) or inside -> outside (``exit``) raises a ``start`` and an ``end`` together on the
  frame that confirms it, both dated to the first frame of the new state. A track's first
  state is where it is first seen, taken at once (it is no transition, so it needs no
  ``min_duration_s``), and a track lost inside never "exits" (it may be hidden, not gone). A
  transition first seen on a track's return after frames without it (missed detections, or
  hidden behind another object) happened unseen: its ``details.unseen_since_pts`` is the
  track's last frame before them, so it happened between then and ``started_pts``.
- ``dwell``: starts once a track has been inside (debounced) for ``dwell_s``, ends when it
  leaves (debounced) or is lost; one occurrence per visit.
"""

from __future__ import annotations

import logging
from typing import Any

from streamseg.config.rules import (
    DwellRuleConfig,
    EnterRuleConfig,
    ExitRuleConfig,
    InsideRuleConfig,
)
from streamseg.rules.events import Event
from streamseg.rules.geometry import PolygonZone
from streamseg.rules.kinds.base import FrameContext, TrackRule, TrackState
from streamseg.rules.lifecycle import TIME_EPS_S

logger = logging.getLogger(__name__)

MembershipConfig = InsideRuleConfig | EnterRuleConfig | ExitRuleConfig | DwellRuleConfig


def _figures(basis: str, overlap: float | None) -> dict[str, Any]:
    details: dict[str, Any] = {"basis": basis}
    if overlap is not None:
        details["overlap"] = round(overlap, 4)
    return details


class _MembershipRule(TrackRule):
    """Shared by the membership kinds: the zone and the per-frame test."""

    def __init__(self, config: MembershipConfig, stream_id: str, zone: PolygonZone) -> None:
        super().__init__(config, stream_id, zone.id)
        self.zone = zone
        self.basis = config.basis
        self.min_overlap = config.min_overlap
        self._inside: list[bool] = []
        self._overlap: list[float | None] = []

    def evaluate(self, ctx: FrameContext) -> list[Event]:
        """Every object's membership at once, then the per-track loop."""
        self._inside, self._overlap = ctx.objects.members(self.zone, self.basis, self.min_overlap)
        return super().evaluate(ctx)

    def test(self, ctx: FrameContext, k: int, state: TrackState) -> bool:
        """This frame's raw membership of object ``k``; records it in ``state``."""
        inside = self._inside[k]
        state.value = self._overlap[k]
        if inside:
            state.last_true = ctx.stamp
        return inside

    def update_details(self, key: object) -> dict[str, Any]:
        state = self.tracks.get(key) if isinstance(key, int) else None
        return _figures(self.basis, state.value if state is not None else None)


class InsideRule(_MembershipRule):
    """``inside``: active while a track is inside the zone (module docstring)."""

    def observe(
        self, ctx: FrameContext, k: int, track_id: int, state: TrackState, events: list[Event]
    ) -> None:
        now = ctx.stamp
        inside = self.test(ctx, k, state)
        changed = state.debounce.update(inside, now, self.min_duration_s)
        book = self.book
        if state.debounce.state:
            # Only on a frame where it is inside: a start held back by cooldown_s must not come
            # while the track is on its way out (its end would precede it).
            if inside and book.can_start(track_id, now.pts):
                first = state.debounce.since if changed and state.debounce.since else now
                events.append(
                    book.start(
                        track_id,
                        first,
                        now,
                        (track_id,),
                        (ctx.objects.class_names[k],),
                        _figures(self.basis, state.value),
                    )
                )
        elif track_id in book.open:
            last = state.last_true or now
            occurrence = book.open[track_id]
            events.append(
                book.end(
                    track_id,
                    now,
                    last,
                    {"reason": "left", "duration_s": round(last.pts - occurrence.started.pts, 3)},
                )
            )


class _TransitionRule(_MembershipRule):
    """``enter`` / ``exit``: an instantaneous occurrence on a debounced transition."""

    initial_state = None
    target = True
    """The debounced state the transition goes to (True: enter, False: exit)."""

    def observe(
        self, ctx: FrameContext, k: int, track_id: int, state: TrackState, events: list[Event]
    ) -> None:
        now = ctx.stamp
        inside = self.test(ctx, k, state)
        if state.debounce.state is None:
            # Where a track is first seen raises nothing, so it needs no wait (as for cross):
            # a track seen outside for less than min_duration_s that then walks in enters.
            state.debounce.update(inside, now, 0.0)
            return
        if not state.debounce.update(
            inside, now, self.min_duration_s, unseen_since=state.unseen_since
        ):
            return
        if state.debounce.state is not self.target:
            return  # the other transition
        if not self.book.can_start(track_id, now.pts):
            return  # cooling down: this transition raises nothing
        first = state.debounce.since or now
        details = _figures(self.basis, state.value)
        if state.debounce.unseen_since is not None:
            details["unseen_since_pts"] = state.debounce.unseen_since.pts
        events.extend(
            self.book.pulse(
                track_id, first, now, (track_id,), (ctx.objects.class_names[k],), details
            )
        )
        self.pulsed = True


class EnterRule(_TransitionRule):
    """``enter``: outside -> inside."""

    target = True


class ExitRule(_TransitionRule):
    """``exit``: inside -> outside."""

    target = False


class DwellRule(_MembershipRule):
    """``dwell``: inside for at least ``dwell_s`` (module docstring)."""

    def __init__(self, config: DwellRuleConfig, stream_id: str, zone: PolygonZone) -> None:
        super().__init__(config, stream_id, zone)
        self.dwell_s = config.dwell_s

    def observe(
        self, ctx: FrameContext, k: int, track_id: int, state: TrackState, events: list[Event]
    ) -> None:
        now = ctx.stamp
        inside = self.test(ctx, k, state)
        state.debounce.update(inside, now, self.min_duration_s)
        book = self.book
        if state.debounce.state:
            entered = state.debounce.since or now
            dwell = now.pts - entered.pts
            if (
                not state.fired
                and inside  # not while on its way out: that visit may already be over
                and dwell >= self.dwell_s - TIME_EPS_S
                and book.can_start(track_id, now.pts)
            ):
                state.fired = True
                state.extra["entered_pts"] = entered.pts
                details = _figures(self.basis, state.value)
                details.update(dwell_s=round(dwell, 3), entered_pts=entered.pts)
                events.append(
                    book.start(
                        track_id, now, now, (track_id,), (ctx.objects.class_names[k],), details
                    )
                )
            return
        state.fired = False
        if track_id in book.open:
            entered_pts = float(state.extra.get("entered_pts", now.pts))
            last = state.last_true or now
            events.append(
                book.end(
                    track_id,
                    now,
                    last,
                    {"reason": "left", "dwell_s": round(last.pts - entered_pts, 3)},
                )
            )

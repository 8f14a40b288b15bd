"""``count``: the number of objects of the rule's classes inside a zone is above (or below) a
threshold for ``min_duration_s``.

The count on a frame is the number of confirmed tracks of the classes inside the zone (by the
rule's ``basis``), plus tracks last seen inside less than ``lost_timeout_s`` ago, or that the
tracker still reports hidden behind an object of another class (:attr:`FrameContext.hidden`):
an animal hidden behind another still counts, so "head count below N" does not fire on an
occlusion. The condition is ``count > above`` or ``count < below`` (strict), debounced
with ``min_duration_s`` on the way in and out. While the stream warms up (its start, a camera
back after an outage: :attr:`FrameContext.warming_up`) the count proves nothing (objects in view
may have no id yet, and one given at once on the fresh start may be a flicker the tracker
withdraws), so nothing is judged: the state stands.

One zone-level occurrence at a time: ``start`` lists the tracks inside then (``track_ids``,
possibly empty) and ``details.count``; an ``update`` follows when that set of tracks changes
(at most once per :data:`TRACK_SET_UPDATE_MIN_S`) and every ``update_interval_s``; ``end`` when
the condition has been false for ``min_duration_s`` (``details.reason``: ``cleared``).
"""

from __future__ import annotations

import logging
from typing import Any

from streamseg.config.rules import CountRuleConfig
from streamseg.rules.events import Event
from streamseg.rules.geometry import PolygonZone
from streamseg.rules.kinds.base import FrameContext, Rule
from streamseg.rules.lifecycle import TIME_EPS_S, Debounce, Stamp

logger = logging.getLogger(__name__)

TRACK_SET_UPDATE_MIN_S = 1.0
"""Least time between two ``update`` messages sent because the tracks inside changed."""


class CountRule(Rule):
    """``count`` on one stream (module docstring)."""

    def __init__(self, config: CountRuleConfig, stream_id: str, zone: PolygonZone) -> None:
        super().__init__(config, stream_id, zone.id)
        self.zone = zone
        self.basis = config.basis
        self.min_overlap = config.min_overlap
        self.above = config.above
        self.below = config.below
        self.min_duration_s = config.min_duration_s
        self.lost_timeout_s = config.lost_timeout_s
        self.debounce = Debounce(False)
        self.inside: dict[int, tuple[str, float]] = {}
        """Track id -> (class, stream seconds it was last seen inside)."""
        self.count = 0
        self.last_true: Stamp | None = None

    def _threshold(self) -> dict[str, Any]:
        return {"above": self.above} if self.above is not None else {"below": self.below}

    def _condition(self, count: int) -> bool:
        if self.above is not None:
            return count > self.above
        return self.below is not None and count < self.below

    def observe_paused(self, ctx: FrameContext) -> None:
        """Update which tracks are inside (seen there, or hidden since: see the module
        docstring); runs on every frame, paused by a schedule or not."""
        now = ctx.stamp
        objects = ctx.objects
        inside = self.inside
        members = objects.members(self.zone, self.basis, self.min_overlap)[0]
        for k in self.watched(objects):
            track_id = objects.track_ids[k]
            if members[k]:
                inside[track_id] = (objects.class_names[k], now.pts)
            else:
                inside.pop(track_id, None)
        for track_id in ctx.retracted:  # a flicker the tracker withdrew: no lost tolerance
            inside.pop(track_id, None)
        timeout = self.lost_timeout_s
        stale = [
            t
            for t, (_, seen) in inside.items()
            if now.pts - seen > timeout + TIME_EPS_S and t not in ctx.hidden
        ]
        for track_id in stale:
            del inside[track_id]
        self.count = len(inside)

    def carry_memory(self, paused: Rule) -> None:
        """The tracks the paused rule has inside: an animal hidden behind another when the
        window opens still counts."""
        if isinstance(paused, CountRule):
            self.inside = dict(paused.inside)
            self.count = len(self.inside)

    def evaluate(self, ctx: FrameContext) -> list[Event]:
        """Count, debounce, and start/update/end the zone's occurrence."""
        now = ctx.stamp
        self.observe_paused(ctx)
        inside = self.inside
        # While the tracker may not have confirmed what is in view (the stream's start, a
        # camera back after an outage) the count proves nothing: "fewer than N" would start on
        # every stream start with the animals all there, an outage would end and restart a
        # "more than N", and a flicker shown at once would count. The state stands meanwhile,
        # and a change that was waiting for min_duration_s starts its wait afresh once judged.
        judged = not ctx.warming_up
        if not judged:
            self.debounce.drop_pending()
        holds = judged and self._condition(self.count)
        if holds:
            self.last_true = now
        changed = judged and self.debounce.update(holds, now, self.min_duration_s)
        events: list[Event] = []
        book = self.book
        ids, names = list(inside), [cls for cls, _ in inside.values()]
        if self.debounce.state:
            # Only on a frame where the condition holds (see InsideRule).
            if holds and book.can_start(None, now.pts):
                first = self.debounce.since if changed and self.debounce.since else now
                details = {"count": self.count, **self._threshold()}
                events.append(book.start(None, first, now, ids, names, details))
            elif None in book.open and judged:  # no update tells of a count not judged
                occurrence = book.open[None]
                if (
                    tuple(sorted(ids)) != occurrence.track_ids
                    and now.pts - occurrence.last_message_pts >= TRACK_SET_UPDATE_MIN_S
                ):
                    events.append(book.update(None, now, self.update_details(None), ids, names))
                else:
                    events.extend(self.periodic_updates(now))
        elif None in book.open:
            details = {"count": self.count, "reason": "cleared", **self._threshold()}
            events.append(book.end(None, now, self.last_true or now, details))
        return events

    def update_details(self, key: object) -> dict[str, Any]:
        return {"count": self.count, **self._threshold()}

r"""``cross``: an object's anchor moves from one side of a line zone to the other.

Sides are named looking from the line's first point A (``points[0]``) towards its second point
B (``points[1]``), as drawn on the image (x to the right, rows growing downwards)::

                 left side
        A ●━━━━━━━━━━━━━━━━━━━━━━━━━━━▶● B          ``left_to_right``: from above to below
                 right side                          ``right_to_left``: from below to above

        B ●                                          a line drawn upwards (A at the bottom):
          ▲      left | right                        ``left_to_right`` is a move to the
          ┃           |                              right on the screen
        A ●

The side of a track on a frame is that of its anchor (``anchor``: the box's bottom-centre by
default, where an object stands on a line drawn on the ground; ``center``; or the mask's
``centroid``). A frame gives no side when the anchor is within ``margin_px`` of the line (the
hysteresis band) or beyond the segment's ends (its projection falls outside A..B). Frames in the
band neither confirm nor break a crossing; a frame beyond the ends also makes the track forget
its side, so going round the end of the line (left, past the end, then right) is no crossing.

The first side a track is seen on (outside the band) is where it starts. That raises nothing,
so it needs no wait: a track born next to the line (a player coming out of a pack) would
otherwise lose a crossing made before it had held its first side for ``min_duration_s``. Every
later change of side is a crossing once the new side has held ``min_duration_s``, counted from
the moment the track probably crossed: midway between its last frame before (on the old side,
in the band, or the last before frames where its detection was missed) and its first frame on
the new side, at most half of ``min_duration_s`` before that first frame. So missed detections
around the line do not cost the track time it did spend on the other side, and at least half of
``min_duration_s`` is still seen there.

On the held-out pitch scenes of ``bench/events.py`` (scene seeds 5-12 occlusion and 5-8 easy),
end-to-end F1 of the halfway crossings went from 0.764 to 0.796 with these two (recall 0.641 ->
0.682, precision 0.946 -> 0.956), and 0.994 through the tracker with ground-truth detections
either way: most crossings lost to them were made in packs, where detections come and go.

A crossing is raised as an instantaneous occurrence (``start`` and ``end`` on the confirming
frame, both dated to the first frame seen on the new side) when it matches ``direction``. When
that frame came after frames without the track (missed, or hidden behind another object),
``details.unseen_since_pts`` is its last frame before them (also when it came back in the band
first): the crossing happened unseen, between then and ``started_pts``; whether it passed
between the line's ends then cannot be told. So an object jittering across the line, or staying
inside the band, never fires; only confirmed tracks count (as for every rule). ``cooldown_s``
drops crossings of the same track for that long after one fired.
"""

from __future__ import annotations

import logging

from streamseg.config.rules import CrossRuleConfig
from streamseg.rules.events import Event
from streamseg.rules.geometry import LineZone
from streamseg.rules.kinds.base import FrameContext, TrackRule, TrackState
from streamseg.rules.lifecycle import Debounce

logger = logging.getLogger(__name__)


BEYOND = "beyond"
""":meth:`CrossRule.side` of an anchor whose projection falls outside the segment."""

UNSEEN_IN_BAND = "unseen_since_in_band"
"""``TrackState.extra`` key: the frame before a gap, for a track that came back in the band."""


class CrossRule(TrackRule):
    """``cross`` on one stream (module docstring). The debounced state is "on the right"."""

    initial_state = None

    def __init__(self, config: CrossRuleConfig, stream_id: str, line: LineZone) -> None:
        super().__init__(config, stream_id, line.id)
        self.line = line
        self.anchor = config.anchor
        self.margin_px = config.margin_px
        self.direction = config.direction

    def side(self, ctx: FrameContext, k: int) -> bool | str | None:
        """True on the right, False on the left, None in the band, :data:`BEYOND` beyond the
        segment's ends."""
        segment = self.line.segment(ctx.frame_wh)
        x, y = ctx.objects.anchor(k, self.anchor)
        t = segment.along(x, y)
        if t < 0.0 or t > 1.0:
            return BEYOND
        distance = segment.signed_distance(x, y)
        if abs(distance) <= self.margin_px:
            return None
        return distance > 0.0

    def observe(
        self, ctx: FrameContext, k: int, track_id: int, state: TrackState, events: list[Event]
    ) -> None:
        now = ctx.stamp
        right = self.side(ctx, k)
        if right is BEYOND:
            # Past an end the track is on neither side, and the side it was on no longer
            # counts: walking round the end of the line is no crossing (it was one: left,
            # beyond the end, then right).
            state.debounce = Debounce(self.initial_state)
            state.extra.pop(UNSEEN_IN_BAND, None)
            return
        unseen_since = state.unseen_since or state.extra.pop(UNSEEN_IN_BAND, None)
        if right is None:
            if unseen_since is not None:
                # Back in the band after frames without it: the side it comes out on may be
                # a crossing made unseen.
                state.extra[UNSEEN_IN_BAND] = unseen_since
            return
        assert isinstance(right, bool)
        gap = now.pts - state.seen_before.pts if state.seen_before is not None else 0.0
        credit = min(gap / 2.0, self.min_duration_s / 2.0)
        if state.debounce.state is None:
            # Where the track starts raises nothing, so it needs no wait (module docstring).
            state.debounce.update(right, now, 0.0)
            return
        if not state.debounce.update(
            right, now, self.min_duration_s, credit, unseen_since=unseen_since
        ):
            return
        direction = "left_to_right" if right else "right_to_left"
        if self.direction not in ("any", direction):
            return
        if not self.book.can_start(track_id, now.pts):
            return
        details: dict[str, object] = {"direction": direction, "anchor": self.anchor}
        if state.debounce.unseen_since is not None:
            details["unseen_since_pts"] = state.debounce.unseen_since.pts
        events.extend(
            self.book.pulse(
                track_id,
                state.debounce.since or now,
                now,
                (track_id,),
                (ctx.objects.class_names[k],),
                details,
            )
        )
        self.pulsed = True

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
hysteresis band) or beyond the segment's ends (its projection falls outside A..B): such frames
neither confirm nor break a crossing.

A track's side is debounced with ``min_duration_s``: the first side it holds that long is where
it starts (no event); every later change of debounced side is a crossing, raised as an
instantaneous occurrence (``start`` and ``end`` on the confirming frame, both dated to the
first frame seen on the new side) when it matches ``direction``. So an object jittering across
the line, or staying inside the band, never fires; only confirmed tracks count (as for every
rule). ``cooldown_s`` drops crossings of the same track for that long after one fired.
"""

from __future__ import annotations

import logging

from streamseg.config.rules import CrossRuleConfig
from streamseg.rules.events import Event
from streamseg.rules.geometry import LineZone
from streamseg.rules.kinds.base import FrameContext, TrackRule, TrackState

logger = logging.getLogger(__name__)


class CrossRule(TrackRule):
    """``cross`` on one stream (module docstring). The debounced state is "on the right"."""

    initial_state = None

    def __init__(self, config: CrossRuleConfig, stream_id: str, line: LineZone) -> None:
        super().__init__(config, stream_id, line.id)
        self.line = line
        self.anchor = config.anchor
        self.margin_px = config.margin_px
        self.direction = config.direction

    def side(self, ctx: FrameContext, k: int) -> bool | None:
        """True on the right, False on the left, None in the band or beyond the ends."""
        segment = self.line.segment(ctx.frame_wh)
        x, y = ctx.objects.anchor(k, self.anchor)
        t = segment.along(x, y)
        if t < 0.0 or t > 1.0:
            return None
        distance = segment.signed_distance(x, y)
        if abs(distance) <= self.margin_px:
            return None
        return distance > 0.0

    def observe(
        self, ctx: FrameContext, k: int, track_id: int, state: TrackState, events: list[Event]
    ) -> None:
        now = ctx.stamp
        right = self.side(ctx, k)
        if right is None:
            return
        before = state.debounce.state
        if not state.debounce.update(right, now, self.min_duration_s) or before is None:
            return
        direction = "left_to_right" if right else "right_to_left"
        if self.direction not in ("any", direction):
            return
        if not self.book.can_start(track_id, now.pts):
            return
        events.extend(
            self.book.pulse(
                track_id,
                state.debounce.since or now,
                now,
                (track_id,),
                (ctx.objects.class_names[k],),
                {"direction": direction, "anchor": self.anchor},
            )
        )
        self.pulsed = True

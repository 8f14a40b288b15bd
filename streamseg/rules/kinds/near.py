"""``near``: an object of ``classes`` (A) whose mask comes within ``max_distance`` of the mask
of an object of ``other_classes`` (B).

One occurrence per (rule, track A): "this worker is too close to a machine". ``track_ids`` are
A and the nearest B when the message was made; ``details`` carry ``track_id`` (A),
``other_track_id`` (the B it was last near) and, while A is within ``max_distance`` of a B, the
distance (``distance_px`` or ``distance_m``; left out on a frame where it is farther, as on an
``end`` with reason ``apart``). The condition is ``distance < max_distance``, debounced with
``min_duration_s`` both ways; it ends when A has been apart from every B for
``min_duration_s`` (``details.reason``: ``apart``) or A is lost.

A frame on which the B that A was last near is not detected tells nothing about the distance
between them: for ``lost_timeout_s`` after B's last sighting, A's frames neither confirm nor
break the condition, as frames where A itself is unseen do, and carry no distance (an ``update``
then says ``other_last_seen_pts``). So a machine whose detection flickers does not end a
worker's alert early; a machine unseen for longer than ``lost_timeout_s`` leaves the worker
apart, even one the tracker holds hidden (its distance to the worker, who may have walked away,
stays unknown).

A and B may share a class (person near person): an object is never near itself, and each of the
two is an A with its own occurrence (two workers too close raise two, one per worker).

With ``other_moving``, only a B that moves counts ("a worker within 2 m of a moving machine"):
one whose mask changed by ``min_motion`` within ``motion_window_s``
(:mod:`streamseg.rules.motion`: a truck driving, an excavator swinging or digging on the spot).
A B standing still for longer is, for the rule, not there: a worker beside a parked truck raises
nothing, and an alert ends (``apart``) ``min_duration_s`` after the machine stopped. A B's
masks are kept every ``motion_window_s / 4`` while it is seen (paused by a schedule, the rule
keeps none); whether it moves is judged only when it is the nearest B of an A within
``max_distance`` (see :meth:`NearRule._measure`). A B watched for less
than half the window (new, or back after longer than the window unseen) counts once its mask
has changed enough, and until then is, for an A that was near it, as one unseen (its frames
neither confirm nor break the condition). Pixels of other tracked objects are not compared (an
object the tracker has not confirmed yet is not one of them).

Distances:

- ``units: px``: the exact smallest distance between a pixel of A's mask and a pixel of B's
  (pixel centres; 0 when they overlap), from a Euclidean distance transform of the B masks
  around A (:meth:`FrameObjects.nearest_mask_px`). No box approximation: boxes only skip
  pairs that cannot be near.
- ``units: m``: on the ground plane of the stream's calibration. Each mask's ground-contact
  profile (the lowest mask pixel of each column: where the object stands; at most
  :data:`~streamseg.rules.footprints.FOOTPRINT_POINTS` columns spread evenly over the box, its
  first and last included) is mapped to the ground with the homography, and the distance is
  the smallest between the two profiles.
  Mapping other mask pixels would be wrong: a pixel above the ground (a head, a boom) maps to
  a point far behind the object. A profile cut by an occluder sits too high and maps too far.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from streamseg.config.rules import NearRuleConfig
from streamseg.rules.events import Event
from streamseg.rules.geometry import GroundPlane
from streamseg.rules.kinds.base import FrameContext, TrackRule, TrackState
from streamseg.rules.lifecycle import TIME_EPS_S
from streamseg.rules.measures import FrameObjects
from streamseg.rules.motion import MotionHistory

logger = logging.getLogger(__name__)


def box_gaps_px(objects: FrameObjects, ks: list[int], js: list[int]) -> npt.NDArray[np.float64]:
    """(len(ks), len(js)) distances between the objects' pixel boxes (a lower bound of the
    mask distance)."""
    boxes = np.asarray(objects.boxes, dtype=np.float64)
    a, b = boxes[ks], boxes[js]
    dx = np.maximum(0.0, np.maximum(b[None, :, 0] - a[:, None, 2], a[:, None, 0] - b[None, :, 2]))
    dy = np.maximum(0.0, np.maximum(b[None, :, 1] - a[:, None, 3], a[:, None, 1] - b[None, :, 3]))
    return np.asarray(np.hypot(dx, dy), dtype=np.float64)


class NearRule(TrackRule):
    """``near`` on one stream (module docstring)."""

    def __init__(
        self, config: NearRuleConfig, stream_id: str, ground: GroundPlane | None = None
    ) -> None:
        super().__init__(config, stream_id, None)
        if config.units == "m" and ground is None:
            raise ValueError(
                f"rule {config.id!r} measures in metres but stream {stream_id!r} has no calibration"
            )
        self.others = frozenset(config.other_classes)
        self.max_distance = config.max_distance
        self.units = config.units
        self.ground = ground
        self._nearest: dict[int, tuple[float, int | None]] = {}
        self._others_seen: dict[int, float] = {}
        """B track id -> stream seconds it was last seen (for ``lost_timeout_s``)."""
        self._others_now: set[int] = set()
        """The B tracks seen on the frame being evaluated."""
        self.motion = (
            MotionHistory(config.motion_window_s, config.min_motion)
            if config.other_moving
            else None
        )
        """Which B move (``other_moving``); None: every B counts."""

    def _measure(self, ctx: FrameContext) -> None:
        """Nearest B of every A on this frame, into ``self._nearest`` (object index -> (d, j)).

        With ``other_moving``, every B's masks are kept, and whether a B moves is judged only
        for the B's that may be within ``max_distance`` of an A: in pixels, those whose box is
        (one pass); in metres, the B nearest to an A, and when it does not move, the next
        nearest (the ground distances are cheap next to the masks'). A B whose motion is
        unknown yet is, for this frame, as one unseen: the frames of an A that was near it
        neither confirm nor break its condition.
        """
        objects = ctx.objects
        ks = self.watched(objects)  # min/max_area_px filter A, not the B it is near
        js = objects.of_classes(self.others)
        self._nearest = {k: (math.inf, None) for k in ks}
        if self.motion is None:
            self._note_others(ctx, js)
            self._nearest.update(self._nearest_among(ctx, ks, js))
            return
        self.motion.keep(ctx.stamp.pts, objects, js)
        if self.units == "px":
            gaps = box_gaps_px(objects, ks, js)
            gaps[np.asarray(ks)[:, None] == np.asarray(js)[None, :]] = math.inf  # not itself
            close = gaps.min(axis=0, initial=math.inf) < self.max_distance
            candidates = [j for j, near in zip(js, close.tolist(), strict=True) if near]
            motion = self.motion.judge(ctx.stamp.pts, objects, candidates)
            self._note_others(ctx, [j for j in js if j not in motion.unknown])
            self._nearest.update(self._nearest_among(ctx, ks, sorted(motion.moving)))
            return
        judged: set[int] = set()
        unknown: set[int] = set()
        todo, remaining = ks, js
        while todo and remaining:
            found = self._nearest_among(ctx, todo, remaining)
            self._nearest.update(found)
            near = {j for d, j in found.values() if j is not None and d < self.max_distance}
            near -= judged
            if not near:
                break
            motion = self.motion.judge(ctx.stamp.pts, objects, sorted(near))
            judged |= near
            unknown |= motion.unknown
            still = near - motion.moving
            if not still:
                break
            remaining = [j for j in remaining if j not in still]
            todo = [k for k, (_, j) in found.items() if j in still]
            for k in todo:
                self._nearest[k] = (math.inf, None)
        self._note_others(ctx, [j for j in js if j not in unknown])

    def _nearest_among(
        self, ctx: FrameContext, ks: list[int], js: list[int]
    ) -> dict[int, tuple[float, int | None]]:
        """Nearest of objects ``js`` to each of ``ks`` within ``max_distance`` ((inf, None)
        when none is)."""
        nearest: dict[int, tuple[float, int | None]] = {k: (math.inf, None) for k in ks}
        if not ks or not js:
            return nearest
        objects = ctx.objects
        limit = self.max_distance
        if self.units == "m" and self.ground is not None:
            # Every footprint of the frame is mapped at once, and pairs are pruned by the
            # bounds of the footprints themselves before their points are compared.
            homography = self.ground.matrix(ctx.frame_wh)
            found = objects.nearest_ground_each(ks, js, homography, limit)
            nearest.update(zip(ks, found, strict=True))
            return nearest
        close = box_gaps_px(objects, ks, js) < limit
        for row in np.flatnonzero(close.any(axis=1)).tolist():
            k = ks[row]
            candidates = [js[col] for col in np.flatnonzero(close[row]).tolist() if js[col] != k]
            if candidates:
                nearest[k] = objects.nearest_mask_px(k, candidates, limit)
        return nearest

    def _note_others(self, ctx: FrameContext, js: list[int]) -> None:
        """Record which B tracks this frame shows; forget those unseen past lost_timeout_s."""
        pts = ctx.stamp.pts
        seen = {ctx.objects.track_ids[j] for j in js}
        self._others_now = seen
        others = self._others_seen
        oldest = pts - (self.lost_timeout_s + TIME_EPS_S)  # as TrackRule's own tracks
        for track_id in [t for t, last in others.items() if last < oldest]:
            del others[track_id]
        others.update(dict.fromkeys(seen, pts))

    def _other_unseen(self, state: TrackState) -> bool:
        """Whether the B that A was last near is missing from this frame but seen within
        ``lost_timeout_s``: A's distance to it is unknown."""
        if state.other is None:
            return False
        other = state.other[0]
        return other not in self._others_now and other in self._others_seen

    def evaluate(self, ctx: FrameContext) -> list[Event]:
        """Measure every A against every B once, then the per-track lifecycle."""
        self._measure(ctx)
        return super().evaluate(ctx)

    def _details(self, track_id: int, state: TrackState) -> dict[str, Any]:
        key = "distance_px" if self.units == "px" else "distance_m"
        details: dict[str, Any] = {"track_id": track_id}
        if state.other is not None:
            details["other_track_id"] = state.other[0]
        if state.value is not None and math.isfinite(state.value):
            details[key] = round(state.value, 3)
        elif state.other is not None and state.other[0] not in self._others_now:
            last = self._others_seen.get(state.other[0])
            if last is not None:
                details["other_last_seen_pts"] = last  # why there is no distance
        return details

    def observe(
        self, ctx: FrameContext, k: int, track_id: int, state: TrackState, events: list[Event]
    ) -> None:
        now = ctx.stamp
        objects = ctx.objects
        distance, j = self._nearest.get(k, (math.inf, None))
        near = j is not None and distance < self.max_distance
        if near and j is not None:
            state.value = distance
            state.other = (objects.track_ids[j], objects.class_names[j])
            state.last_true = now
        elif self._other_unseen(state):
            state.value = None  # unknown: the B it was near is unseen (module docstring)
            return
        else:
            state.value = None  # farther than max_distance from every B
        changed = state.debounce.update(near, now, self.min_duration_s)
        book = self.book
        if state.debounce.state:
            # Only on a frame where A is near (see InsideRule): not while it moves apart.
            if near and book.can_start(track_id, now.pts) and state.other is not None:
                first = state.debounce.since if changed and state.debounce.since else now
                events.append(
                    book.start(
                        track_id,
                        first,
                        now,
                        (track_id, state.other[0]),
                        (objects.class_names[k], state.other[1]),
                        self._details(track_id, state),
                    )
                )
        elif track_id in book.open:
            details = self._details(track_id, state)
            details["reason"] = "apart"
            ids, names = self.current_tracks(track_id) or (None, None)
            events.append(book.end(track_id, now, state.last_true or now, details, ids, names))

    def update_details(self, key: object) -> dict[str, Any]:
        if not isinstance(key, int) or key not in self.tracks:
            return {}
        return self._details(key, self.tracks[key])

    def current_tracks(self, key: object) -> tuple[list[int], list[str]] | None:
        """A and the B last near it (the module docstring: the nearest B of each message)."""
        if not isinstance(key, int):
            return None
        state = self.tracks.get(key)
        occurrence = self.book.open.get(key)
        if state is None or state.other is None or occurrence is None:
            return None
        cls = occurrence.class_names[occurrence.track_ids.index(key)]
        return [key, state.other[0]], [cls, state.other[1]]

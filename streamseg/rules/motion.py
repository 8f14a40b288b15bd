"""Whether a tracked object is moving, from its own pixels: its mask now against its recent masks.

A machine is *moving* when its mask differs from one of its masks of the last ``window_s``
seconds by at least ``min_change``: ``1 - IoU`` of the two masks, in frame pixels, counting only
the pixels that no other object covers in either frame. That covers a truck driving (the mask
shifts) and an excavator swinging its upper structure or working its arm while its tracks stand
still (the mask changes shape), which a box centre's speed misses; and a worker walking past a
parked truck, hiding a part of it, is not the truck moving. A pause shorter than ``window_s``
(an excavator between a swing and the dump) keeps it moving; standing still for longer does not.
An object watched for less than half the window (seen for the first time, or back after longer
than the window unseen) that has not yet changed that much is *unknown*, not still: a slow
truck needs a while to show it drives.

Frame-to-frame noise of a segmenter's masks on a still object stays mostly under the default
``min_change`` (``bench/motion.py`` measures both on the synthetic yard, with the built-in
model and the tracker).

A track's masks are sampled at most every ``window_s / SAMPLES_PER_WINDOW`` seconds, so a
frame costs at most that many comparisons per object, and only for the objects the caller asks
about (the others only give a sample when one is due). Each sample keeps the object's mask and
the other tracked objects' pixels over its box widened by :data:`MARGIN` on every side (where a
part of the object hidden behind another may lie), on the frame's pixels whose coordinates are
multiples of :data:`STRIDE` (a quarter of them: the measure is a share of pixels, not a
boundary).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from streamseg.rules.lifecycle import TIME_EPS_S
from streamseg.rules.measures import FrameObjects

logger = logging.getLogger(__name__)

SAMPLES_PER_WINDOW = 4
"""Masks kept per track and window (see the module docstring)."""

MARGIN = 0.25
"""A sample covers its object's box widened by this fraction of its width and height."""

STRIDE = 2
"""Samples keep the pixels whose frame coordinates are multiples of this."""

Box = tuple[int, int, int, int]
BoolArray = npt.NDArray[np.bool_]


class Motion(NamedTuple):
    """What :meth:`MotionHistory.observe` tells of the objects it was asked about (indices into
    the frame's objects): those that move, and those it cannot tell yet (module docstring)."""

    moving: set[int]
    unknown: set[int]


@dataclass(frozen=True, slots=True)
class MaskSample:
    """One object on one frame, over an inclusive pixel box.

    Attributes:
        pts: stream seconds of the frame.
        box: (x1, y1, x2, y2), inclusive, in pixels of a grid every ``STRIDE`` frame pixels
            (frame pixels for samples built by hand with the same grid throughout).
        mask: (h, w) bool over ``box``: the object's pixels.
        covered: (h, w) bool over ``box``: other objects' pixels, or None (none there).
        visible: ``mask`` less ``covered`` (derived).
        count: pixels of ``visible`` (derived).
    """

    pts: float
    box: Box
    mask: BoolArray
    covered: BoolArray | None = None
    visible: BoolArray = field(init=False, repr=False)
    count: int = field(init=False)

    def __post_init__(self) -> None:
        visible = self.mask if self.covered is None else self.mask & ~self.covered
        object.__setattr__(self, "visible", visible)
        object.__setattr__(self, "count", int(np.count_nonzero(visible)))


def visible_change(a: MaskSample, b: MaskSample) -> float:
    """``1 - IoU`` of two samples' masks over the pixels neither sample has covered by another
    object (0 when neither shows a pixel there). Only the boxes' overlap is read: outside it
    each mask is alone, and the other's covered pixels are not there."""
    inter = hidden_a = hidden_b = 0
    x1, y1 = max(a.box[0], b.box[0]), max(a.box[1], b.box[1])
    x2, y2 = min(a.box[2], b.box[2]), min(a.box[3], b.box[3])
    if x1 <= x2 and y1 <= y2:
        part_a = (slice(y1 - a.box[1], y2 - a.box[1] + 1), slice(x1 - a.box[0], x2 - a.box[0] + 1))
        part_b = (slice(y1 - b.box[1], y2 - b.box[1] + 1), slice(x1 - b.box[0], x2 - b.box[0] + 1))
        seen_a, seen_b = a.visible[part_a], b.visible[part_b]
        inter = int(np.count_nonzero(seen_a & seen_b))
        if b.covered is not None:
            hidden_a = int(np.count_nonzero(seen_a & b.covered[part_b]))
        if a.covered is not None:
            hidden_b = int(np.count_nonzero(seen_b & a.covered[part_a]))
    union = (a.count - hidden_a) + (b.count - hidden_b) - inter
    return 1.0 - inter / union if union > 0 else 0.0


def sample_of(objects: FrameObjects, k: int, pts: float) -> MaskSample:
    """Object ``k``'s sample on this frame: its mask and the other objects' pixels over its box
    widened by :data:`MARGIN`, within the frame, on the :data:`STRIDE` grid."""
    width, height = objects.frame_wh
    bx1, by1, bx2, by2 = objects.boxes[k]
    dx, dy = round((bx2 - bx1 + 1) * MARGIN), round((by2 - by1 + 1) * MARGIN)
    x1, y1 = -(-max(0, bx1 - dx) // STRIDE), -(-max(0, by1 - dy) // STRIDE)  # ceil
    x2, y2 = min(width - 1, bx2 + dx) // STRIDE, min(height - 1, by2 + dy) // STRIDE
    shape = (max(y2 - y1 + 1, 0), max(x2 - x1 + 1, 0))
    box = (x1, y1, x2, y2)
    # An object thinner than the grid may hold none of its pixels: an empty mask, no change.
    mask = np.zeros(shape, dtype=bool)
    _paste(objects, k, box, mask)
    covered: BoolArray | None = None
    boxes = objects._boxes_array()  # the others whose boxes meet the widened box, at once
    meets = (
        (boxes[:, 2] >= x1 * STRIDE)
        & (boxes[:, 0] <= x2 * STRIDE + STRIDE - 1)
        & (boxes[:, 3] >= y1 * STRIDE)
        & (boxes[:, 1] <= y2 * STRIDE + STRIDE - 1)
    )
    meets[k] = False
    others = np.flatnonzero(meets).tolist()
    if others:
        covered = np.zeros(shape, dtype=bool)
        for j in others:
            _paste(objects, j, box, covered)
        if not covered.any():
            covered = None
    return MaskSample(pts, box, mask, covered)


def _paste(objects: FrameObjects, j: int, box: Box, out: BoolArray) -> None:
    """OR object ``j``'s mask into ``out``, the grid ``box`` (grid pixels); nothing where its
    box holds no grid pixel there."""
    ox1, oy1, ox2, oy2 = objects.boxes[j]
    gx1, gy1 = max(box[0], -(-ox1 // STRIDE)), max(box[1], -(-oy1 // STRIDE))
    gx2, gy2 = min(box[2], ox2 // STRIDE), min(box[3], oy2 // STRIDE)
    if gx1 > gx2 or gy1 > gy2:
        return
    out[gy1 - box[1] : gy2 - box[1] + 1, gx1 - box[0] : gx2 - box[0] + 1] |= objects.crop(j)[
        gy1 * STRIDE - oy1 : gy2 * STRIDE - oy1 + 1 : STRIDE,
        gx1 * STRIDE - ox1 : gx2 * STRIDE - ox1 + 1 : STRIDE,
    ]


class MotionHistory:
    """Recent masks of the tracks of one stream, and which of them move (module docstring).

    Args:
        window_s: how far back a mask is compared, stream seconds (> 0).
        min_change: change from which an object moves, in (0, 1).
    """

    def __init__(self, window_s: float, min_change: float) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s!r}")
        if not 0 < min_change < 1:
            raise ValueError(f"min_change must be in (0, 1), got {min_change!r}")
        self.window_s = window_s
        self.min_change = min_change
        self._step = window_s / SAMPLES_PER_WINDOW
        self._samples: dict[int, deque[MaskSample]] = {}
        self.change: dict[int, float] = {}
        """Track id -> its largest change against its masks in the window, on the last frame
        it was observed on (0 with no earlier mask)."""
        self.watched_s: dict[int, float] = {}
        """Track id -> how far back its kept masks reached on that frame, seconds."""
        self._fresh: dict[int, MaskSample] = {}
        """The samples :meth:`keep` took on the frame at ``_fresh_pts`` (for :meth:`judge`)."""
        self._fresh_pts = -math.inf

    def observe(self, pts: float, objects: FrameObjects, indices: list[int]) -> Motion:
        """:meth:`keep` the masks of objects ``indices`` on the frame at ``pts``, then
        :meth:`judge` them all."""
        self.keep(pts, objects, indices)
        return self.judge(pts, objects, indices)

    def keep(self, pts: float, objects: FrameObjects, indices: list[int]) -> None:
        """Keep a sample of each of objects ``indices`` on the frame at ``pts`` for which one is
        due; forget the tracks unseen for longer than ``window_s``."""
        ids = objects.track_ids
        due = {ids[k]: sample_of(objects, k, pts) for k in indices if self.due(ids[k], pts)}
        self.keep_samples(pts, due)
        self._fresh, self._fresh_pts = due, pts

    def judge(self, pts: float, objects: FrameObjects, indices: list[int]) -> Motion:
        """Which of objects ``indices`` (kept on this frame first, :meth:`keep`) move, and
        which are unknown."""
        ids = objects.track_ids
        fresh = self._fresh if self._fresh_pts == pts else {}
        changes = self.judge_samples(
            pts, {ids[k]: fresh.get(ids[k]) or sample_of(objects, k, pts) for k in indices}
        )
        short = self.window_s / 2 - TIME_EPS_S
        moving = {k for k in indices if changes[ids[k]] >= self.min_change}
        unknown = {k for k in indices if k not in moving and self.watched_s[ids[k]] < short}
        return Motion(moving, unknown)

    def due(self, track_id: int, pts: float) -> bool:
        """Whether a sample of ``track_id`` at ``pts`` would be kept."""
        kept = self._samples.get(track_id)
        return not kept or pts - kept[-1].pts >= self._step - TIME_EPS_S

    def keep_samples(self, pts: float, samples: dict[int, MaskSample]) -> None:
        """Keep each sample (track id -> its sample on the frame at ``pts``) whose track is due
        one; forget the tracks unseen for longer than ``window_s``."""
        oldest = pts - self.window_s - TIME_EPS_S
        for track_id, now in samples.items():
            kept = self._samples.setdefault(track_id, deque())
            while kept and kept[0].pts < oldest:
                kept.popleft()
            if not kept or pts - kept[-1].pts >= self._step - TIME_EPS_S:
                kept.append(now)
        gone = [t for t, kept in self._samples.items() if not kept or kept[-1].pts < oldest]
        for track_id in gone:
            del self._samples[track_id]
            self.change.pop(track_id, None)
            self.watched_s.pop(track_id, None)

    def judge_samples(self, pts: float, samples: dict[int, MaskSample]) -> dict[int, float]:
        """The change (:attr:`change`) of each track's sample on the frame at ``pts`` against its
        kept samples of the window (the sample itself, when kept on this frame, left out)."""
        oldest = pts - self.window_s - TIME_EPS_S
        changes: dict[int, float] = {}
        for track_id, now in samples.items():
            earlier = [
                then
                for then in self._samples.get(track_id, ())
                if then is not now and then.pts >= oldest
            ]
            changes[track_id] = max((visible_change(now, then) for then in earlier), default=0.0)
            self.watched_s[track_id] = pts - earlier[0].pts if earlier else 0.0
        self.change.update(changes)
        return changes

    def observe_samples(self, pts: float, samples: dict[int, MaskSample]) -> dict[int, float]:
        """:meth:`keep_samples`, then :meth:`judge_samples` of every track given."""
        self.keep_samples(pts, samples)
        return self.judge_samples(pts, samples)

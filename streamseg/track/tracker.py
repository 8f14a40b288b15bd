"""MaskTracker: ByteTrack-style association on a fused box + mask similarity, timed in seconds.

Per :meth:`MaskTracker.update`:

1. The clock advances to the frame's timestamp (:class:`~streamseg.track.clock.TrackClock`;
   bad timestamps are logged and replaced, never fatal).
2. Every track's box is predicted to that time (:class:`~streamseg.track.kalman.BoxKalman`;
   lost tracks coast with a decaying velocity), and tracks lost for longer than
   ``lost_buffer_s`` are dropped, or ``hidden_buffer_s`` for a *hidden* track: one lost while
   its box overlapped the box of a detection of another class (a worker behind a machine). A
   hidden track lost for longer than ``lost_buffer_s`` is *dormant*: only stage four can
   resume it.
3. Stage one pairs the confident detections with all tracks but the dormant ones: confidence
   >= ``high_threshold``, or >= ``isolated_threshold`` for a detection whose box overlaps no
   other such detection by more than ``isolated_max_iou`` (IoU).
   Stage two pairs the other detections at or above ``low_threshold`` with the confirmed tracks
   left over. The similarity of a pair is ``(1 - w) * IoU(predicted box, box) + w *
   IoU(moved last mask, mask)`` (``w = mask_weight``, 0 for ``type: box`` or without masks),
   where the track's last mask is translated by its predicted motion. Pairs of different
   classes or with disjoint boxes never match; mask IoU is computed on the crops of the pairs
   where it can change the outcome (see :meth:`MaskTracker._mask_iou`). A lost track's
   predicted box is widened by ``lost_gate_growth`` per second lost, so a longer occlusion gets
   a wider gate. ``lap.lapjv`` picks the pairs whose similarity reaches the stage's threshold.
4. Stage three (recovery) pairs the confident detections still unclaimed with the confirmed
   tracks still unmatched, by centre distance: within ``recovery_radius`` track sizes plus
   ``recovery_growth`` sizes per second lost (up to ``lost_buffer_s``), closest first. It
   catches an object that comes out of an occlusion where the coasting box did not expect it.
   With ``recovery_threshold`` set, the weaker detections left over from stage two from that
   confidence up take part too (they never start tracks). With ``persist_threshold`` set, so do
   the weaker ones that stayed put: from that confidence up, overlapping no claimed or
   confident detection by more than ``persist_max_iou``, and seen in the same place on every
   frame for ``persist_s`` (:class:`~streamseg.track.pending.PendingStarts`); those left
   unclaimed start tracks, shown at once when they stayed for ``min_confirm_s``.
   Stage four does the same for the dormant tracks with the detections still left, so a
   long-lost track never takes a detection that a recent one could have had.

   With ``appearance_weight`` (``a``) > 0 and the frame's ``image`` given, every stage's
   similarity (or closeness) of a pair loses ``a * (1 - colour similarity)``: the Bhattacharyya
   coefficient of the detection's colour histogram and the track's running average
   (:mod:`streamseg.track.appearance`). Pairs where either side has no histogram lose nothing.
   A detection showing less than ``appearance_min_visible`` of the track's remembered area is a
   partial view: its colours need only be a part of the track's
   (:func:`~streamseg.track.appearance.part_similarity`), and they are not averaged in.
5. Matched tracks are corrected and keep the detection's mask; a tentative track that matched
   for ``min_confirm_s`` gets the next id; the detection's colour histogram is folded into the
   track's; unmatched tentative tracks are dropped, unmatched confirmed ones become lost; the
   confident detections left (and the weak ones that stayed put) start tentative tracks. On a
   fresh start (the stream's first frame, or the first after a gap longer than
   ``lost_buffer_s``, which dropped every track but hidden ones) the confident ones get ids at
   once, as in ByteTrack: nothing came before to tell an object from a flicker, and the rules
   would lose what happens in the stream's first ``min_confirm_s``. Until they have matched
   for ``min_confirm_s`` such tracks are still on trial: one missed on a frame is dropped, as a
   tentative track is (not lost, not resumed), so a one-frame flicker does not keep its id.
   Weak detections remembered before a gap (``persist_threshold``) are forgotten at it.

Ids start at 1 and are never reused; all state lives in the instance.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import supervision as sv

from streamseg.config.tracker import TrackerConfig
from streamseg.track.appearance import (
    check_image,
    colour_histograms,
    part_similarity,
    root_similarity,
)
from streamseg.track.association import Assignment, assign, box_iou, similarity_by_name
from streamseg.track.clock import TrackClock
from streamseg.track.kalman import KalmanParams, cxcywh_to_xyxy
from streamseg.track.masks import GridMasks, grid_masks, grid_stride, moved_origins, pair_mask_iou
from streamseg.track.pending import PendingStarts
from streamseg.track.tracks import NO_ID, TrackTable
from streamseg.types import HIDDEN_TRACK_IDS, RETRACTED_TRACK_IDS

logger = logging.getLogger(__name__)

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]

TIME_EPS_S = 1e-6
"""Slack on time comparisons, so ``3 * (1 / 30)`` counts as 0.1 s."""


@dataclass(frozen=True)
class _Frame:
    """One update's detections as the tracker uses them."""

    xyxy: FloatArray  # (N, 4)
    class_id: npt.NDArray[np.int64]  # (N,)
    masks: GridMasks | None  # N rows, or None when masks are not used
    colours: FloatArray | None  # (N, B) colour histograms, or None when appearance is off
    colour_roots: FloatArray | None  # their element-wise square roots
    has_colours: npt.NDArray[np.bool_]  # (N,) which rows of ``colours`` exist
    areas: FloatArray  # (N,) visible area, pixels: the mask's, else the box's


RELABEL_IOU = 0.7
"""A detection of another class whose box overlaps a just-lost track's predicted box this much
(IoU) is the same object relabelled, not an occluder: the track is not reported hidden."""


PERSIST_IOU = 0.5
"""Box IoU at or above which a weak detection is the same as the previous frame's
(``persist_threshold``)."""


class MaskTracker:
    """Multi-object tracker for one stream; associates on boxes and masks.

    Args:
        config: tracker options; ``None`` uses the defaults (``type: mask``).
        name: who the tracker serves (e.g. the stream id), used in log messages.

    Example:
        >>> from streamseg.config import TrackerConfig
        >>> tracker = MaskTracker(TrackerConfig(min_confirm_s=0))
        >>> import numpy as np, supervision as sv
        >>> dets = sv.Detections(xyxy=np.array([[10.0, 10, 50, 60]]), confidence=np.array([0.9]))
        >>> tracker.update(dets, timestamp=0.0).tracker_id.tolist()
        [1]
    """

    def __init__(self, config: TrackerConfig | None = None, name: str = "tracker") -> None:
        self.config = config if config is not None else TrackerConfig()
        cfg = self.config
        self.name = name
        self.mask_weight = cfg.effective_mask_weight
        self._similarity = similarity_by_name(cfg.type)
        self._clock = TrackClock(cfg.fallback_dt_s, name)
        self._tracks = TrackTable(
            KalmanParams(cfg.measurement_std, cfg.acceleration_std, cfg.initial_velocity_std)
        )
        self._next_id = 1
        self._pending = PendingStarts(PERSIST_IOU)
        self._started = False

    @property
    def timestamp_problems(self) -> dict[str, int]:
        """How many timestamps of each kind were bad and replaced so far."""
        return dict(self._clock.problems)

    @property
    def num_tracks(self) -> int:
        """Tracks held now: tentative, confirmed and lost."""
        return len(self._tracks)

    def update(
        self,
        detections: sv.Detections,
        timestamp: float,
        image: npt.NDArray[np.uint8] | None = None,
    ) -> sv.Detections:
        """Associate one frame's detections with the tracks.

        Args:
            detections: the frame's detections: ``xyxy`` (N, 4) frame pixels, optional
                ``confidence`` (None: all 1.0), optional ``class_id`` (None: one class) and
                optional ``mask``: a ``supervision.CompactMask``, a dense (N, H, W) array or None
                (then boxes alone are used). Never modified.
            timestamp: the frame's presentation time in seconds (``frame.pts_s``). Non-finite,
                repeated or backwards values are logged and replaced (see
                :mod:`streamseg.track.clock`).
            image: the frame the detections come from, (H, W, 3) uint8 (BGR), same pixels as
                the boxes; only read when ``appearance_weight`` > 0. Without it the colour term
                is off for this frame.

        Returns:
            A new ``sv.Detections`` with the input's rows in the input's order (same boxes,
            masks, classes, confidences and data) and ``tracker_id`` (N,) int: the id of the
            confirmed track each detection belongs to, or -1. ``metadata[HIDDEN_TRACK_IDS]``
            holds the ids of the confirmed tracks not seen on this frame that the tracker keeps
            as hidden behind an object of another class (see ``hidden_buffer_s``), sorted: the
            rules keep such a track's open occurrences (:mod:`streamseg.rules.kinds.base`).
            ``metadata[RETRACTED_TRACK_IDS]`` holds the ids shown at once on a fresh start and
            withdrawn on this frame (missed within ``min_confirm_s``), sorted.

        Raises:
            TypeError: ``detections`` is not an ``sv.Detections``.
            ValueError: ``image`` is not an (H, W, 3) uint8 array, or not the size of the masks'
                frame (checked only when ``appearance_weight`` > 0).
        """
        if not isinstance(detections, sv.Detections):
            raise TypeError(
                f"detections: expected supervision.Detections, got {type(detections).__name__}"
            )
        cfg = self.config
        tracks = self._tracks
        dt = self._clock.advance(timestamp)
        now = self._clock.now_s
        # A fresh start (the stream's first frame, or the first after a gap that dropped every
        # track): nothing came before to tell an object from a one-frame flicker, and waiting
        # would hide the stream's first moments from the rules. ByteTrack does the same.
        fresh = not self._started or dt > cfg.lost_buffer_s + TIME_EPS_S
        self._started = True
        if fresh:  # a weak detection seen before the gap proves nothing about one after it
            self._pending = PendingStarts(PERSIST_IOU)

        # Expired first: after a stalled stream nothing is left to move over the whole gap.
        dormant = self._expire(now)
        tracks.motion.predict(dt, tracks.lost, cfg.lost_velocity_decay_s)
        # Tracks shown at once on a fresh start, still on trial (module docstring, step 5).
        on_trial = tracks.early & (now - tracks.born_s < cfg.min_confirm_s - TIME_EPS_S)

        frame = self._frame(detections, image)
        n = len(frame.xyxy)
        confidence = (
            np.ones(n)
            if detections.confidence is None
            else np.asarray(detections.confidence, dtype=np.float64)
        )
        usable = np.all(np.isfinite(frame.xyxy), axis=1) & np.isfinite(confidence)
        confident = self._confident(frame.xyxy, confidence, usable)
        high = np.flatnonzero(confident)
        low = np.flatnonzero(usable & (confidence >= cfg.low_threshold) & ~confident)

        # Stage 1: confident detections against every track but the dormant ones.
        all_rows = np.flatnonzero(~dormant)
        first = self._match(all_rows, high, frame, cfg.match_threshold, now)
        rows1, dets1 = all_rows[first.matches[:, 0]], high[first.matches[:, 1]]
        left = all_rows[first.unmatched_rows]
        # Stage 2: the other detections against the confirmed tracks left over.
        left = left[tracks.confirmed[left] & ~on_trial[left]]
        second = self._match(left, low, frame, cfg.low_match_threshold, now)
        rows2, dets2 = left[second.matches[:, 0]], low[second.matches[:, 1]]

        # Stage 3: confident detections still unclaimed against confirmed tracks still unmatched,
        # by distance (recovery after an occlusion that the box gates could not bridge).
        new = high[first.unmatched_cols]
        left = left[second.unmatched_rows]
        spare = low[second.unmatched_cols]
        weak = np.zeros(0, dtype=np.intp)
        if cfg.recovery_threshold is not None:
            weak = spare[confidence[spare] >= cfg.recovery_threshold]
        born = np.full(n, now)
        persisted, since = self._persisted(
            spare, confidence, frame, np.concatenate((high, dets2)), now
        )
        born[persisted] = since
        weak = np.union1d(weak, persisted).astype(np.intp)
        candidates = np.concatenate((new, weak))
        third = self._recover(left, candidates, frame, now)
        rows3, dets3 = left[third.matches[:, 0]], candidates[third.matches[:, 1]]
        unclaimed = candidates[third.unmatched_cols]
        new = unclaimed[np.isin(unclaimed, new) | np.isin(unclaimed, persisted)]
        # Stage 4: the same for the dormant tracks, with what is left (after the others: a
        # longer-lost track's wider radius makes every detection look closer to it).
        rows4 = dets4 = np.zeros(0, dtype=np.intp)
        if dormant.any():
            left = np.flatnonzero(dormant)
            fourth = self._recover(left, new, frame, now)
            rows4, dets4 = left[fourth.matches[:, 0]], new[fourth.matches[:, 1]]
            new = new[fourth.unmatched_cols]
        if cfg.new_track_threshold is not None:
            new = new[confidence[new] >= cfg.new_track_threshold]

        rows = np.concatenate((rows1, rows2, rows3, rows4))
        dets = np.concatenate((dets1, dets2, dets3, dets4))
        tracker_id = np.full(n, NO_ID, dtype=int)
        if len(rows):
            if frame.colours is not None:
                # A partly hidden object's colours are not its own: left out of the average.
                visible = tracks.visible_fraction(rows, frame.areas[dets], pairwise=True)
                seen = visible >= self.config.appearance_min_visible
                tracks.store_appearance(rows, frame.colours[dets], frame.has_colours[dets] & seen)
            tracks.observe(rows, frame.xyxy[dets], frame.areas[dets], now)
            if frame.masks is not None:
                tracks.store_masks(rows, frame.masks, dets)
            self._confirm(rows, now)
            tracker_id[dets] = tracks.ids[rows]

        matched = np.zeros(len(tracks), dtype=bool)
        matched[rows] = True
        tentative_missed = ~matched & (~tracks.confirmed | on_trial)
        # Occluders are detections the tracker uses at all (>= low_threshold), not noise.
        occluders = usable & (confidence >= cfg.low_threshold)
        self._lose(
            np.flatnonzero(~matched & tracks.confirmed & ~tracks.lost & ~on_trial), frame, occluders
        )
        retracted = tracks.ids[tentative_missed & tracks.confirmed]  # on trial, missed
        if tentative_missed.any():
            tracks.keep(~tentative_missed)

        if len(new):
            start = len(tracks)
            tracks.append(
                frame.xyxy[new],
                frame.class_id[new],
                now,
                None if frame.masks is None else frame.masks.rows(new),
                frame.areas[new],
            )
            new_rows = np.arange(start, start + len(new))
            # A track started by a weak detection that stayed put was seen since it appeared.
            tracks.born_s[new_rows] = born[new]
            if frame.colours is not None:
                tracks.store_appearance(new_rows, frame.colours[new], frame.has_colours[new])
            if fresh:  # the confident ones at once; weak ones that stayed put waited already
                tracks.early[new_rows] = ~np.isin(new, persisted)
            self._confirm(new_rows, now, at_once=tracks.early[new_rows])
            tracker_id[new] = tracks.ids[new_rows]
        out = _with_tracker_id(detections, tracker_id)
        hidden = tracks.lost & tracks.hidden & tracks.confirmed
        out.metadata[HIDDEN_TRACK_IDS] = tuple(sorted(int(i) for i in tracks.ids[hidden]))
        out.metadata[RETRACTED_TRACK_IDS] = tuple(sorted(int(i) for i in retracted))
        return out

    # ----------------------------------------------------------------- steps
    def _frame(self, detections: sv.Detections, image: npt.NDArray[np.uint8] | None) -> _Frame:
        n = len(detections)
        xyxy = np.asarray(detections.xyxy, dtype=np.float64).reshape(n, 4)
        class_id = (
            np.full(n, -1, dtype=np.int64)
            if detections.class_id is None
            else np.asarray(detections.class_id, dtype=np.int64)
        )
        masks = None
        mask_hw: tuple[int, int] | None = None
        if detections.mask is not None and n > 0:
            mask = detections.mask
            shape = mask.image_shape if isinstance(mask, sv.CompactMask) else mask.shape[1:3]
            mask_hw = (int(shape[0]), int(shape[1]))
            if self.mask_weight > 0:
                stride = grid_stride(mask_hw, self.config.mask_resolution)
                masks = grid_masks(mask, xyxy, stride)
        colours, roots, has_colours = None, None, np.zeros(n, dtype=bool)
        if self.config.appearance_weight > 0 and image is not None:
            pixels = check_image(image)
            if mask_hw is not None and pixels.shape[:2] != mask_hw:
                raise ValueError(
                    f"image: expected the frame of the detections' masks, {mask_hw[0]}x"
                    f"{mask_hw[1]} (H x W), got {pixels.shape[0]}x{pixels.shape[1]}"
                )
            colours, has_colours = colour_histograms(pixels, xyxy, masks)
            roots = np.sqrt(colours)
        wh = np.clip(xyxy[:, 2:] - xyxy[:, :2], 1.0, None)
        areas = wh[:, 0] * wh[:, 1]
        if masks is not None:
            areas = np.where(masks.area > 0, masks.area * float(masks.stride) ** 2, areas)
        return _Frame(xyxy, class_id, masks, colours, roots, has_colours, areas)

    def _confident(
        self,
        xyxy: FloatArray,
        confidence: FloatArray,
        usable: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.bool_]:
        """(N,) bool: the detections of the first stage, which may also start tracks.

        Those at or above ``high_threshold``, and those at or above ``isolated_threshold`` whose
        box overlaps no other detection at or above ``isolated_threshold`` by more than
        ``isolated_max_iou``. In a crowd the model gives merged and partial masks middling
        scores; first-stage matches and new tracks from them pulled tracks onto neighbours.
        Alone, such a detection has nothing to be confused with, and one whose box only grazes
        its neighbours' (an animal in a herd) is not a merged or partial mask of them.
        """
        cfg = self.config
        confident = usable & (confidence >= cfg.high_threshold)
        if cfg.isolated_threshold is None:
            return confident
        fair = usable & (confidence >= cfg.isolated_threshold)
        candidates = np.flatnonzero(fair & ~confident)
        if len(candidates) == 0:
            return confident
        others = np.flatnonzero(fair)
        overlap = box_iou(xyxy[candidates], xyxy[others]) > cfg.isolated_max_iou
        overlap &= others[None, :] != candidates[:, None]
        confident[candidates[~overlap.any(axis=1)]] = True
        return confident

    def _persisted(
        self,
        spare: IntArray,
        confidence: FloatArray,
        frame: _Frame,
        taken: IntArray,
        now: float,
    ) -> tuple[IntArray, FloatArray]:
        """The weak detections that may start (or resume) a track because they stayed put.

        ``spare`` are the detections below the confident ones that no track claimed in the
        first two stages. Those at or above ``persist_threshold`` whose box overlaps none of
        ``taken`` (the confident detections and those tracks claimed) by more than
        ``persist_max_iou`` are followed from frame to frame (:class:`PendingStarts`); the
        ones seen without a gap for ``persist_s`` are returned, with when each was first seen.
        """
        cfg = self.config
        if cfg.persist_threshold is None:
            return np.zeros(0, dtype=np.intp), np.zeros(0)
        weak = spare[confidence[spare] >= cfg.persist_threshold]
        if len(weak) and len(taken):
            # A fragment or a merged mask of an object that already has a detection.
            overlap = box_iou(frame.xyxy[weak], frame.xyxy[taken]) > cfg.persist_max_iou
            weak = weak[~overlap.any(axis=1)]
        since = self._pending.update(frame.xyxy[weak], frame.class_id[weak], now)
        ripe = np.flatnonzero(since <= now - cfg.persist_s + TIME_EPS_S)
        # Whatever they become, they must earn it again if they are left over once more.
        self._pending.forget(ripe)
        return weak[ripe], since[ripe]

    def _match(
        self, rows: IntArray, dets: IntArray, frame: _Frame, threshold: float, now: float
    ) -> Assignment:
        """Assign detections ``dets`` to track rows ``rows`` (indices stay local to each)."""
        tracks = self._tracks
        if len(rows) == 0 or len(dets) == 0:
            return Assignment.none(len(rows), len(dets))
        pred = tracks.motion.pos[rows]
        gate = pred.copy()
        lost_s = np.where(tracks.lost[rows], now - tracks.last_seen_s[rows], 0.0)
        gate[:, 2:] *= (1.0 + self.config.lost_gate_growth * lost_s)[:, None]
        iou = box_iou(cxcywh_to_xyxy(gate), frame.xyxy[dets])
        allowed = (iou > 0) & (tracks.class_id[rows][:, None] == frame.class_id[dets][None, :])
        mask_iou = self._mask_iou(rows, dets, frame, pred, iou, allowed, threshold)
        similarity = self._similarity(iou, mask_iou, self.mask_weight)
        similarity = self._with_appearance(similarity, rows, dets, frame, allowed)
        return assign(similarity, threshold, allowed)

    def _recover(self, rows: IntArray, dets: IntArray, frame: _Frame, now: float) -> Assignment:
        """Pair lost tracks with unclaimed detections of their class near where they should be."""
        cfg = self.config
        if cfg.recovery_radius <= 0 or len(rows) == 0 or len(dets) == 0:
            return Assignment.none(len(rows), len(dets))
        pred = self._tracks.motion.pos[rows]
        size = self._tracks.size_peak[rows]
        # The radius stops growing at lost_buffer_s: a hidden track lost for longer (dormant)
        # waits near where it was lost, not anywhere in a widening circle.
        lost_s = np.minimum(now - self._tracks.last_seen_s[rows], cfg.lost_buffer_s)
        radius = size * (cfg.recovery_radius + cfg.recovery_growth * lost_s)
        boxes = frame.xyxy[dets]
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        dist = np.linalg.norm(pred[:, None, :2] - centres[None, :, :], axis=2)
        closeness = 1.0 - dist / radius[:, None]
        allowed = (closeness > 0) & (
            self._tracks.class_id[rows][:, None] == frame.class_id[dets][None, :]
        )
        closeness = self._with_appearance(closeness, rows, dets, frame, allowed)
        return assign(closeness, 1e-9, allowed)

    def _with_appearance(
        self,
        similarity: FloatArray,
        rows: IntArray,
        dets: IntArray,
        frame: _Frame,
        allowed: npt.NDArray[np.bool_],
    ) -> FloatArray:
        """``similarity`` (R, D) less ``appearance_weight * (1 - colour similarity)`` per pair.

        Only the ``allowed`` (R, D) pairs are worth a partial-view comparison (the others cannot
        match whatever their colours).

        Unchanged when the colour term is off (no image, weight 0) and for pairs where the
        track or the detection has no histogram. Where the detection shows less than
        ``appearance_min_visible`` of the track's remembered area, the colour similarity is the
        larger of the Bhattacharyya coefficient and :func:`part_similarity`: a partly hidden
        object shows a part of its colours (a worker's legs below a machine, not the vest).
        """
        tracks = self._tracks
        if frame.colour_roots is None or 0 in similarity.shape:
            return similarity
        colour = root_similarity(tracks.appearance_root[rows], frame.colour_roots[dets])
        # 1 - colour is the penalty per unit weight; pairs where a side has no histogram
        # (rows of zeros) get none.
        has_t = tracks.has_appearance[rows]
        has_d = frame.has_colours[dets]
        if not (has_t.all() and has_d.all()):
            colour[~(has_t[:, None] & has_d[None, :])] = 1.0
        min_visible = self.config.appearance_min_visible
        if min_visible > 0 and frame.colours is not None:
            visible = tracks.visible_fraction(rows, frame.areas[dets])
            partial = np.argwhere(allowed & (visible < min_visible) & (colour < 1.0))
            if len(partial):
                r, d = partial[:, 0], partial[:, 1]
                part = part_similarity(
                    tracks.appearance[rows[r]], frame.colours[dets[d]], visible[r, d]
                )
                colour[r, d] = np.maximum(colour[r, d], part)
        colour -= 1.0
        colour *= self.config.appearance_weight
        return similarity + colour

    def _mask_iou(
        self,
        rows: IntArray,
        dets: IntArray,
        frame: _Frame,
        pred: FloatArray,
        iou: FloatArray,
        allowed: npt.NDArray[np.bool_],
        threshold: float,
    ) -> FloatArray | None:
        """(R, D) mask IoU of the allowed pairs; NaN where a side has no mask; None if unused.

        The result is the same as computing every allowed pair, but mask IoU is skipped where it
        cannot change the assignment: pairs that even a perfect mask would not lift over the
        threshold, and uncontested pairs (alone in their row and column) whose box term passes
        on its own (those are judged on box IoU, marked NaN).
        """
        tracks = self._tracks
        w = self.mask_weight
        if w <= 0 or frame.masks is None or tracks.mask_stride != frame.masks.stride:
            return None
        has_t = tracks.mask_area[rows] > 0
        has_d = frame.masks.area[dets] > 0
        both = has_t[:, None] & has_d[None, :]
        if not both.any():
            return None
        box_term = (1.0 - w) * iou
        could_pass = allowed & both & (box_term + w >= threshold)
        contested = (allowed.sum(axis=1) > 1)[:, None] | (allowed.sum(axis=0) > 1)[None, :]
        need = could_pass & (contested | (box_term < threshold))
        out = np.where(both, 0.0, np.nan)
        out[could_pass & ~need] = np.nan  # passes on its box term; NaN = judged on boxes
        pairs = np.argwhere(need)
        if len(pairs) == 0:
            return out
        track_rows = rows[pairs[:, 0]]
        origin = moved_origins(
            tracks.mask_origin[track_rows],
            tracks.mask_stride,
            tracks.mask_ref[track_rows],
            pred[pairs[:, 0]],
        )
        moved = GridMasks(
            tracks.mask_stride,
            [tracks.mask_crops[r] for r in track_rows.tolist()],
            origin,
            tracks.mask_area[track_rows],
            tracks.mask_hw[track_rows],
        )
        det_rows = dets[pairs[:, 1]]
        local = np.arange(len(pairs), dtype=np.intp)
        out[pairs[:, 0], pairs[:, 1]] = pair_mask_iou(
            moved, frame.masks, np.stack((local, det_rows), axis=1)
        )
        return out

    def _expire(self, now: float) -> npt.NDArray[np.bool_]:
        """Drop the tracks unseen for longer than their buffer (``lost_buffer_s``,
        ``hidden_buffer_s`` for hidden ones); return (T,) bool, the dormant tracks among those
        kept: hidden and lost for longer than ``lost_buffer_s``, which only stage four may
        resume.

        Every track's unseen time counts, not only the lost ones': after a stalled stream (no
        frame at all for a while) a track matched on the last frame before it is as gone as
        one lost on an empty frame, and must not hand its id to whatever shows up near it.
        """
        cfg = self.config
        tracks = self._tracks
        if len(tracks) == 0:
            return np.zeros(0, dtype=bool)
        lost_s = now - tracks.last_seen_s
        buffer_s = np.where(tracks.hidden, cfg.effective_hidden_buffer_s, cfg.lost_buffer_s)
        expired = lost_s > buffer_s + TIME_EPS_S
        if expired.any():
            tracks.keep(~expired)
            lost_s = lost_s[~expired]
        return tracks.lost & (lost_s > cfg.lost_buffer_s + TIME_EPS_S)

    def _lose(self, rows: IntArray, frame: _Frame, occluders: npt.NDArray[np.bool_]) -> None:
        """Mark the confirmed tracks ``rows`` lost, and hidden where their predicted box (at
        least ``size_peak`` wide and high) overlaps the box of one of the frame's ``occluders``
        (the detections at or above ``low_threshold``) of another class: gone while touching
        a machine, a worker is behind it. Objects of its own class do not hide it: they could
        be mistaken for it when it comes back."""
        if len(rows) == 0:
            return
        tracks = self._tracks
        tracks.lost[rows] = True
        if not occluders.any():
            return
        # At its remembered size: the last box of an object slipping behind another is a
        # sliver that may stop short of the other's box.
        extent = tracks.motion.pos[rows]
        extent[:, 2:] = np.maximum(extent[:, 2:], tracks.size_peak[rows, None])
        boxes = frame.xyxy[occluders]
        touching = box_iou(cxcywh_to_xyxy(extent), boxes) > 0
        # A detection of another class in (nearly) the track's own box is the object itself,
        # relabelled by the model (class flicker), not something in front of it.
        itself = box_iou(cxcywh_to_xyxy(tracks.motion.pos[rows]), boxes) >= RELABEL_IOU
        touching &= ~itself
        other = tracks.class_id[rows][:, None] != frame.class_id[occluders][None, :]
        tracks.hidden[rows] = (touching & other).any(axis=1)

    def _confirm(
        self, rows: IntArray, now: float, at_once: npt.NDArray[np.bool_] | bool = False
    ) -> None:
        """Give ids to the tentative tracks among ``rows`` that are old enough, or ``at_once``
        (per row)."""
        tracks = self._tracks
        old_enough = now - tracks.born_s[rows] >= self.config.min_confirm_s - TIME_EPS_S
        ready = rows[(tracks.ids[rows] == NO_ID) & (old_enough | at_once)]
        if len(ready):
            tracks.ids[ready] = np.arange(self._next_id, self._next_id + len(ready))
            self._next_id += len(ready)


def _with_tracker_id(detections: sv.Detections, tracker_id: npt.NDArray[np.int_]) -> sv.Detections:
    """A new Detections with the input's rows and ``tracker_id``; the input is left untouched.

    Small per-row arrays are copied so a later stage that edits them in place cannot reach back
    into the caller's object; masks are shared (they are large and never written).
    """
    return sv.Detections(
        xyxy=np.array(detections.xyxy, copy=True),
        mask=detections.mask,
        confidence=None if detections.confidence is None else np.array(detections.confidence),
        class_id=None if detections.class_id is None else np.array(detections.class_id),
        tracker_id=tracker_id,
        data={key: copy.copy(value) for key, value in detections.data.items()},
        metadata=dict(detections.metadata),
    )

"""The tracks of one tracker, stored column-wise (one numpy array per attribute, one row each).

A track is *tentative* until it has matched for ``min_confirm_s`` (it has no id yet and is
dropped at its first miss), then *confirmed* with an id (one started on a fresh start shows its
id at once, :attr:`TrackTable.early`, but is dropped like a tentative one at a miss within
``min_confirm_s``); a confirmed track that misses a frame
is *lost* until it matches again or stays unmatched longer than ``lost_buffer_s``
(``hidden_buffer_s`` when it was lost behind another object: :attr:`TrackTable.hidden`).
Column-wise storage keeps the per-frame work in vectorized numpy calls instead of one Python
object per track.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from streamseg.track.appearance import NUM_BINS
from streamseg.track.kalman import BoxKalman, KalmanParams
from streamseg.track.masks import NO_MASK, BoolArray, GridMasks

logger = logging.getLogger(__name__)

NO_ID = -1
"""``tracker_id`` of a detection that belongs to no confirmed track (and id of tentative tracks)."""

SIZE_MEMORY_S = 1.0
"""Time constant (seconds) with which a track's remembered size (:attr:`TrackTable.size_peak`)
falls back to its measured size after the object looked bigger."""

APPEARANCE_MOMENTUM = 0.8
"""Share of a track's colour histogram kept at each match (the rest comes from the matched
detection): a running average over the last few observations, so one detection whose mask
spilled onto a neighbour does not take the track's colours with it."""


class TrackTable:
    """All tracks of one tracker.

    Args:
        kalman: noise levels of the motion model.

    Attributes:
        ids: (T,) int64 track id, :data:`NO_ID` while tentative.
        class_id: (T,) int64 class of the detections the track follows (-1: no class given).
        born_s: (T,) float64 clock time of the first detection.
        early: (T,) bool, given its id at once, on a fresh start (the stream's first frame or
            the first after a gap that dropped every track), before ``min_confirm_s``.
        last_seen_s: (T,) float64 clock time of the last matched detection.
        lost: (T,) bool, confirmed but unmatched at the last update.
        hidden: (T,) bool, lost while its box overlapped the box of a detection of another
            class: the object is probably behind that one (set when the track is lost, cleared
            when it matches again).
        size_peak: (T,) float64 the object's size ``sqrt(w * h)`` as remembered: the measured
            size, or more when it looked bigger shortly before (a box shrinks when its object
            slips behind something; the object did not).
        area_peak: (T,) float64 the object's visible area in pixels (its mask's, else its
            box's) as remembered the same way: what a detection's area is compared with to tell
            a partly hidden object (:meth:`visible_fraction`).
        motion: the Kalman state of every track.
        mask_stride: grid stride of the stored masks (0 before any mask was stored).
        mask_crops: T last masks on the grid, ``NO_MASK`` for a track without one.
        mask_origin: (T, 2) int64 grid origin of each stored mask.
        mask_area: (T,) int64 set cells of each stored mask.
        mask_hw: (T, 2) int64 ``(h, w)`` of each stored mask's crop.
        mask_ref: (T, 4) float64 the track's box ``cx, cy, w, h`` when its mask was stored.
        appearance: (T, B) float64 running average of the colour histograms of the track's
            detections (:mod:`streamseg.track.appearance`), rows of zeros before the first.
        appearance_root: (T, B) float64 element-wise square root of ``appearance`` (kept for
            :func:`~streamseg.track.appearance.root_similarity`).
        has_appearance: (T,) bool, the track has a histogram.
    """

    def __init__(self, kalman: KalmanParams) -> None:
        self.ids = np.zeros(0, dtype=np.int64)
        self.class_id = np.zeros(0, dtype=np.int64)
        self.born_s = np.zeros(0, dtype=np.float64)
        self.early = np.zeros(0, dtype=bool)
        self.last_seen_s = np.zeros(0, dtype=np.float64)
        self.lost = np.zeros(0, dtype=bool)
        self.hidden = np.zeros(0, dtype=bool)
        self.size_peak = np.zeros(0, dtype=np.float64)
        self.area_peak = np.zeros(0, dtype=np.float64)
        self.motion = BoxKalman(kalman)
        self.mask_stride = 0
        self.mask_crops: list[BoolArray] = []
        self.mask_origin = np.zeros((0, 2), dtype=np.int64)
        self.mask_area = np.zeros(0, dtype=np.int64)
        self.mask_hw = np.zeros((0, 2), dtype=np.int64)
        self.mask_ref = np.zeros((0, 4), dtype=np.float64)
        self.appearance = np.zeros((0, NUM_BINS), dtype=np.float64)
        self.appearance_root = np.zeros((0, NUM_BINS), dtype=np.float64)
        self.has_appearance = np.zeros(0, dtype=bool)

    def __len__(self) -> int:
        """Number of tracks (tentative, confirmed and lost)."""
        return len(self.ids)

    @property
    def confirmed(self) -> npt.NDArray[np.bool_]:
        """(T,) bool: the track has an id."""
        return self.ids != NO_ID

    @property
    def masks(self) -> GridMasks:
        """The stored masks as a :class:`GridMasks` (no copy)."""
        return GridMasks(
            self.mask_stride, self.mask_crops, self.mask_origin, self.mask_area, self.mask_hw
        )

    def append(
        self,
        xyxy: npt.NDArray[np.float64],
        class_id: npt.NDArray[np.int64],
        now_s: float,
        masks: GridMasks | None,
        areas: npt.NDArray[np.float64],
    ) -> None:
        """Start tentative tracks (no id) at the given detections.

        Args:
            xyxy: (N, 4) boxes, frame pixels.
            class_id: (N,) classes.
            now_s: clock time of the frame.
            masks: the detections' masks on the grid (N rows), or None.
            areas: (N,) the detections' visible areas, pixels (see :attr:`area_peak`).
        """
        n = len(xyxy)
        if n == 0:
            return
        self.ids = np.concatenate((self.ids, np.full(n, NO_ID, dtype=np.int64)))
        self.class_id = np.concatenate((self.class_id, class_id.astype(np.int64)))
        self.born_s = np.concatenate((self.born_s, np.full(n, now_s)))
        self.early = np.concatenate((self.early, np.zeros(n, dtype=bool)))
        self.last_seen_s = np.concatenate((self.last_seen_s, np.full(n, now_s)))
        self.lost = np.concatenate((self.lost, np.zeros(n, dtype=bool)))
        self.hidden = np.concatenate((self.hidden, np.zeros(n, dtype=bool)))
        self.size_peak = np.concatenate((self.size_peak, _sizes(xyxy)))
        self.area_peak = np.concatenate((self.area_peak, np.asarray(areas, dtype=np.float64)))
        first = len(self.motion)
        self.motion.append(xyxy)
        self.mask_crops.extend([NO_MASK] * n)
        self.mask_origin = np.concatenate((self.mask_origin, np.zeros((n, 2), dtype=np.int64)))
        self.mask_area = np.concatenate((self.mask_area, np.zeros(n, dtype=np.int64)))
        self.mask_hw = np.concatenate((self.mask_hw, np.zeros((n, 2), dtype=np.int64)))
        self.mask_ref = np.concatenate((self.mask_ref, np.zeros((n, 4))))
        self.appearance = np.concatenate((self.appearance, np.zeros((n, NUM_BINS))))
        self.appearance_root = np.concatenate((self.appearance_root, np.zeros((n, NUM_BINS))))
        self.has_appearance = np.concatenate((self.has_appearance, np.zeros(n, dtype=bool)))
        if masks is not None:
            self.store_masks(np.arange(first, first + n), masks, np.arange(n))

    def keep(self, rows: npt.NDArray[np.bool_]) -> None:
        """Keep only the tracks where ``rows`` is True."""
        self.ids = self.ids[rows]
        self.class_id = self.class_id[rows]
        self.born_s = self.born_s[rows]
        self.early = self.early[rows]
        self.last_seen_s = self.last_seen_s[rows]
        self.lost = self.lost[rows]
        self.hidden = self.hidden[rows]
        self.size_peak = self.size_peak[rows]
        self.area_peak = self.area_peak[rows]
        self.motion.keep(rows)
        self.mask_crops = [c for c, k in zip(self.mask_crops, rows.tolist(), strict=True) if k]
        self.mask_origin = self.mask_origin[rows]
        self.mask_area = self.mask_area[rows]
        self.mask_hw = self.mask_hw[rows]
        self.mask_ref = self.mask_ref[rows]
        self.appearance = self.appearance[rows]
        self.appearance_root = self.appearance_root[rows]
        self.has_appearance = self.has_appearance[rows]

    def observe(
        self,
        rows: npt.NDArray[np.intp],
        xyxy: npt.NDArray[np.float64],
        areas: npt.NDArray[np.float64],
        now_s: float,
    ) -> None:
        """Record that the tracks ``rows`` matched the boxes ``xyxy`` (K, 4), whose visible
        areas are ``areas`` (K,) pixels, at ``now_s``."""
        self.motion.update(rows, xyxy)
        fade = np.exp(-(now_s - self.last_seen_s[rows]) / SIZE_MEMORY_S)
        size = _sizes(xyxy)
        self.size_peak[rows] = size + np.maximum(self.size_peak[rows] - size, 0.0) * fade
        self.area_peak[rows] = areas + np.maximum(self.area_peak[rows] - areas, 0.0) * fade
        self.last_seen_s[rows] = now_s
        self.lost[rows] = False
        self.hidden[rows] = False

    def store_masks(
        self, rows: npt.NDArray[np.intp], masks: GridMasks, det_rows: npt.NDArray[np.intp]
    ) -> None:
        """Remember the masks of the detections just matched (call after the Kalman update).

        A detection without mask pixels leaves the track's previous mask in place. Masks on a
        different grid than the stored ones (the frame size changed) replace them all.

        Args:
            rows: (K,) track rows.
            masks: the frame's detection masks.
            det_rows: (K,) the detection of each track, rows of ``masks``.
        """
        if masks.stride != self.mask_stride:
            self.mask_crops = [NO_MASK] * len(self)
            self.mask_area[:] = 0
            self.mask_hw[:] = 0
            self.mask_stride = masks.stride
        has = masks.area[det_rows] > 0
        rows, det_rows = rows[has], det_rows[has]
        if len(rows) == 0:
            return
        for r, d in zip(rows.tolist(), det_rows.tolist(), strict=True):
            crop = masks.crops[d]
            # A crop may be a view into the frame's whole (N, H, W) mask array: a kept view
            # would keep that array alive for as long as the track is remembered.
            self.mask_crops[r] = crop if crop.base is None else crop.copy()
        self.mask_origin[rows] = masks.origin[det_rows]
        self.mask_area[rows] = masks.area[det_rows]
        self.mask_hw[rows] = masks.size_hw[det_rows]
        self.mask_ref[rows] = self.motion.pos[rows]

    def visible_fraction(
        self, rows: npt.NDArray[np.intp], areas: npt.NDArray[np.float64], pairwise: bool = False
    ) -> npt.NDArray[np.float64]:
        """How much of a track's remembered area (:attr:`area_peak`) a detection shows, at
        most 1: (R, D) for every track of ``rows`` (R,) against every area of ``areas`` (D,), or
        with ``pairwise`` (K,) for ``rows[k]`` against ``areas[k]``."""
        peak = np.maximum(self.area_peak[rows], 1.0)
        a = np.asarray(areas, dtype=np.float64)
        return np.minimum(a / peak if pairwise else a[None, :] / peak[:, None], 1.0)

    def store_appearance(
        self,
        rows: npt.NDArray[np.intp],
        hist: npt.NDArray[np.float64],
        valid: npt.NDArray[np.bool_],
    ) -> None:
        """Fold the matched detections' colour histograms into the tracks' running averages.

        A track's first histogram is taken as is; later ones are averaged in with
        :data:`APPEARANCE_MOMENTUM`. Detections without a histogram (``valid`` False) leave the
        track's as it was.

        Args:
            rows: (K,) track rows.
            hist: (K, B) the matched detections' histograms.
            valid: (K,) bool, which of them exist.
        """
        rows, hist = rows[valid], hist[valid]
        if len(rows) == 0:
            return
        keep = np.where(self.has_appearance[rows], APPEARANCE_MOMENTUM, 0.0)[:, None]
        mixed = keep * self.appearance[rows] + (1.0 - keep) * hist
        self.appearance[rows] = mixed
        self.appearance_root[rows] = np.sqrt(mixed)
        self.has_appearance[rows] = True


def _sizes(xyxy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """(N,) ``sqrt(w * h)`` of (N, 4) boxes, at least 1 pixel."""
    wh = np.maximum(xyxy[:, 2:] - xyxy[:, :2], 1.0)
    return np.sqrt(wh[:, 0] * wh[:, 1])

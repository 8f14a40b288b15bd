"""Weak detections that stay put: the evidence for starting a track without a confident one.

In a herd or a pack the model often scores a real animal or player 0.3-0.6 on every frame, and
such a detection never starts a track (only confident ones do, see
:meth:`~streamseg.track.tracker.MaskTracker._confident`). A one-off weak detection is noise,
a merged mask or a fragment; the same weak detection in the same place frame after frame is an
object. :class:`PendingStarts` remembers the weak detections no track claimed, follows each
from frame to frame by box overlap, and says how long it has been seen without a gap.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from streamseg.track.association import assign, box_iou

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


class PendingStarts:
    """The unclaimed weak detections of the previous frame, with when each was first seen.

    Args:
        min_iou: box IoU at or above which a detection continues a pending one of its class
            (one to one, the pairing of most total overlap: :func:`assign`).
    """

    def __init__(self, min_iou: float = 0.5) -> None:
        self.min_iou = min_iou
        self._xyxy: FloatArray = np.zeros((0, 4))
        self._class_id: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._since_s: FloatArray = np.zeros(0)

    def __len__(self) -> int:
        return len(self._xyxy)

    def update(self, xyxy: FloatArray, class_id: npt.NDArray[np.int64], now_s: float) -> FloatArray:
        """Replace the pending detections with this frame's, and return since when each has
        been seen: (N,) float64 clock seconds, ``now_s`` for one that continues none.

        A pending detection that nothing continues on this frame is forgotten: the evidence
        must be unbroken.

        Args:
            xyxy: (N, 4) boxes of this frame's unclaimed weak detections, frame pixels.
            class_id: (N,) their classes.
            now_s: the frame's clock time.
        """
        since = np.full(len(xyxy), now_s)
        if len(xyxy) and len(self._xyxy):
            same_class = class_id[:, None] == self._class_id[None, :]
            pairs = assign(box_iou(xyxy, self._xyxy), self.min_iou, same_class).matches
            since[pairs[:, 0]] = self._since_s[pairs[:, 1]]
        self._xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4).copy()
        self._class_id = np.asarray(class_id, dtype=np.int64).copy()
        self._since_s = since.copy()
        return since

    def forget(self, rows: npt.NDArray[np.intp]) -> None:
        """Drop the entries ``rows`` of the last :meth:`update` (they became tracks)."""
        keep = np.ones(len(self._xyxy), dtype=bool)
        keep[rows] = False
        self._xyxy = self._xyxy[keep]
        self._class_id = self._class_id[keep]
        self._since_s = self._since_s[keep]

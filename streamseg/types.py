"""Types shared between stages: the frame a source yields and the state a source is in.

Detections travel as ``supervision.Detections`` (see DESIGN.md); masks inside them are
``supervision.CompactMask`` in frame coordinates (crops of the boxes), never dense (N, H, W).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

HIDDEN_TRACK_IDS = "hidden_track_ids"
"""Key of the tracker's output ``Detections.metadata``: a sorted tuple of the ids of the
confirmed tracks unseen on the frame that the tracker keeps as hidden behind an object of
another class (``tracker.hidden_buffer_s``). The rules keep such a track's open occurrences."""

RETRACTED_TRACK_IDS = "retracted_track_ids"
"""Key of the tracker's output ``Detections.metadata``: a sorted tuple of the ids the tracker
showed at once on a fresh start (the stream's first frame, or the first after a long gap) and
withdrew on this frame, the track missed before ``min_confirm_s``: a one-frame flicker, not an
object. The rules forget such a track at once (a count does not keep it for ``lost_timeout_s``)."""


class SourceState(str, enum.Enum):
    """The visible state of one source (DESIGN.md, "Rules of the flow")."""

    CONNECTING = "connecting"
    STREAMING = "streaming"
    STALLED = "stalled"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    """The stream ended by itself: the end of a file, a camera's server closing it for good."""
    STOPPED = "stopped"
    """streamseg stopped the source (shutdown) before it ended: a camera that was streaming
    when the run was stopped reads ``stopped``, not ``ended``."""
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        """True once the source will deliver no more frames."""
        return self in (SourceState.ENDED, SourceState.STOPPED, SourceState.FAILED)


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame of one stream.

    Attributes:
        stream_id: id of the source in the pipeline file.
        index: 0-based count of frames this source has delivered (dropped frames skipped).
        pts_s: presentation timestamp in seconds, from the stream's own clock.
        wall_time: ``time.time()`` when the frame was decoded.
        image: (H, W, 3) uint8, BGR.
    """

    stream_id: str
    index: int
    pts_s: float
    wall_time: float
    image: npt.NDArray[np.uint8]

    @property
    def resolution_wh(self) -> tuple[int, int]:
        """(width, height) of the image in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])

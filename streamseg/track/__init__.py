"""streamseg.track: the mask-aware multi-object tracker and its runtime stage.

Typical use::

    from streamseg.config import TrackerConfig
    from streamseg.track import MaskTracker

    tracker = MaskTracker(TrackerConfig())            # type: mask (default) or box
    tracked = tracker.update(detections, timestamp=frame.pts_s, image=frame.image)
    tracked.tracker_id                                # (N,) ids, -1 = not in a confirmed track

Modules: :mod:`~streamseg.track.tracker` (MaskTracker), :mod:`~streamseg.track.kalman` (motion),
:mod:`~streamseg.track.masks` (grid masks and mask IoU), :mod:`~streamseg.track.appearance`
(colour histograms), :mod:`~streamseg.track.association` (similarities and assignment),
:mod:`~streamseg.track.clock` (timestamps), :mod:`~streamseg.track.tracks` (track storage),
:mod:`~streamseg.track.stage` (runtime stage).
"""

from streamseg.track.stage import TrackerStage, tracker_stage_factory
from streamseg.track.tracker import MaskTracker
from streamseg.track.tracks import NO_ID

__all__ = ["NO_ID", "MaskTracker", "TrackerStage", "tracker_stage_factory"]

"""streamseg.record: continuous recording, event clips and snapshots that survive a crash.

See :mod:`streamseg.record.recorder` for how a pipeline wires the :class:`Recorder`.
"""

from streamseg.record.listeners import RecordingListeners
from streamseg.record.recorder import Recorder, build_recorder, lossless_stream_ids

__all__ = ["Recorder", "RecordingListeners", "build_recorder", "lossless_stream_ids"]

"""Per-frame detections as JSON Lines.

One line per analysed frame::

    {"stream": "gate", "index": 12, "pts_s": 0.48, "wall_time": 1763791873.2,
     "width": 1280, "height": 720,
     "detections": [{"xyxy": [x1, y1, x2, y2], "confidence": 0.91, "class_id": 0,
                     "class_name": "person", "tracker_id": 7,
                     "mask": {"offset_xy": [x1, y1], "size_hw": [h, w], "counts": [...]}}]}

``xyxy`` is in frame pixels. ``tracker_id`` appears once a tracker runs. ``mask`` (only with
``masks: true``) is the object's mask cropped to ``size_hw`` at ``offset_xy`` in frame pixels,
as uncompressed run lengths in column-major (COCO) order starting with a run of zeros.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from pathlib import Path
from typing import IO, Any

import numpy as np
import supervision as sv

from streamseg.rle import crop_rle_counts
from streamseg.types import Frame

logger = logging.getLogger(__name__)


def detections_to_records(detections: sv.Detections, masks: bool) -> list[dict[str, Any]]:
    """Convert detections to JSON-ready dicts (see the module docstring for the fields)."""
    records: list[dict[str, Any]] = []
    names = detections.data.get("class_name")
    for i in range(len(detections)):
        record: dict[str, Any] = {
            "xyxy": [round(float(v), 2) for v in detections.xyxy[i]],
            "confidence": (
                None if detections.confidence is None else _finite(detections.confidence[i], 4)
            ),
            "class_id": None if detections.class_id is None else int(detections.class_id[i]),
            "class_name": None if names is None else str(names[i]),
        }
        if detections.tracker_id is not None:
            record["tracker_id"] = int(detections.tracker_id[i])
        if masks and detections.mask is not None:
            record["mask"] = _mask_record(detections.mask, i)
        records.append(record)
    return records


def _finite(value: Any, digits: int) -> float | None:
    """``value`` rounded, or None (JSON ``null``) when it is NaN or infinite: strict JSON
    readers (jq, JavaScript, Go) reject the bare ``NaN`` Python would write."""
    number = float(value)
    return round(number, digits) if math.isfinite(number) else None


def _mask_record(mask: Any, i: int) -> dict[str, Any]:
    """One mask as a crop RLE, whether ``mask`` is a CompactMask or a dense (N, H, W) array."""
    if isinstance(mask, sv.CompactMask):
        x1, y1 = (int(v) for v in mask.offsets[i])
        crop = mask.crop(i)
    else:
        dense = np.asarray(mask[i], dtype=bool)
        ys, xs = np.nonzero(dense)
        if len(xs) == 0:
            return {"offset_xy": [0, 0], "size_hw": [0, 0], "counts": []}
        x1, y1 = int(xs.min()), int(ys.min())
        crop = dense[y1 : int(ys.max()) + 1, x1 : int(xs.max()) + 1]
    return {
        "offset_xy": [x1, y1],
        "size_hw": [int(crop.shape[0]), int(crop.shape[1])],
        "counts": crop_rle_counts(crop).tolist(),
    }


class JsonlWriter:
    """Writes one JSON line per frame for every stream into one file (thread-safe).

    Args:
        path: output file; parent folders are created.
        masks: include each detection's mask as a crop RLE.
    """

    def __init__(self, path: str | Path, masks: bool = False) -> None:
        self.path = Path(path)
        self.masks = masks
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Opened now, so that a path that cannot be written fails the start; emptied only at
        # the first line, so that a run that analyses nothing (its input missing) leaves the
        # last run's results as they were.
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self.lines_written = 0

    def write(self, frame: Frame, detections: sv.Detections) -> None:
        """Append the frame's line."""
        width, height = frame.resolution_wh
        line = json.dumps(
            {
                "stream": frame.stream_id,
                "index": frame.index,
                "pts_s": round(frame.pts_s, 6),
                "wall_time": round(frame.wall_time, 6),
                "width": width,
                "height": height,
                "detections": detections_to_records(detections, self.masks),
            },
            separators=(",", ":"),
            allow_nan=False,  # anything non-finite left is an error here, not a bad line
        )
        with self._lock:
            if self._file is None:
                raise RuntimeError(f"JsonlWriter({self.path}) is closed")
            if self.lines_written == 0:
                self._file.seek(0)
                self._file.truncate()
            self._file.write(line + "\n")
            self.lines_written += 1

    def close_stream(self, stream_id: str) -> None:
        """Flush so a finished stream's lines are on disk."""
        with self._lock:
            if self._file is not None:
                self._file.flush()

    def close(self) -> None:
        """Flush and close the file."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
                logger.info("wrote %d lines to %s", self.lines_written, self.path)

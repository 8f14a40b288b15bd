"""Tracks as MOTS text files, one per stream, for ``streamseg eval tracking`` (TrackEval).

``MotsWriter(dir)`` writes ``<dir>/<stream>.txt``, one row per tracked object and frame::

    <frame> <object_id> <class_id> <height> <width> <rle>

- ``frame``: the stream's frame index plus 1 (TrackEval's MOTSChallenge counts from 1).
- ``object_id``: the detection's ``tracker_id``. Only detections with ``tracker_id >= 1`` are
  written (-1 marks a detection outside any confirmed track). TrackEval relabels ids, so the
  ``class * 1000 + id`` convention of the ground truth is not needed (and would cap ids at 999).
- ``class_id``: :data:`streamseg.synth.MOTS_CLASS_IDS` of ``data["class_name"]`` (``person`` is
  2); a class outside that table gets ``OTHER_CLASS_BASE + class_id``.
- ``rle``: compressed COCO RLE (pycocotools) of the object's full-frame mask. Masks of one frame
  are made disjoint, as TrackEval requires: objects paint their pixels in descending confidence
  order and a pixel keeps the first object that painted it; an object left with no pixel is not
  written. A detection without a mask paints its box.

The folder is the ``--pred`` layout of ``streamseg eval tracking`` (and TrackEval's tracker
``data`` folder): with the ground truth of ``streamseg synth`` the stream pairs with its sequence.
"""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import supervision as sv

from streamseg.synth.export import MOTS_CLASS_IDS, encode_rle
from streamseg.types import Frame

logger = logging.getLogger(__name__)

OTHER_CLASS_BASE = 100
"""MOTS class id of a class outside :data:`MOTS_CLASS_IDS`: this plus the detection's class id
(clear of MOTS's 1, 2 and 10 and of the synthetic world's ids)."""


def _mots_class_ids(detections: sv.Detections) -> npt.NDArray[np.int64]:
    n = len(detections)
    names = detections.data.get("class_name")
    class_id = (
        np.zeros(n, dtype=np.int64)
        if detections.class_id is None
        else np.asarray(detections.class_id, dtype=np.int64)
    )
    out = OTHER_CLASS_BASE + class_id
    if names is not None:
        for i, name in enumerate(names):
            out[i] = MOTS_CLASS_IDS.get(str(name), out[i])
    return out


def _paint(label: npt.NDArray[np.int32], mask: Any, xyxy: npt.NDArray[Any], i: int, k: int) -> None:
    """Give the still unclaimed pixels of detection ``i``'s mask to instance ``k``."""
    height, width = label.shape
    if mask is None:
        x1, y1 = (max(0, math.floor(v)) for v in xyxy[i, :2])
        # xyxy max coordinates are inclusive (the supervision convention). Clamped at 0 too: a
        # box wholly left of or above the frame would give a negative end, which a slice
        # counts from the far edge.
        x2 = max(0, min(width, math.floor(xyxy[i, 2]) + 1))
        y2 = max(0, min(height, math.floor(xyxy[i, 3]) + 1))
        region = label[y1:y2, x1:x2]
        region[region < 0] = k
        return
    if isinstance(mask, sv.CompactMask):
        if mask.image_shape != (height, width):
            raise ValueError(
                f"mask image_shape {mask.image_shape} differs from the frame's {(height, width)}"
            )
        x1, y1 = (int(v) for v in mask.offsets[i])
        crop = mask.crop(i)
    else:
        crop = np.asarray(mask[i], dtype=bool)
        if crop.shape != (height, width):
            raise ValueError(f"mask {i} is {crop.shape}, expected the frame's {(height, width)}")
        x1 = y1 = 0
    region = label[y1 : y1 + crop.shape[0], x1 : x1 + crop.shape[1]]
    region[crop[: region.shape[0], : region.shape[1]] & (region < 0)] = k


def mots_rows(
    detections: sv.Detections, resolution_wh: tuple[int, int]
) -> list[tuple[int, int, str]]:
    """The tracked objects of one frame as disjoint MOTS masks.

    Args:
        detections: one frame's detections; ``tracker_id`` (N,) int, masks as a CompactMask, a
            dense (N, H, W) bool array or None (boxes are painted), ``xyxy`` in frame pixels.
        resolution_wh: (width, height) of the frame.

    Returns:
        ``(object_id, class_id, rle_counts)`` per written object, in descending confidence order
        (see the module docstring for the rules).
    """
    if detections.tracker_id is None or len(detections) == 0:
        return []
    width, height = resolution_wh
    tracker_id = np.asarray(detections.tracker_id, dtype=np.int64)
    confidence = (
        np.ones(len(detections))
        if detections.confidence is None
        else np.asarray(detections.confidence, dtype=np.float64)
    )
    class_ids = _mots_class_ids(detections)
    order = [int(i) for i in np.argsort(-confidence, kind="stable") if tracker_id[i] >= 1]
    label = np.full((height, width), -1, dtype=np.int32, order="F")
    painted: list[int] = []
    seen: set[int] = set()
    for i in order:
        if int(tracker_id[i]) in seen:
            # Two detections with one id would make TrackEval refuse the file; keep the surest.
            logger.warning("tracker id %d appears twice in one frame", tracker_id[i])
            continue
        seen.add(int(tracker_id[i]))
        _paint(label, detections.mask, detections.xyxy, i, len(painted))
        painted.append(i)
    rows = []
    for k, i in enumerate(painted):
        mask = label == k
        if mask.any():
            rows.append((int(tracker_id[i]), int(class_ids[i]), encode_rle(mask)["counts"]))
    return rows


class MotsWriter:
    """Writes each stream's tracks to ``<directory>/<stream>.txt`` (thread-safe).

    A stream's file is created (emptied) on its first frame and closed by :meth:`close_stream`;
    frames that arrive after that are appended.

    Args:
        directory: output folder; created.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.rows_written: dict[str, int] = {}
        self._files: dict[str, IO[str]] = {}
        self._started: set[str] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._warned_untracked: set[str] = set()

    def path_for(self, stream_id: str) -> Path:
        """The MOTS file of one stream."""
        return self.directory / f"{stream_id}.txt"

    def _file(self, stream_id: str) -> IO[str]:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"MotsWriter({self.directory}) is closed")
            fh = self._files.get(stream_id)
            if fh is None:
                mode = "a" if stream_id in self._started else "w"
                fh = self.path_for(stream_id).open(mode, encoding="ascii")
                self._files[stream_id] = fh
                if stream_id not in self._started:
                    self._started.add(stream_id)
                    self.rows_written[stream_id] = 0
            return fh

    def write(self, frame: Frame, detections: sv.Detections) -> None:
        """Append the tracked objects of one frame."""
        fh = self._file(frame.stream_id)
        if detections.tracker_id is None and len(detections):
            if frame.stream_id not in self._warned_untracked:
                self._warned_untracked.add(frame.stream_id)
                logger.warning(
                    "%s: detections carry no tracker_id (is a tracker configured?); "
                    "the MOTS file gets no rows",
                    frame.stream_id,
                )
            return
        width, height = frame.resolution_wh
        number = frame.index + 1
        rows = mots_rows(detections, (width, height))
        fh.writelines(
            f"{number} {object_id} {class_id} {height} {width} {counts}\n"
            for object_id, class_id, counts in rows
        )
        self.rows_written[frame.stream_id] += len(rows)

    def close_stream(self, stream_id: str) -> None:
        """Close the stream's file so it is complete on disk."""
        with self._lock:
            fh = self._files.pop(stream_id, None)
        if fh is not None:
            fh.close()
            logger.info(
                "wrote %d MOTS rows to %s", self.rows_written[stream_id], self.path_for(stream_id)
            )

    def close(self) -> None:
        """Close every file still open."""
        with self._lock:
            self._closed = True
            files, self._files = self._files, {}
        for fh in files.values():
            fh.close()

"""PendingStarts: following unclaimed weak detections from frame to frame."""

from __future__ import annotations

import numpy as np

from streamseg.track.pending import PendingStarts


def _boxes(*xs: float) -> np.ndarray:
    return np.array([[x, 0.0, x + 10.0, 20.0] for x in xs]).reshape(-1, 4)


def test_a_detection_in_the_same_place_keeps_its_first_sighting() -> None:
    pending = PendingStarts(min_iou=0.5)
    classes = np.array([0, 0])
    assert pending.update(_boxes(0, 100), classes, 1.0).tolist() == [1.0, 1.0]
    # The first moved a pixel; the second jumped away (a different detection).
    assert pending.update(_boxes(1, 150), classes, 1.1).tolist() == [1.0, 1.1]
    assert pending.update(_boxes(2, 151), classes, 1.2).tolist() == [1.0, 1.1]


def test_a_gap_or_another_class_starts_over() -> None:
    pending = PendingStarts(min_iou=0.5)
    pending.update(_boxes(0), np.array([0]), 1.0)
    assert pending.update(_boxes(0), np.array([1]), 1.1).tolist() == [1.1]
    pending.update(_boxes(), np.zeros(0, dtype=np.int64), 1.2)
    assert len(pending) == 0
    assert pending.update(_boxes(0), np.array([1]), 1.3).tolist() == [1.3]


def test_each_pending_detection_is_continued_once_by_the_best_overlap() -> None:
    pending = PendingStarts(min_iou=0.5)
    pending.update(_boxes(0), np.array([0]), 1.0)
    # Two detections overlap it; the closer one continues it, the other is new.
    assert pending.update(_boxes(3, 1), np.array([0, 0]), 1.1).tolist() == [1.1, 1.0]


def test_forgotten_detections_start_over() -> None:
    pending = PendingStarts(min_iou=0.5)
    pending.update(_boxes(0, 100), np.array([0, 0]), 1.0)
    pending.forget(np.array([0]))
    assert pending.update(_boxes(0, 100), np.array([0, 0]), 1.1).tolist() == [1.1, 1.0]

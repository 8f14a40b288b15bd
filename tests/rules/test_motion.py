"""streamseg.rules.motion: mask change over the pixels no other object covers, and a track's
motion against its recent masks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import supervision as sv

from streamseg.rules.measures import FrameObjects
from streamseg.rules.motion import MaskSample, MotionHistory, sample_of, visible_change


def _rect(pts: float, x1: int, y1: int, x2: int, y2: int) -> MaskSample:
    return MaskSample(pts, (x1, y1, x2, y2), np.ones((y2 - y1 + 1, x2 - x1 + 1), dtype=bool))


def test_change_places_the_masks_in_the_frame() -> None:
    a = _rect(0, 0, 0, 9, 9)  # 100 px
    assert visible_change(a, a) == 0.0
    assert visible_change(a, _rect(0, 5, 0, 14, 9)) == pytest.approx(1 - 50 / 150)
    assert visible_change(a, _rect(0, 10, 0, 19, 9)) == 1.0  # touching, not overlapping
    hollow = MaskSample(0, (0, 0, 9, 9), np.zeros((10, 10), dtype=bool))
    assert visible_change(hollow, hollow) == 0.0


def test_pixels_another_object_covers_are_not_compared() -> None:
    """A worker in front of the right half of a parked truck is not the truck moving."""
    whole = _rect(0, 0, 0, 19, 9)
    mask = np.ones((10, 20), dtype=bool)
    mask[:, 10:] = False
    covered = ~mask
    half_hidden = MaskSample(1, (0, 0, 19, 9), mask, covered)
    assert visible_change(whole, half_hidden) == 0.0
    assert visible_change(whole, dataclasses.replace(half_hidden, covered=None)) == 0.5


def _objects(*boxes: tuple[int, int, int, int]) -> FrameObjects:
    masks = np.zeros((len(boxes), 60, 100), dtype=bool)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        masks[i, y1 : y2 + 1, x1 : x2 + 1] = True
    xyxy = np.array(boxes, dtype=np.float32)
    detections = sv.Detections(
        xyxy=xyxy,
        mask=sv.CompactMask.from_dense(masks, xyxy, image_shape=(60, 100)),
        class_id=np.zeros(len(boxes), dtype=int),
        tracker_id=np.arange(1, len(boxes) + 1),
        data={"class_name": np.array(["truck"] + ["person"] * (len(boxes) - 1))},
    )
    return FrameObjects(detections, (100, 60))


def test_a_sample_holds_the_others_pixels_around_its_object() -> None:
    objects = _objects((40, 20, 59, 39), (60, 25, 67, 45), (0, 0, 5, 5))
    sample = sample_of(objects, 0, 1.0)
    # The box widened by a quarter of 20 px each side, (35, 15, 64, 44), on the grid of even
    # pixels: grid pixels 18..32 across and 8..22 down; the truck's 20 x 20 px are 10 x 10 there.
    assert sample.box == (18, 8, 32, 22)
    assert sample.mask.sum() == 100
    assert sample.covered is not None
    # The person's pixels inside it (x 60..64, y 25..44): grid 30..32 across, 13..22 down; the
    # far one is not there.
    assert sample.covered.sum() == 3 * 10
    assert not (sample.covered & sample.mask).any()
    assert sample_of(objects, 2, 1.0).covered is None


def test_change_is_the_largest_against_the_window_and_old_masks_are_dropped() -> None:
    history = MotionHistory(window_s=1.0, min_change=0.2)
    assert history.observe_samples(0.0, {5: _rect(0.0, 0, 0, 9, 9)}) == {5: 0.0}  # nothing yet
    shifted = history.observe_samples(0.5, {5: _rect(0.5, 5, 0, 14, 9)})
    assert shifted[5] == pytest.approx(1 - 50 / 150)
    # Back where it was at 0 s: the 0.5 s mask differs, and the 0 s one is still in the window.
    assert history.observe_samples(1.0, {5: _rect(1.0, 0, 0, 9, 9)})[5] == pytest.approx(
        1 - 50 / 150
    )
    # At 1.6 s only the masks of 1.0 s and later are compared: still.
    assert history.observe_samples(1.6, {5: _rect(1.6, 0, 0, 9, 9)}) == {5: 0.0}


def test_a_track_unseen_for_longer_than_the_window_is_forgotten() -> None:
    history = MotionHistory(window_s=1.0, min_change=0.2)
    history.observe_samples(0.0, {5: _rect(0.0, 0, 0, 9, 9), 6: _rect(0.0, 20, 0, 29, 9)})
    history.observe_samples(1.5, {6: _rect(1.5, 20, 0, 29, 9)})
    assert set(history.change) == {6}
    # Back elsewhere: no earlier mask to compare with, so not (yet) moving.
    assert history.observe_samples(1.6, {5: _rect(1.6, 50, 0, 59, 9)})[5] == 0.0


@pytest.mark.parametrize(("window_s", "min_change"), [(0, 0.1), (1, 0), (1, 1)])
def test_bad_settings(window_s: float, min_change: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        MotionHistory(window_s, min_change)


def _dense_change(a: MaskSample, b: MaskSample) -> float:
    """visible_change written plainly: both samples placed in one frame."""
    frame = (40, 40)
    placed = []
    for sample in (a, b):
        mask, covered = np.zeros(frame, dtype=bool), np.zeros(frame, dtype=bool)
        x1, y1, x2, y2 = sample.box
        mask[y1 : y2 + 1, x1 : x2 + 1] = sample.mask
        if sample.covered is not None:
            covered[y1 : y2 + 1, x1 : x2 + 1] = sample.covered
        placed.append((mask, covered))
    (ma, ca), (mb, cb) = placed
    seen = ~(ca | cb)
    union = np.count_nonzero((ma | mb) & seen)
    return 0.0 if union == 0 else 1.0 - np.count_nonzero(ma & mb & seen) / union


def test_change_matches_a_plain_reading_on_random_samples() -> None:
    rng = np.random.default_rng(7)

    def random_sample() -> MaskSample:
        x1, y1 = (int(v) for v in rng.integers(0, 30, size=2))
        w, h = (int(v) for v in rng.integers(1, 10, size=2))
        mask = rng.random((h, w)) < 0.6
        covered = (rng.random((h, w)) < 0.3) if rng.random() < 0.7 else None
        return MaskSample(0.0, (x1, y1, x1 + w - 1, y1 + h - 1), mask, covered)

    for _ in range(2000):
        a, b = random_sample(), random_sample()
        assert visible_change(a, b) == pytest.approx(_dense_change(a, b))

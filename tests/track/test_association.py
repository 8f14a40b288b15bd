"""Box IoU, the named similarities and the thresholded assignment."""

from __future__ import annotations

import numpy as np
import pytest

from streamseg.track.association import (
    assign,
    box_iou,
    fuse_box_and_mask,
    similarity_by_name,
)


def test_box_iou_against_hand_values() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], dtype=float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], dtype=float)
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0], [0.0, 0.0, 0.0]])
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 3)


def test_fused_similarity_uses_masks_where_both_sides_have_one() -> None:
    box = np.array([[0.8, 0.8]])
    mask = np.array([[0.9, np.nan]])
    np.testing.assert_allclose(fuse_box_and_mask(box, mask, 0.5), [[0.85, 0.8]])
    np.testing.assert_allclose(fuse_box_and_mask(box, None, 0.5), box)
    np.testing.assert_allclose(similarity_by_name("box")(box, mask, 0.5), box)


def test_unknown_similarity_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match=r"expected one of box, mask, got 'giou'"):
        similarity_by_name("giou")


def test_assignment_maximizes_total_similarity_above_the_threshold() -> None:
    sim = np.array([[0.9, 0.8, 0.0], [0.85, 0.1, 0.0], [0.0, 0.0, 0.15]])
    allowed = np.ones_like(sim, dtype=bool)
    result = assign(sim, 0.2, allowed)
    # Greedy would give row 0 column 0 and leave row 1 with 0.1 < threshold.
    assert sorted(map(tuple, result.matches.tolist())) == [(0, 1), (1, 0)]
    assert result.unmatched_rows.tolist() == [2] and result.unmatched_cols.tolist() == [2]


def test_assignment_respects_the_allowed_pairs() -> None:
    sim = np.array([[0.9, 0.5], [0.4, 0.3]])
    allowed = np.array([[False, True], [True, True]])
    assert sorted(map(tuple, assign(sim, 0.1, allowed).matches.tolist())) == [(0, 1), (1, 0)]


@pytest.mark.parametrize("shape", [(0, 3), (2, 0), (0, 0)])
def test_empty_problems(shape: tuple[int, int]) -> None:
    result = assign(np.zeros(shape), 0.5, np.zeros(shape, dtype=bool))
    assert result.matches.shape == (0, 2)
    assert len(result.unmatched_rows) == shape[0] and len(result.unmatched_cols) == shape[1]


def test_uncontested_pairs_take_the_fast_path_with_the_same_answer() -> None:
    sim = np.array([[0.7, 0.0], [0.0, 0.05]])
    result = assign(sim, 0.1, sim > 0)
    assert result.matches.tolist() == [[0, 0]]
    assert result.unmatched_rows.tolist() == [1] and result.unmatched_cols.tolist() == [1]

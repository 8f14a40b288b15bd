"""The training loader: an example is a pure function of (seed, index), and batches collate."""

from __future__ import annotations

import numpy as np

from streamseg.train.data import TrainDataset, collate


def test_dataset_is_deterministic_per_index(shapes_source: object) -> None:
    ds = TrainDataset(shapes_source, (64, 96), seed=5)  # type: ignore[arg-type]
    a, b, c = ds[7], ds[7], ds[8]
    assert np.array_equal(a.image.numpy(), b.image.numpy())
    assert np.array_equal(a.masks.numpy(), b.masks.numpy())
    assert not np.array_equal(a.image.numpy(), c.image.numpy())
    images, targets = collate([a, c])
    assert images.shape == (2, 3, 64, 96)
    assert targets.masks.shape[2:] == (16, 24)
    assert int(targets.valid.sum()) == len(a.labels) + len(c.labels)

"""The synthetic source and held-out set, with the real ``streamseg.synth`` renderer."""

from __future__ import annotations

import pickle

import numpy as np

from streamseg.train.data import TrainDataset
from streamseg.train.evaluate import synth_eval_set
from streamseg.train.sources import SynthSource


def test_synth_examples_are_valid_and_deterministic() -> None:
    src = SynthSource([(160, 90), (192, 108)], fresh_scene_prob=0.5, scene_block=2)
    assert src.class_names == ("person", "excavator", "truck", "cow", "sheep", "ball")
    ds = TrainDataset(src, (64, 96), seed=1)
    examples = [ds[i] for i in range(6)]
    assert sum(len(e.labels) for e in examples) > 0
    for e in examples:
        assert e.image.shape == (3, 64, 96)
        assert e.masks.shape[1:] == (16, 24)
        assert len(e.labels) == len(e.boxes_xyxy) == len(e.masks)
        assert all(0 <= int(c) < 6 for c in e.labels)
        if len(e.labels):
            assert float(e.masks.float().amax(dim=(1, 2)).min()) > 0
            assert np.all(e.boxes_xyxy[:, 2:].numpy() > e.boxes_xyxy[:, :2].numpy())
    # A fresh source in another "process" (pickled, as into a spawned worker) agrees.
    again = TrainDataset(pickle.loads(pickle.dumps(src)), (64, 96), seed=1)
    for i in (0, 3, 5):
        assert np.array_equal(again[i].image.numpy(), examples[i].image.numpy())


def test_held_out_set_covers_every_kind() -> None:
    ev = synth_eval_set(2, (160, 90))
    assert set(ev) == {"yard", "field", "pitch"}
    for samples in ev.values():
        assert len(samples) == 2
        assert samples[0].image.shape == (90, 160, 3)
        assert not np.array_equal(samples[0].image, samples[1].image)
    again = synth_eval_set(1, (160, 90))
    assert np.array_equal(again["field"][0].image, ev["field"][0].image)

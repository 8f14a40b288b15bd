"""The training loader: sample index -> augmented example -> batch.

:class:`TrainDataset` maps a global sample index ``k`` to a training example: the sample comes
from a :class:`~streamseg.train.sources.SampleSource` and is letterboxed and augmented by
:mod:`streamseg.train.augment`. Every random choice for sample ``k`` (what is rendered, which
COCO image, every augmentation) comes from ``numpy.random.default_rng([TRAIN_SEED_STREAM, seed,
k])``, so a run is a pure function of its seed and step: resuming at step ``s`` with batch
``b`` continues with sample ``s * b`` exactly. Held-out evaluation frames use
``[EVAL_SEED_STREAM, j]`` (see :mod:`streamseg.train.evaluate`): the first word of the seed
differs, so the two streams never share a seed.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from streamseg.train.augment import (
    DEFAULT_AUGMENT,
    ROI_SIZE,
    AugmentConfig,
    Example,
    make_example,
    make_mosaic,
)
from streamseg.train.loss import Targets
from streamseg.train.sources import SampleSource

logger = logging.getLogger(__name__)

#: First word of the seed of every training sample.
TRAIN_SEED_STREAM = 0
#: First word of the seed of every held-out evaluation frame.
EVAL_SEED_STREAM = 1


def sample_rng(seed: int, index: int, stream: int = TRAIN_SEED_STREAM) -> np.random.Generator:
    """The generator of training sample ``index`` (or held-out frame, with ``stream``)."""
    return np.random.default_rng([stream, seed, index])


class TrainDataset(Dataset[Example]):
    """Sample index -> augmented example; deterministic in (seed, index).

    Args:
        source: where samples come from.
        input_hw: (H, W) network input.
        augment: augmentation strengths.
        seed: run seed (second word of every sample's seed).
    """

    def __init__(
        self,
        source: SampleSource,
        input_hw: tuple[int, int],
        augment: AugmentConfig = DEFAULT_AUGMENT,
        seed: int = 0,
    ) -> None:
        if input_hw[0] % 32 or input_hw[1] % 32:
            raise ValueError(f"input_hw: expected multiples of 32, got {input_hw}")
        self.source = source
        self.input_hw = input_hw
        self.augment = augment
        self.seed = seed

    def __len__(self) -> int:
        # Indices are unbounded; the sampler decides which are used.
        return 2**62

    def __getitem__(self, index: int) -> Example:
        rng = sample_rng(self.seed, index)
        if self.augment.mosaic > 0 and rng.random() < self.augment.mosaic:
            extra = rng.integers(0, 2**62, size=3)
            samples = [self.source.get(index, rng)]
            samples += [self.source.get(int(e), rng) for e in extra]
            return make_mosaic(samples, self.input_hw, self.augment, rng)
        return make_example(self.source.get(index, rng), self.input_hw, self.augment, rng)


class RangeSampler(Sampler[int]):
    """Yields ``start, start + 1, ..., stop - 1`` (the global sample indices of a run segment)."""

    def __init__(self, start: int, stop: int) -> None:
        self.start = start
        self.stop = stop

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def collate(examples: Sequence[Example]) -> tuple[torch.Tensor, Targets]:
    """Stack examples into ``(images [B, 3, H, W] uint8, Targets)`` padded to the max count."""
    images = torch.stack([e.image for e in examples])
    bsz = len(examples)
    m = max(1, max(len(e.labels) for e in examples))
    mh, mw = examples[0].masks.shape[1:]
    labels = torch.zeros(bsz, m, dtype=torch.int64)
    boxes = torch.zeros(bsz, m, 4)
    masks = torch.zeros(bsz, m, mh, mw)
    valid = torch.zeros(bsz, m, dtype=torch.bool)
    roi_xy = torch.zeros(bsz, m, 2, ROI_SIZE, dtype=torch.int16)
    roi = torch.zeros(bsz, m, ROI_SIZE, ROI_SIZE, dtype=torch.bool)
    for i, e in enumerate(examples):
        n = len(e.labels)
        if n:
            labels[i, :n] = e.labels
            boxes[i, :n] = e.boxes_xyxy
            masks[i, :n] = e.masks.float()
            valid[i, :n] = True
            roi_xy[i, :n] = e.roi_xy
            roi[i, :n] = e.roi
    return images, Targets(labels, boxes, masks, valid, roi_xy, roi)


def worker_init(_: int) -> None:
    """DataLoader worker setup: one thread each for torch and OpenCV (the trainer owns the CPU).

    The worker ignores SIGINT and SIGTERM. A Ctrl-C in the terminal reaches the whole process
    group, and so does a SIGTERM from systemd (``KillMode=control-group``) or ``kill -- -PGID``;
    the trainer must be able to finish its step and checkpoint while the worker keeps serving.
    A worker killed by SIGTERM made the DataLoader raise mid-step, before any checkpoint. The
    DataLoader ends its workers itself when the trainer stops (and a worker whose trainer died
    exits on its own).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def images_to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, 3, H, W] RGB -> float [B, 3, H, W] in 0..1, channels-last."""
    return (images.float() / 255.0).contiguous(memory_format=torch.channels_last)

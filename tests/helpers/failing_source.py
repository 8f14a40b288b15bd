"""A training sample source whose every sample fails with an error no caller handles (a bug in
a user's source, or in a reader): for the data-worker shutdown test. Importable by module path,
as the DataLoader's spawned workers need."""

from __future__ import annotations

import numpy as np

from streamseg.train.sources import Sample


class FailingSource:
    """Two classes; ``get`` raises ``RuntimeError``."""

    class_names = ("a", "b")

    def __len__(self) -> int:
        return 100

    def get(self, index: int, rng: np.random.Generator) -> Sample:
        raise RuntimeError(f"sample {index} failed in the worker")

"""Where training samples come from: the synthetic world, or a COCO dataset.

A *sample source* (:class:`SampleSource`) turns ``(index, rng)`` into one :class:`Sample`
(image, instance masks, class ids) at the source's own resolution:

* :class:`SynthSource` renders a fresh synthetic frame with ``streamseg.synth`` for every index
  (data on the fly, never a fixed small set);
* :class:`streamseg.train.coco.CocoSource` reads a COCO instance-segmentation dataset
  (polygon or RLE masks).

:mod:`streamseg.train.augment` turns a sample into a training example and
:mod:`streamseg.train.data` batches them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

#: Seeds of fresh synthetic training scenes start here (see :class:`SynthSource`).
TRAIN_SCENE_SEED_BASE = 10**9
#: Seeds of the synthetic scenes of held-out evaluation frames start here.
EVAL_SCENE_SEED_BASE = 10**12


class Sample(NamedTuple):
    """One image with its instances.

    Attributes:
        image: (H, W, 3) uint8 BGR.
        masks: (N, H, W) bool, one visible mask per instance.
        class_ids: (N,) int64.
    """

    image: npt.NDArray[np.uint8]
    masks: npt.NDArray[np.bool_]
    class_ids: npt.NDArray[np.int64]


class SampleSource(Protocol):
    """Anything that yields training samples."""

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names, index = class id."""
        ...

    def get(self, index: int, rng: np.random.Generator) -> Sample:
        """Return sample ``index``; every random choice must come from ``rng``."""
        ...


class SynthSource:
    """Fresh synthetic frames from ``streamseg.synth``, rendered for every sample.

    Most samples come from ``random_training_frame`` (random kind, difficulty, objects, poses,
    lighting over a cached pool of backgrounds per resolution). A share ``fresh_scene_prob``
    comes from a whole new scene (``SceneRenderer`` with its own layout and background) so the
    network does not learn the pool's backgrounds: the scene of sample ``k`` has seed
    ``TRAIN_SCENE_SEED_BASE + k // scene_block`` (far from the small seeds demos use and from
    :data:`EVAL_SCENE_SEED_BASE`), and the few most recent scenes are kept per worker.

    Args:
        resolutions_wh: (width, height) choices to render at, one drawn per sample (each keeps
            its own background pool in ``streamseg.synth``: keep it to a few).
        fresh_scene_prob: share of samples drawn from a fresh scene.
        scene_block: consecutive sample indices that share one fresh scene.
        max_start_frame: a fresh-scene sample shows a frame in ``[0, max_start_frame)``.
    """

    def __init__(
        self,
        resolutions_wh: Sequence[tuple[int, int]],
        fresh_scene_prob: float = 0.3,
        scene_block: int = 32,
        max_start_frame: int = 90,
    ) -> None:
        try:
            from streamseg import synth as synth_module
        except ImportError as exc:  # pragma: no cover - synth ships with the package
            raise RuntimeError(f"SynthSource needs streamseg.synth: {exc}") from exc
        synth: Any = synth_module
        for name in ("random_training_frame", "SceneRenderer", "CLASS_NAMES", "SCENE_KINDS"):
            if not hasattr(synth, name):
                raise RuntimeError(
                    f"SynthSource expected streamseg.synth.{name}; this streamseg.synth lacks it"
                )
        if not resolutions_wh:
            raise ValueError("resolutions_wh: expected at least one (width, height)")
        self._names = tuple(synth.CLASS_NAMES)
        self.resolutions_wh = [(int(w), int(h)) for w, h in resolutions_wh]
        self.fresh_scene_prob = fresh_scene_prob
        self.scene_block = scene_block
        self.max_start_frame = max_start_frame
        self._scenes: dict[tuple[int, int], Any] = {}

    @property
    def class_names(self) -> tuple[str, ...]:
        """``streamseg.synth.CLASS_NAMES``."""
        return self._names

    @property
    def _synth(self) -> Any:
        # Imported on use, not stored: the source must pickle into spawned DataLoader workers.
        from streamseg import synth

        return synth

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_scenes"] = {}  # renderers are rebuilt on demand in each worker
        return state

    def get(self, index: int, rng: np.random.Generator) -> Sample:
        """Render the frame of sample ``index`` (every choice from ``rng`` and ``index``)."""
        res = self.resolutions_wh[int(rng.integers(0, len(self.resolutions_wh)))]
        if self.fresh_scene_prob > 0 and rng.random() < self.fresh_scene_prob:
            renderer = self._scene(index // self.scene_block, res)
            start = int(rng.integers(0, self.max_start_frame))
            return synth_frame_to_sample(next(renderer.frames(1, start=start)))
        return synth_frame_to_sample(self._synth.random_training_frame(rng, res))

    def _scene(self, block: int, res: tuple[int, int]) -> Any:
        key = (block, self.resolutions_wh.index(res))
        if key not in self._scenes:
            if len(self._scenes) >= 4 * len(self.resolutions_wh):
                self._scenes.pop(next(iter(self._scenes)))
            kinds = self._synth.SCENE_KINDS
            diffs = getattr(self._synth, "DIFFICULTIES", ("easy",))
            self._scenes[key] = self._synth.SceneRenderer(
                kinds[block % len(kinds)],
                seed=TRAIN_SCENE_SEED_BASE + block,
                resolution_wh=res,
                difficulty=diffs[(block // len(kinds)) % len(diffs)],
            )
        return self._scenes[key]


def synth_frame_to_sample(frame: Any) -> Sample:
    """Convert a ``streamseg.synth.SynthFrame`` (``.image``, ``.objects``) to a :class:`Sample`."""
    img = np.ascontiguousarray(frame.image, dtype=np.uint8)
    objs = list(frame.objects)
    h, w = img.shape[:2]
    if objs:
        masks = np.stack([np.asarray(o.mask, dtype=bool) for o in objs])
        cls = np.array([int(o.class_id) for o in objs], dtype=np.int64)
    else:
        masks = np.zeros((0, h, w), dtype=bool)
        cls = np.zeros((0,), dtype=np.int64)
    return Sample(img, masks, cls)

"""streamseg.synth: a deterministic renderer of short synthetic videos with ground truth.

Three scenes (construction yard, farm field, sports pitch) seen by a static oblique camera:
textured ground, perspective, moving and occluding objects drawn as class-like silhouettes, slow
lighting drift and sensor noise. Every frame comes with the visible instance mask, class and
identity of each object. Exporters write H.264 video, MOTS text (TrackEval) and COCO JSON.

Example:
    >>> from streamseg.synth import SceneRenderer
    >>> renderer = SceneRenderer("field", seed=7, resolution_wh=(384, 224))
    >>> frame = next(renderer.frames(1))
    >>> frame.image.shape
    (224, 384, 3)
"""

from streamseg.synth.export import (
    MOTS_CLASS_IDS,
    render_scene_video,
    write_coco,
    write_mots,
    write_seqinfo,
    write_video,
)
from streamseg.synth.frame import (
    CLASS_NAMES,
    DIFFICULTIES,
    KIND_CLASSES,
    SCENE_KINDS,
    SynthFrame,
    SynthObject,
)
from streamseg.synth.scene import SceneRenderer, random_training_frame, warm_training_pool

__all__ = [
    "CLASS_NAMES",
    "DIFFICULTIES",
    "KIND_CLASSES",
    "MOTS_CLASS_IDS",
    "SCENE_KINDS",
    "SceneRenderer",
    "SynthFrame",
    "SynthObject",
    "random_training_frame",
    "render_scene_video",
    "warm_training_pool",
    "write_coco",
    "write_mots",
    "write_seqinfo",
    "write_video",
]

"""Scenes and frames: the seeded renderer and the one-shot training sampler.

A :class:`Scene` is everything static about a view (camera, background, sun, sensor), built once.
A frame is the scene's background, the agents' shadows, the agents drawn far to near into the
image and an id buffer, then optics and sensor: a slight blur, a slowly drifting exposure and
tint, and gaussian noise. The id buffer gives each object's visible mask.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from streamseg.synth.agents import Agent, Region, World
from streamseg.synth.camera import GroundCamera
from streamseg.synth.frame import (
    CLASS_NAMES,
    DIFFICULTIES,
    SCENE_KINDS,
    SynthFrame,
    SynthObject,
)
from streamseg.synth.ground import build_background, noise_bank
from streamseg.synth.shapes import Canvas, Lighting, ObjectView, PartList, project_ellipsoid
from streamseg.synth.worlds import make_world

logger = logging.getLogger(__name__)

MAX_OBJECTS = 254
"""The id buffer is uint8 with 0 for background."""

_NEAR_WIDTH_M = {"yard": 24.0, "field": 16.0, "pitch": 24.0}
_NOISE_PAD = 32
_TRAINING_VARIANTS = 12  # cached backgrounds per kind and resolution for random_training_frame


@dataclass(frozen=True)
class Exposure:
    """Slow global lighting drift: gain and per-channel tint as sums of slow sines.

    Attributes:
        gain_amp: amplitude of the overall gain swing (0.1 = +-10 %).
        gain_period_s: period of the gain swing in seconds.
        tint_amp: amplitude of the per-channel colour drift.
        tint_period_s: period of the tint drift in seconds.
        phases: (4,) phases in radians: gain, then B, G, R tint.
        base_gain: gain around which the drift swings.
    """

    gain_amp: float
    gain_period_s: float
    tint_amp: float
    tint_period_s: float
    phases: tuple[float, float, float, float]
    base_gain: float = 1.0

    def channel_gains(self, t_s: float) -> tuple[float, float, float]:
        """(B, G, R) gains at time ``t_s`` seconds."""
        gain = self.base_gain * (
            1.0 + self.gain_amp * math.sin(2 * math.pi * t_s / self.gain_period_s + self.phases[0])
        )
        tints = [
            1.0 + self.tint_amp * math.sin(2 * math.pi * t_s / self.tint_period_s + p)
            for p in self.phases[1:]
        ]
        return gain * tints[0], gain * tints[1], gain * tints[2]


@dataclass(frozen=True)
class Scene:
    """Everything static about one view.

    Attributes:
        kind: ``yard``, ``field`` or ``pitch``.
        camera: the ground camera.
        region: where objects' feet may go.
        background: (H, W, 3) uint8 BGR, the empty scene.
        background_shadow: (H, W, 3) uint8 BGR, the empty scene in shadow.
        lighting: sun direction for shading and shadows.
        noise_pos: (H + pad, W + pad, 3) uint8, positive part of the sensor noise.
        noise_neg: same shape, negative part.
        blur_sigma: sigma in pixels of the lens blur.
        exposure: lighting drift.
    """

    kind: str
    camera: GroundCamera
    region: Region
    background: npt.NDArray[np.uint8]
    background_shadow: npt.NDArray[np.uint8]
    lighting: Lighting
    noise_pos: npt.NDArray[np.uint8]
    noise_neg: npt.NDArray[np.uint8]
    blur_sigma: float
    exposure: Exposure


def _check_resolution(resolution_wh: Sequence[int]) -> tuple[int, int]:
    if len(resolution_wh) != 2:
        raise ValueError(f"resolution_wh must be (width, height), got {resolution_wh!r}")
    width, height = int(resolution_wh[0]), int(resolution_wh[1])
    if width < 32 or height < 32 or width > 8192 or height > 8192:
        raise ValueError(
            f"resolution_wh must be between 32 and 8192 pixels a side, got {width}x{height}"
        )
    return width, height


def build_scene(kind: str, resolution_wh: tuple[int, int], rng: np.random.Generator) -> Scene:
    """Lay out and render the static part of a scene.

    Args:
        kind: one of :data:`SCENE_KINDS`.
        resolution_wh: (width, height) in pixels.
        rng: seeded source of the layout, camera, colours, sun and sensor.

    Returns:
        The scene.
    """
    if kind not in SCENE_KINDS:
        raise ValueError(f"kind must be one of {list(SCENE_KINDS)}, got {kind!r}")
    width, height = _check_resolution(resolution_wh)
    camera = GroundCamera(
        width=width,
        height=height,
        near_width_m=_NEAR_WIDTH_M[kind] * float(rng.uniform(0.85, 1.15)),
        horizon_frac=float(rng.uniform(-0.42, -0.3)),
        tilt=float(rng.uniform(0.48, 0.62)),
    )
    z_near = camera.depth_at_row(height)
    region = Region(camera, z_min=z_near * 0.97, z_max=camera.depth_at_row(0.2 * height))
    z_back = camera.depth_at_row(0.13 * height)
    background = build_background(kind, camera, rng, z_back)
    azimuth = float(rng.uniform(0.0, 2 * math.pi))
    elevation = float(rng.uniform(0.5, 1.2))
    sun = (
        math.cos(azimuth) * math.cos(elevation),
        math.sin(azimuth) * math.cos(elevation),
        math.sin(elevation),
    )
    shadow_depth = float(rng.uniform(0.65, 0.8))
    background_shadow = np.asarray(
        cv2.convertScaleAbs(background, alpha=shadow_depth), dtype=np.uint8
    )
    sigma = float(rng.choice([1.5, 2.5, 3.5, 5.0]))
    pos, neg = noise_bank((width, height), sigma, int(rng.integers(0, 2**31)), _NOISE_PAD)
    exposure = Exposure(
        gain_amp=float(rng.uniform(0.04, 0.14)),
        gain_period_s=float(rng.uniform(20.0, 60.0)),
        tint_amp=float(rng.uniform(0.0, 0.04)),
        tint_period_s=float(rng.uniform(30.0, 90.0)),
        phases=(
            float(rng.uniform(0, 2 * math.pi)),
            float(rng.uniform(0, 2 * math.pi)),
            float(rng.uniform(0, 2 * math.pi)),
            float(rng.uniform(0, 2 * math.pi)),
        ),
    )
    return Scene(
        kind=kind,
        camera=camera,
        region=region,
        background=background,
        background_shadow=background_shadow,
        lighting=Lighting(sun=sun, ambient=float(rng.uniform(0.45, 0.65))),
        noise_pos=pos,
        noise_neg=neg,
        blur_sigma=float(rng.uniform(0.45, 0.9)),
        exposure=exposure,
    )


def _draw_shadows(scene: Scene, agents: Sequence[Agent], shade: npt.NDArray[np.uint8]) -> None:
    sx, sz, su = scene.lighting.sun
    horiz = math.hypot(sx, sz)
    away = math.atan2(-sz, -sx)  # shadows fall away from the sun
    for agent in agents:
        half_len, half_w, cast = agent.shadow_size()
        length = min(cast * horiz / max(su, 0.2), cast * 2.0)
        view = ObjectView(scene.camera, agent.x, agent.z, away)
        reach = max(half_len, half_w)
        x, y, ax1, ax2, angle = project_ellipsoid(
            view, length * 0.5, 0.0, 0.0, (length * 0.5 + half_w, reach, 0.0)
        )
        cv2.ellipse(
            shade,
            (int(x * 16), int(y * 16)),
            (max(1, int(ax1 * 16)), max(1, int(ax2 * 16))),
            angle,
            0,
            360,
            255,
            -1,
            cv2.LINE_8,
            4,
        )


def render_frame(
    scene: Scene,
    agents: Sequence[Agent],
    index: int,
    pts_s: float,
    noise_rng: np.random.Generator,
    gains_bgr: tuple[float, float, float],
    min_visible_px: int,
) -> SynthFrame:
    """Draw one frame of ``agents`` in ``scene`` and extract its ground truth.

    Args:
        scene: the static scene.
        agents: the objects in their current state.
        index: frame number to stamp on the result.
        pts_s: presentation time in seconds to stamp on the result.
        noise_rng: picks the sensor-noise window of this frame.
        gains_bgr: exposure gain per channel.
        min_visible_px: objects with fewer visible pixels are left out of the ground truth.

    Returns:
        The frame with the visible mask, box, class and identity of every object.
    """
    if len(agents) > MAX_OBJECTS:
        raise ValueError(f"at most {MAX_OBJECTS} objects per frame, got {len(agents)}")
    cam = scene.camera
    height, width = cam.height, cam.width
    image = scene.background.copy()
    order = sorted(agents, key=lambda a: -a.z)  # painter's algorithm: far feet first
    shade = np.zeros((height, width), dtype=np.uint8)
    _draw_shadows(scene, order, shade)
    cv2.copyTo(scene.background_shadow, shade, image)
    ids = np.zeros((height, width), dtype=np.uint8)
    canvas = Canvas(image, ids)
    boxes: list[tuple[int, int, int, int] | None] = []
    for slot, agent in enumerate(order, start=1):
        canvas.begin(slot)
        parts = PartList(ObjectView(cam, agent.x, agent.z, agent.heading), scene.lighting)
        agent.build(parts)
        parts.draw(canvas)
        boxes.append(canvas.drawn_box())
    objects: list[SynthObject] = []
    for slot, (agent, box) in enumerate(zip(order, boxes, strict=True), start=1):
        if box is None:
            continue
        x1, y1, x2, y2 = box
        roi = ids[y1 : y2 + 1, x1 : x2 + 1] == slot
        if int(np.count_nonzero(roi)) < min_visible_px:
            continue
        rows = np.flatnonzero(roi.any(axis=1))
        cols = np.flatnonzero(roi.any(axis=0))
        mask = np.zeros((height, width), dtype=bool)
        mask[y1 : y2 + 1, x1 : x2 + 1] = roi
        xyxy = np.array(
            [x1 + cols[0], y1 + rows[0], x1 + cols[-1], y1 + rows[-1]], dtype=np.float32
        )
        objects.append(
            SynthObject(
                track_id=agent.track_id,
                class_id=agent.class_id,
                class_name=CLASS_NAMES[agent.class_id],
                mask=mask,
                xyxy=xyxy,
                attributes=dict(agent.attributes),
            )
        )
    objects.sort(key=lambda obj: obj.track_id)
    image = _camera_effects(scene, image, noise_rng, gains_bgr)
    return SynthFrame(index=index, pts_s=pts_s, image=image, objects=objects)


def _camera_effects(
    scene: Scene,
    image: npt.NDArray[np.uint8],
    noise_rng: np.random.Generator,
    gains_bgr: tuple[float, float, float],
) -> npt.NDArray[np.uint8]:
    """Lens blur, exposure (one lookup table per channel) and sensor noise."""
    blurred = cv2.GaussianBlur(image, (3, 3), scene.blur_sigma)
    ramp = np.arange(256, dtype=np.float32)
    lut = np.empty((256, 1, 3), dtype=np.uint8)
    for channel, gain in enumerate(gains_bgr):
        lut[:, 0, channel] = np.clip(ramp * gain + 0.5, 0, 255).astype(np.uint8)
    out = np.asarray(cv2.LUT(blurred, lut), dtype=np.uint8)
    height, width = out.shape[:2]
    oy, ox, flip = noise_rng.integers(0, _NOISE_PAD, size=3)
    pos = scene.noise_pos[oy : oy + height, ox : ox + width]
    neg = scene.noise_neg[oy : oy + height, ox : ox + width]
    if flip % 2:
        pos, neg = neg, pos
    cv2.add(out, pos, dst=out)
    cv2.subtract(out, neg, dst=out)
    return out


def _check_choice(name: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")


class SceneRenderer:
    """A deterministic synthetic video: one scene, its objects moving over time.

    The same arguments give the same pixels and ground truth; frame ``i`` is the same whether it
    is reached from ``start=0`` or asked for with ``start=i`` (the motion is replayed, without
    drawing, up to ``start``).

    Args:
        kind: one of :data:`SCENE_KINDS`.
        seed: any non-negative integer; fixes layout, colours, motion, lighting and noise.
        resolution_wh: (width, height) in pixels.
        fps: frames per second of the motion (and of ``pts_s``).
        difficulty: one of :data:`DIFFICULTIES`.
        num_objects: exact number of objects (1..254), or None for a per-kind default.
        min_visible_px: objects with fewer visible pixels are left out of a frame's ground truth.
    """

    def __init__(
        self,
        kind: str,
        seed: int,
        resolution_wh: tuple[int, int] = (640, 360),
        fps: float = 15.0,
        difficulty: str = "easy",
        num_objects: int | None = None,
        min_visible_px: int = 12,
    ) -> None:
        _check_choice("kind", kind, SCENE_KINDS)
        _check_choice("difficulty", difficulty, DIFFICULTIES)
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if not (isinstance(fps, int | float) and math.isfinite(fps) and 0 < fps <= 1000):
            raise ValueError(f"fps must be a number in (0, 1000], got {fps!r}")
        if num_objects is not None and not 1 <= num_objects <= MAX_OBJECTS:
            raise ValueError(f"num_objects must be None or in 1..{MAX_OBJECTS}, got {num_objects}")
        if min_visible_px < 1:
            raise ValueError(f"min_visible_px must be >= 1, got {min_visible_px}")
        self.kind = kind
        self.seed = int(seed)
        self.resolution_wh = _check_resolution(resolution_wh)
        self.fps = float(fps)
        self.difficulty = difficulty
        self.num_objects = num_objects
        self.min_visible_px = min_visible_px
        layout_seq, world_seq, frame_seq = np.random.SeedSequence(
            [self.seed, SCENE_KINDS.index(kind)]
        ).spawn(3)
        self._world_seq = world_seq
        self._frame_entropy = int(frame_seq.generate_state(1)[0])
        self.scene = build_scene(kind, self.resolution_wh, np.random.default_rng(layout_seq))

    def world(self) -> World:
        """A fresh world at time 0 (the same one every call)."""
        return make_world(
            self.kind,
            self.difficulty,
            self.scene.region,
            np.random.default_rng(self._world_seq),
            self.num_objects,
            self.fps,
        )

    def render(self, world: World, index: int) -> SynthFrame:
        """Draw ``world`` as it is now, stamped as frame ``index``."""
        t_s = index / self.fps
        noise_rng = np.random.default_rng([self._frame_entropy, index])
        return render_frame(
            self.scene,
            world.agents,
            index,
            t_s,
            noise_rng,
            self.scene.exposure.channel_gains(t_s),
            self.min_visible_px,
        )

    def frames(self, num_frames: int, start: int = 0) -> Iterator[SynthFrame]:
        """Frames ``start .. start + num_frames - 1`` of the scene, in order.

        Args:
            num_frames: how many frames to yield, >= 0.
            start: index of the first frame, >= 0.

        Returns:
            An iterator of :class:`SynthFrame`; each frame owns its arrays.
        """
        if num_frames < 0:
            raise ValueError(f"num_frames must be >= 0, got {num_frames}")
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        return self._frames(int(num_frames), int(start))

    def _frames(self, num_frames: int, start: int) -> Iterator[SynthFrame]:
        world = self.world()
        for _ in range(start):
            world.step()
        for index in range(start, start + num_frames):
            yield self.render(world, index)
            world.step()


@functools.lru_cache(maxsize=3 * _TRAINING_VARIANTS * 4)
def _training_scene(kind: str, width: int, height: int, variant: int) -> Scene:
    # A fixed pool of scenes per resolution: building one costs far more than drawing a frame.
    seq = np.random.SeedSequence([0x5EED, SCENE_KINDS.index(kind), width, height, variant])
    return build_scene(kind, (width, height), np.random.default_rng(seq))


def warm_training_pool(resolution_wh: tuple[int, int]) -> None:
    """Build the background pool :func:`random_training_frame` draws from, now.

    The first calls at a new resolution otherwise pay for it (about 36 scenes, ~50 ms each at
    384x224). Call it once per worker process before timing or training.
    """
    width, height = _check_resolution(resolution_wh)
    for kind in SCENE_KINDS:
        for variant in range(_TRAINING_VARIANTS):
            _training_scene(kind, width, height, variant)


def random_training_frame(
    rng: np.random.Generator,
    resolution_wh: tuple[int, int],
    min_visible_px: int = 12,
) -> SynthFrame:
    """One frame of a random kind, difficulty, moment and lighting, for on-the-fly training.

    Backgrounds come from a cached pool (12 per kind and resolution, built on first use); the
    objects, their poses, the exposure and the noise are drawn from ``rng`` every call.

    Args:
        rng: the only source of randomness: the same generator state gives the same frame.
        resolution_wh: (width, height) in pixels.
        min_visible_px: objects with fewer visible pixels are left out of the ground truth.

    Returns:
        A :class:`SynthFrame` with ``index`` 0 and ``pts_s`` 0.0.
    """
    width, height = _check_resolution(resolution_wh)
    kind = SCENE_KINDS[int(rng.integers(0, len(SCENE_KINDS)))]
    difficulty = DIFFICULTIES[int(rng.integers(0, len(DIFFICULTIES)))]
    scene = _training_scene(kind, width, height, int(rng.integers(0, _TRAINING_VARIANTS)))
    world = make_world(kind, difficulty, scene.region, rng, None, fps=15.0)
    for _ in range(int(rng.integers(0, 3))):
        world.step()  # a step or two so speeds and poses are mid-motion, not as spawned
    gain = float(rng.uniform(0.65, 1.3))
    tint = rng.uniform(0.92, 1.08, size=3)
    gains = (gain * float(tint[0]), gain * float(tint[1]), gain * float(tint[2]))
    return render_frame(scene, world.agents, 0, 0.0, rng, gains, min_visible_px)

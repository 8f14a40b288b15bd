"""Static backgrounds: textured ground seen through the scene camera, built once per scene.

Textures live on the ground plane in metres and are sampled through the camera (``cv2.remap``
with wrap-around on small noise tiles), so grain and stripes shrink with distance like the
objects do. Octaves finer than a pixel fade out with distance instead of aliasing.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
import numpy.typing as npt

from streamseg.synth.camera import GroundCamera

logger = logging.getLogger(__name__)

FloatImage = npt.NDArray[np.float32]

_TILE = 64  # side of the noise tiles in cells


class GroundSampler:
    """Samples tileable value noise and distances on the ground plane for every pixel.

    Args:
        camera: the scene camera.
        rng: source of the noise tiles.
    """

    def __init__(self, camera: GroundCamera, rng: np.random.Generator) -> None:
        self.camera = camera
        self.rng = rng
        self.x_m, self.z_m = camera.ground_maps()
        self.ppm = (camera.focal / self.z_m).astype(np.float32)
        # Ground metres one pixel spans: across (1 / ppm) or, larger, along the depth.
        depth_m = self.z_m * self.z_m / (camera.focal * camera.cam_height_m)
        self.pixel_m = np.maximum(1.0 / self.ppm, depth_m).astype(np.float32)
        self.shape = (camera.height, camera.width)

    def noise(self, wavelength_m: float) -> FloatImage:
        """Smooth noise in [-1, 1] with features ``wavelength_m`` metres across, (H, W)."""
        tile = self.rng.random((_TILE, _TILE), dtype=np.float32) * 2.0 - 1.0
        # Wrap into the tile ourselves: remap's fixed-point maps saturate past ~1000 cells.
        map_x = np.mod(self.x_m / wavelength_m + 1000.0 * _TILE, _TILE).astype(np.float32)
        map_y = np.mod(self.z_m / wavelength_m, _TILE).astype(np.float32)
        out = cv2.remap(tile, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_WRAP)
        # Features smaller than ~1 pixel alias: fade them out where the ground is far.
        fade = np.clip(self.ppm * wavelength_m / 1.2 - 0.2, 0.0, 1.0)
        return np.asarray(out * fade, dtype=np.float32)

    def fbm(self, wavelengths: tuple[float, ...], amplitudes: tuple[float, ...]) -> FloatImage:
        """Sum of noise octaves, (H, W) float32."""
        total = np.zeros(self.shape, dtype=np.float32)
        for wavelength, amplitude in zip(wavelengths, amplitudes, strict=True):
            total += amplitude * self.noise(wavelength)
        return total

    def x_at_depth(self, z_m: float) -> FloatImage:
        """World x in metres of every column, on an upright surface at depth ``z_m``, (1, W)."""
        cols = np.arange(self.camera.width, dtype=np.float32) + 0.5
        return ((cols - self.camera.cx) * z_m / self.camera.focal)[None, :].astype(np.float32)

    def line_coverage(self, distance_m: FloatImage, width_m: float) -> FloatImage:
        """Anti-aliased coverage in [0, 1] of a painted line, given each pixel's distance in
        metres from its centre line."""
        pixel_m = self.pixel_m
        cover = (width_m / 2.0 + pixel_m / 2.0 - np.abs(distance_m)) / pixel_m
        return np.clip(cover, 0.0, 1.0).astype(np.float32)


def _jitter(
    rng: np.random.Generator, colour: tuple[float, float, float], amount: float
) -> FloatImage:
    factors = 1.0 + rng.uniform(-amount, amount, size=3)
    return np.asarray(np.array(colour, dtype=np.float32) * factors, dtype=np.float32)


def _mix(a: FloatImage, b: FloatImage, t: FloatImage) -> FloatImage:
    """Per-pixel blend of two BGR colours by weight ``t`` (H, W) in [0, 1] -> (H, W, 3)."""
    t3 = t[:, :, None]
    return np.asarray(a[None, None, :] * (1.0 - t3) + b[None, None, :] * t3, dtype=np.float32)


def _fence_rows(camera: GroundCamera, z_fence: float, height_m: float) -> tuple[float, float]:
    base = camera.row_at_depth(z_fence)
    top = base - height_m * camera.ppm(z_fence) * camera.up_scale
    return top, base


def _yard(sampler: GroundSampler, rng: np.random.Generator, z_back: float) -> FloatImage:
    camera = sampler.camera
    dirt = _jitter(rng, (72.0, 102.0, 128.0), 0.1)
    gravel = _jitter(rng, (118.0, 124.0, 128.0), 0.06)
    patchiness = np.clip(sampler.fbm((14.0, 5.0), (0.7, 0.3)) * 0.9 + 0.5, 0.0, 1.0)
    img = _mix(dirt, gravel, patchiness)
    grain = sampler.fbm((3.0, 0.8, 0.25, 0.09), (0.09, 0.07, 0.06, 0.07))
    shade = 1.0 + grain
    # Tyre ruts: two parallel dark bands along wandering paths across the yard.
    for _ in range(int(rng.integers(2, 5))):
        x0 = rng.uniform(-0.8, 0.8) * camera.half_width_m(z_back)
        amp, period, phase = rng.uniform(0.5, 3.0), rng.uniform(25.0, 60.0), rng.uniform(0, 6.3)
        lean = rng.uniform(-0.4, 0.4)
        centre = x0 + lean * sampler.z_m + amp * np.sin(sampler.z_m / period * 2 * np.pi + phase)
        off = np.abs(sampler.x_m - centre)
        for rut in (off - 0.95, off + 0.95):
            shade -= 0.18 * np.exp(-((rut / 0.28) ** 2)).astype(np.float32)
    img *= shade[:, :, None]
    # Puddles: low spots in a smooth field, dark and slightly blue.
    wet = sampler.noise(9.0) + 0.4 * sampler.noise(3.0)
    puddle = np.clip((wet - 0.8) * 8.0, 0.0, 1.0)[:, :, None]
    water = np.array((92.0, 84.0, 78.0), dtype=np.float32)
    img = np.asarray(img * (1.0 - puddle) + water * puddle, dtype=np.float32)
    # Site hoarding along the back: panels with seams.
    top, base = _fence_rows(camera, z_back, 2.4)
    panel = _jitter(
        rng,
        [(150.0, 110.0, 40.0), (60.0, 120.0, 50.0), (200, 200, 200)][int(rng.integers(0, 3))],
        0.1,
    )
    rows = np.arange(camera.height, dtype=np.float32)[:, None]
    in_fence = (rows >= top) & (rows < base)
    seams = (np.mod(sampler.x_at_depth(z_back), 2.4) < 0.08) | (rows - top < 1)
    colour = np.where(seams[:, :, None], panel * 0.6, panel)
    fence = np.broadcast_to(in_fence[:, :, None], img.shape)
    img = np.where(fence, colour * (1.0 + 0.04 * grain[:, :, None]), img)
    return np.asarray(img, dtype=np.float32)


def _field(sampler: GroundSampler, rng: np.random.Generator, z_back: float) -> FloatImage:
    camera = sampler.camera
    lush = _jitter(rng, (48.0, 128.0, 78.0), 0.15)
    dry = _jitter(rng, (70.0, 150.0, 140.0), 0.15)
    t = np.clip(sampler.fbm((20.0, 6.0), (0.6, 0.4)) * 0.8 + 0.35, 0.0, 1.0)
    img = _mix(lush, dry, t)
    grain = sampler.fbm((2.5, 0.7, 0.22, 0.07), (0.08, 0.08, 0.09, 0.1))
    clumps = np.clip((sampler.noise(1.2) - 0.5) * 3.0, 0.0, 1.0) * 0.25
    img *= (1.0 + grain - clumps)[:, :, None]
    mud = np.clip((sampler.noise(7.0) - 0.8) * 6.0, 0.0, 1.0)[:, :, None]
    img = img * (1.0 - mud) + np.array((60.0, 85.0, 105.0), dtype=np.float32) * mud
    # Post-and-rail fence with a hedge behind it.
    top, base = _fence_rows(camera, z_back, 1.3)
    rows = np.arange(camera.height, dtype=np.float32)[:, None]
    hedge_top = base - 3.5 * camera.ppm(z_back) * camera.up_scale
    hedge = (rows < base) & (rows >= hedge_top)
    hedge_col = _jitter(rng, (40.0, 80.0, 45.0), 0.15)
    hedge_tex = 1.0 + 0.35 * sampler.fbm((1.5, 0.5), (0.6, 0.4))
    img = np.where(hedge[:, :, None], hedge_col * hedge_tex[:, :, None], img)
    wood = _jitter(rng, (70.0, 100.0, 125.0), 0.1)
    rail_rows = ((rows >= top) & (rows < top + 2)) | (
        (rows >= (top + base) / 2) & (rows < (top + base) / 2 + 2)
    )
    posts = (np.mod(sampler.x_at_depth(z_back), 3.0) < 0.18) & (rows >= top) & (rows < base)
    wood_mask = (rail_rows & (rows < base)) | posts
    img = np.where(wood_mask[:, :, None], wood, img)
    return np.asarray(img, dtype=np.float32)


def _pitch(sampler: GroundSampler, rng: np.random.Generator, z_back: float) -> FloatImage:
    camera = sampler.camera
    grass = _jitter(rng, (55.0, 145.0, 60.0), 0.1)
    img = np.broadcast_to(grass, (*sampler.shape, 3)).astype(np.float32)
    stripe_w = rng.uniform(4.5, 6.5)
    stripe_phase = rng.uniform(0, stripe_w)
    stripes = np.where(np.mod(sampler.x_m + stripe_phase, 2 * stripe_w) < stripe_w, 0.07, -0.07)
    wear = sampler.fbm((10.0, 2.0, 0.4, 0.1), (0.05, 0.04, 0.05, 0.06))
    img *= (1.0 + stripes + wear)[:, :, None].astype(np.float32)
    # Painted lines: far touchline, halfway line and centre circle (9.15 m radius).
    touch_z = z_back - 1.0
    half_x = rng.uniform(-0.4, 0.4) * camera.half_width_m(camera.z_near * 1.5)
    centre_z = touch_z - rng.uniform(18.0, 30.0)
    width_m = 0.12
    cover = sampler.line_coverage(sampler.z_m - touch_z, width_m)
    below = sampler.z_m <= touch_z + 0.1
    cover = np.maximum(cover, sampler.line_coverage(sampler.x_m - half_x, width_m) * below)
    radius = np.hypot(sampler.x_m - half_x, sampler.z_m - centre_z)
    cover = np.maximum(cover, sampler.line_coverage(radius - 9.15, width_m))
    cover = np.maximum(cover, sampler.line_coverage(radius, 0.35))  # centre spot
    white = np.array((235.0, 240.0, 240.0), dtype=np.float32)
    img = img * (1.0 - cover[:, :, None]) + white * cover[:, :, None]
    # Advertising boards behind the touchline.
    top, base = _fence_rows(camera, z_back + 2.0, 0.9)
    rows = np.arange(camera.height, dtype=np.float32)[:, None]
    board = (rows >= top) & (rows < base)
    board_x = sampler.x_at_depth(z_back + 2.0)
    board_idx = np.floor(board_x / 6.0).astype(np.int64) % 5
    palette = np.stack([_jitter(rng, tuple(rng.uniform(30, 230, 3)), 0.0) for _ in range(5)])
    boards = palette[board_idx]
    letters = (np.mod(board_x * 2.0, 1.0) < 0.45) & (
        np.abs(rows - (top + base) / 2) < (base - top) * 0.18
    )
    boards = np.where(letters[:, :, None], 255.0 - boards, boards)
    img = np.where(board[:, :, None], boards, img)
    return np.asarray(img, dtype=np.float32)


def build_background(
    kind: str, camera: GroundCamera, rng: np.random.Generator, z_back: float
) -> npt.NDArray[np.uint8]:
    """Render the static background of a scene.

    Args:
        kind: one of ``yard``, ``field``, ``pitch``.
        camera: the scene camera.
        rng: seeded source of every random choice (colours, textures, layout).
        z_back: ground depth in metres of the back boundary (fence, hoarding, boards).

    Returns:
        (H, W, 3) uint8 BGR.
    """
    sampler = GroundSampler(camera, rng)
    builders = {"yard": _yard, "field": _field, "pitch": _pitch}
    if kind not in builders:
        raise ValueError(f"kind must be one of {sorted(builders)}, got {kind!r}")
    img = builders[kind](sampler, rng, z_back)
    # Sky-less frame: a faint haze towards the back keeps depth readable.
    haze = np.clip((sampler.z_m - camera.z_near) / (z_back * 3.0), 0.0, 0.25)[:, :, None]
    img = img * (1.0 - haze) + np.float32(165.0) * haze
    logger.debug("built %s background %dx%d", kind, camera.width, camera.height)
    return np.clip(img, 0.0, 255.0).astype(np.uint8)


def noise_bank(
    resolution_wh: tuple[int, int], sigma: float, seed: int, pad: int = 32
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """A padded block of gaussian sensor noise split into its positive and negative parts.

    A frame adds ``pos`` and subtracts ``neg`` over a window at a random offset: two saturating
    uint8 ops instead of drawing ~0.7 M normal samples per frame.

    Returns:
        ``(pos, neg)``, each (H + pad, W + pad, 3) uint8.
    """
    width, height = resolution_wh
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, sigma, size=(height + pad, width + pad, 3)).astype(np.float32)
    pos = np.clip(np.rint(noise), 0, 255).astype(np.uint8)
    neg = np.clip(np.rint(-noise), 0, 255).astype(np.uint8)
    return pos, neg

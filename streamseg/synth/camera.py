"""A static camera over a ground plane: world metres to frame pixels.

World coordinates: ``x`` metres to the right, ``z`` metres away from the camera along the ground,
``u`` metres up. The camera looks down at the ground obliquely; image rows map to ground depth
as ``y = horizon_y + k / z`` (a pinhole over a plane), so far objects sit higher in the frame and
are drawn smaller. Upright extents scale with ``cos`` of the depression angle and ground depth
with its ``sin`` (the foreshortening ``tilt``), which makes a sphere project to a circle.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroundCamera:
    """Projection of a ground plane seen by a static, oblique camera.

    Attributes:
        width: frame width in pixels.
        height: frame height in pixels.
        near_width_m: width of ground, in metres, that the bottom row of the frame spans.
        horizon_frac: row of the horizon as a fraction of the height (negative: above the frame;
            ``-0.35`` makes objects at the bottom ~2.9x larger than objects near the top).
        tilt: sine of the depression angle at the bottom row, in (0, 1): how much ground depth
            is foreshortened against ground width.
    """

    width: int
    height: int
    near_width_m: float
    horizon_frac: float = -0.35
    tilt: float = 0.55

    def __post_init__(self) -> None:
        if self.width < 8 or self.height < 8:
            raise ValueError(
                f"resolution must be at least 8x8 pixels, got {self.width}x{self.height}"
            )
        if not 0.0 < self.tilt < 1.0:
            raise ValueError(f"tilt must be in (0, 1), got {self.tilt}")
        if self.horizon_frac >= 0.0:
            raise ValueError(
                f"horizon_frac must be negative (above the frame), got {self.horizon_frac}"
            )
        if self.near_width_m <= 0.0:
            raise ValueError(f"near_width_m must be > 0, got {self.near_width_m}")

    @cached_property
    def ppm_near(self) -> float:
        """Pixels per metre at the bottom row."""
        return self.width / self.near_width_m

    @cached_property
    def horizon_y(self) -> float:
        """Row of the horizon in pixels (negative: above the frame)."""
        return self.horizon_frac * self.height

    @cached_property
    def cam_height_m(self) -> float:
        """Height of the camera above the ground in metres."""
        return (self.height - self.horizon_y) / self.ppm_near

    @cached_property
    def z_near(self) -> float:
        """Ground depth in metres seen at the bottom row."""
        return self.cam_height_m / self.tilt

    @cached_property
    def focal(self) -> float:
        """Focal length in pixels."""
        return self.ppm_near * self.z_near

    @cached_property
    def up_scale(self) -> float:
        """Factor on upright extents: cosine of the depression angle."""
        return math.sqrt(1.0 - self.tilt * self.tilt)

    @cached_property
    def cx(self) -> float:
        """Column of the optical axis in pixels."""
        return self.width / 2.0

    def depth_at_row(self, y: float) -> float:
        """Ground depth in metres seen at row ``y`` (pixels, below the horizon)."""
        return self.focal * self.cam_height_m / (y - self.horizon_y)

    def row_at_depth(self, z: float) -> float:
        """Row in pixels where ground at depth ``z`` metres appears."""
        return self.horizon_y + self.focal * self.cam_height_m / z

    def ppm(self, z: float) -> float:
        """Pixels per metre (ground width, and upright extents before ``up_scale``) at depth z."""
        return self.focal / z

    def half_width_m(self, z: float) -> float:
        """Half the width in metres of ground visible at depth ``z``."""
        return self.cx * z / self.focal

    def project(self, x: float, z: float, u: float = 0.0) -> tuple[float, float]:
        """Frame pixel (column, row) of the world point (x, z, u) in metres."""
        inv = self.focal / z
        return (
            self.cx + x * inv,
            self.horizon_y + self.cam_height_m * inv - u * inv * self.up_scale,
        )

    def ground_maps(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """World ground coordinates of every pixel centre.

        Returns:
            ``(x_m, z_m)``, each (H, W) float32: the ground point each pixel sees.
        """
        rows = np.arange(self.height, dtype=np.float64) + 0.5
        cols = np.arange(self.width, dtype=np.float64) + 0.5
        z = self.focal * self.cam_height_m / (rows - self.horizon_y)
        x = (cols[None, :] - self.cx) * z[:, None] / self.focal
        z_map = np.broadcast_to(z[:, None], (self.height, self.width))
        return x.astype(np.float32), np.ascontiguousarray(z_map, dtype=np.float32)

"""A constant-velocity Kalman filter on boxes, vectorized over all the tracks of a tracker.

The state of a track is its box ``(cx, cy, w, h)`` (frame pixels) and the velocity of each of
the four numbers (pixels per second). Under the constant-velocity model with white-noise
acceleration and a measurement of the box alone, the four coordinates are independent, so the
8x8 covariance splits into four 2x2 blocks ``[[p_pp, p_pv], [p_pv, p_vv]]``: predict and update
are a handful of element-wise numpy operations on (T, 4) arrays, with no matrix inverse.

Time steps are in seconds and the process noise grows with them (the continuous white-noise
acceleration model), so the filter behaves the same at any frame rate. Noise levels scale with
the box size ``sqrt(w * h)``: a 200-pixel truck may jump further than a 20-pixel sheep.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

MIN_SIZE_PX = 1.0
"""Width and height never drop below this, in pixels (a box that shrinks to nothing is lost)."""


@dataclass(frozen=True)
class KalmanParams:
    """Noise levels of :class:`BoxKalman`, as fractions of the box size ``sqrt(w * h)``.

    Attributes:
        measurement_std: standard deviation of a detected box coordinate.
        acceleration_std: standard deviation of the acceleration, per second².
        initial_velocity_std: standard deviation of a new track's velocity, per second.
    """

    measurement_std: float = 0.05
    acceleration_std: float = 2.0
    initial_velocity_std: float = 2.0


def xyxy_to_cxcywh(xyxy: npt.ArrayLike) -> FloatArray:
    """Boxes as centre and size.

    Args:
        xyxy: (N, 4) boxes ``x1, y1, x2, y2``, frame pixels.

    Returns:
        (N, 4) float64 ``cx, cy, w, h``.
    """
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    size = boxes[:, 2:] - boxes[:, :2]
    return np.concatenate((boxes[:, :2] + size / 2, size), axis=1)


def cxcywh_to_xyxy(cxcywh: FloatArray) -> FloatArray:
    """Inverse of :func:`xyxy_to_cxcywh`: (N, 4) ``cx, cy, w, h`` -> (N, 4) ``x1, y1, x2, y2``."""
    half = cxcywh[:, 2:] / 2
    return np.concatenate((cxcywh[:, :2] - half, cxcywh[:, :2] + half), axis=1)


class BoxKalman:
    """The motion state of T tracks, one row each.

    Rows are added with :meth:`append`, dropped with :meth:`keep`, moved forward in time with
    :meth:`predict` and corrected with :meth:`update`.

    Args:
        params: noise levels.

    Attributes:
        pos: (T, 4) float64 ``cx, cy, w, h``, frame pixels.
        vel: (T, 4) float64 their velocities, pixels per second.
        p_pp, p_pv, p_vv: (T, 4) float64 covariance blocks (position, cross, velocity).
    """

    def __init__(self, params: KalmanParams | None = None) -> None:
        self.params = params if params is not None else KalmanParams()
        empty = np.zeros((0, 4), dtype=np.float64)
        self.pos = empty.copy()
        self.vel = empty.copy()
        self.p_pp = empty.copy()
        self.p_pv = empty.copy()
        self.p_vv = empty.copy()

    def __len__(self) -> int:
        """Number of tracks."""
        return len(self.pos)

    def _scale(self, rows: slice | npt.NDArray[np.intp] = slice(None)) -> FloatArray:
        """(T, 1) box size ``sqrt(w * h)`` of the given rows, pixels."""
        wh = np.maximum(self.pos[rows, 2:], MIN_SIZE_PX)
        return np.sqrt(wh[:, :1] * wh[:, 1:])

    def append(self, xyxy: npt.ArrayLike) -> None:
        """Start tracks at the given boxes, at rest, with the initial uncertainty.

        Args:
            xyxy: (N, 4) boxes, frame pixels.
        """
        pos = xyxy_to_cxcywh(xyxy)
        pos[:, 2:] = np.maximum(pos[:, 2:], MIN_SIZE_PX)
        wh = pos[:, 2:]
        scale = np.sqrt(wh[:, :1] * wh[:, 1:])
        n = len(pos)
        p = self.params
        self.pos = np.concatenate((self.pos, pos))
        self.vel = np.concatenate((self.vel, np.zeros((n, 4))))
        self.p_pp = np.concatenate(
            (self.p_pp, np.repeat((2 * p.measurement_std * scale) ** 2, 4, 1))
        )
        self.p_pv = np.concatenate((self.p_pv, np.zeros((n, 4))))
        self.p_vv = np.concatenate(
            (self.p_vv, np.repeat((p.initial_velocity_std * scale) ** 2, 4, 1))
        )

    def keep(self, rows: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> None:
        """Keep only the given rows (a boolean mask or indices), in that order."""
        self.pos = self.pos[rows]
        self.vel = self.vel[rows]
        self.p_pp = self.p_pp[rows]
        self.p_pv = self.p_pv[rows]
        self.p_vv = self.p_vv[rows]

    def predict(
        self,
        dt: float,
        damp_rows: npt.NDArray[np.bool_] | None = None,
        velocity_decay_s: float = 1.0,
    ) -> None:
        """Move every track ``dt`` seconds forward.

        Args:
            dt: time step in seconds, >= 0 (0 changes nothing).
            damp_rows: (T,) bool, tracks without a recent measurement (lost): their position
                velocity decays as ``exp(-t / velocity_decay_s)`` over the step (the motion they
                travel is the integral of that decay) and their size stops changing, so an
                occluded object's box neither runs away nor collapses.
            velocity_decay_s: time constant of that decay, seconds, > 0.
        """
        if dt <= 0 or len(self) == 0:
            return
        q = (self.params.acceleration_std * self._scale()) ** 2  # (T, 1), broadcast over 4
        damp = damp_rows is not None and bool(damp_rows.any())
        if damp:
            self.vel[damp_rows, 2:] = 0.0
            decay = float(np.exp(-dt / velocity_decay_s))
            travel = np.full((len(self), 1), dt)
            travel[damp_rows] = velocity_decay_s * (1.0 - decay)  # integral of the decay
            self.pos = self.pos + self.vel * travel
            self.vel[damp_rows, :2] *= decay
        else:
            self.pos = self.pos + self.vel * dt
        self.pos[:, 2:] = np.maximum(self.pos[:, 2:], MIN_SIZE_PX)
        self.p_pp = self.p_pp + 2 * dt * self.p_pv + dt * dt * self.p_vv + q * (dt**3 / 3)
        self.p_pv = self.p_pv + dt * self.p_vv + q * (dt**2 / 2)
        self.p_vv = self.p_vv + q * dt

    def update(self, rows: npt.NDArray[np.intp], xyxy: npt.ArrayLike) -> None:
        """Correct the given tracks with their measured boxes.

        Args:
            rows: (K,) indices of the tracks measured.
            xyxy: (K, 4) the measured boxes, frame pixels, in the order of ``rows``.
        """
        if len(rows) == 0:
            return
        meas = xyxy_to_cxcywh(xyxy)
        meas_var = (self.params.measurement_std * self._scale(rows)) ** 2
        p_pp, p_pv, p_vv = self.p_pp[rows], self.p_pv[rows], self.p_vv[rows]
        innovation = meas - self.pos[rows]
        s = p_pp + meas_var
        k_p = p_pp / s
        k_v = p_pv / s
        self.pos[rows] = self.pos[rows] + k_p * innovation
        self.pos[rows, 2:] = np.maximum(self.pos[rows, 2:], MIN_SIZE_PX)
        self.vel[rows] = self.vel[rows] + k_v * innovation
        self.p_pp[rows] = (1 - k_p) * p_pp
        self.p_pv[rows] = (1 - k_p) * p_pv
        self.p_vv[rows] = p_vv - k_v * p_pv

    def xyxy(self) -> FloatArray:
        """(T, 4) float64 the tracks' current boxes ``x1, y1, x2, y2``, frame pixels."""
        return cxcywh_to_xyxy(self.pos)

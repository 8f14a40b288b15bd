"""The box Kalman filter: convergence, time-step invariance, damping of lost tracks."""

from __future__ import annotations

import numpy as np
import pytest

from streamseg.track.kalman import BoxKalman, cxcywh_to_xyxy, xyxy_to_cxcywh


def _box(cx: float, cy: float, w: float = 40.0, h: float = 60.0) -> np.ndarray:
    return cxcywh_to_xyxy(np.array([[cx, cy, w, h]]))


@pytest.mark.parametrize("fps", [10.0, 30.0])
def test_constant_velocity_converges(fps: float) -> None:
    rng = np.random.default_rng(0)
    kf = BoxKalman()
    velocity = np.array([45.0, -20.0])
    kf.append(_box(100, 200))
    dt = 1 / fps
    for i in range(1, int(3 * fps)):
        kf.predict(dt)
        t = i * dt
        noisy = _box(100 + velocity[0] * t, 200 + velocity[1] * t) + rng.normal(0, 1.0, (1, 4))
        kf.update(np.array([0]), noisy)
    np.testing.assert_allclose(kf.vel[0, :2], velocity, atol=5.0)
    assert abs(kf.vel[0, 2]) < 10 and abs(kf.vel[0, 3]) < 10  # the size does not change
    # Coasting 0.5 s without measurements follows the motion.
    kf.predict(0.5)
    truth = np.array([100 + velocity[0] * (t + 0.5), 200 + velocity[1] * (t + 0.5)])
    np.testing.assert_allclose(kf.pos[0, :2], truth, atol=4.0)


def test_a_new_track_is_at_rest_where_it_was_seen() -> None:
    kf = BoxKalman()
    kf.append(np.array([[10.0, 20.0, 50.0, 100.0]]))
    np.testing.assert_allclose(kf.xyxy(), [[10.0, 20.0, 50.0, 100.0]])
    np.testing.assert_allclose(kf.vel, 0.0)
    kf.predict(1.0)
    np.testing.assert_allclose(kf.xyxy(), [[10.0, 20.0, 50.0, 100.0]])
    assert (kf.p_pp > 0).all() and (kf.p_vv > 0).all()


def test_two_half_steps_equal_one_step() -> None:
    """The noise is the continuous white-acceleration model: the frame rate does not matter."""
    one, two = BoxKalman(), BoxKalman()
    for kf in (one, two):
        kf.append(_box(50, 50))
        kf.update(np.array([0]), _box(53, 49))
    one.predict(0.2)
    two.predict(0.1)
    two.predict(0.1)
    for attr in ("pos", "vel", "p_pp", "p_pv", "p_vv"):
        np.testing.assert_allclose(getattr(one, attr), getattr(two, attr), rtol=1e-9)


def test_zero_step_changes_nothing() -> None:
    kf = BoxKalman()
    kf.append(_box(50, 50))
    before = kf.p_pp.copy()
    kf.predict(0.0)
    np.testing.assert_array_equal(kf.p_pp, before)


def test_lost_rows_coast_with_decaying_speed_and_fixed_size() -> None:
    kf = BoxKalman()
    kf.append(np.concatenate((_box(0, 0), _box(0, 0))))
    kf.vel[:] = [100.0, 0.0, 30.0, 30.0]
    damp = np.array([False, True])
    kf.predict(1.0, damp, velocity_decay_s=1.0)
    assert kf.pos[0, 0] == pytest.approx(100.0)
    assert kf.pos[1, 0] == pytest.approx(100.0 * (1 - np.exp(-1.0)))
    assert kf.vel[1, 0] == pytest.approx(100.0 * np.exp(-1.0))
    assert kf.pos[0, 2] == pytest.approx(70.0) and kf.pos[1, 2] == pytest.approx(40.0)


def test_keep_and_conversions() -> None:
    kf = BoxKalman()
    kf.append(np.array([[0, 0, 10, 10], [5, 5, 25, 45], [1, 1, 2, 2]], dtype=float))
    kf.keep(np.array([False, True, True]))
    assert len(kf) == 2
    np.testing.assert_allclose(xyxy_to_cxcywh(kf.xyxy()), [[15, 25, 20, 40], [1.5, 1.5, 1, 1]])

"""TrackClock: increasing steps from stream timestamps, whatever the stream sends."""

from __future__ import annotations

import logging

import pytest

from streamseg.track.clock import NON_FINITE, NOT_INCREASING, TrackClock


def _steps(stamps: list[object]) -> tuple[list[float], TrackClock]:
    clock = TrackClock(fallback_dt_s=0.05, name="cam")
    return [round(clock.advance(t), 9) for t in stamps], clock  # type: ignore[arg-type]


def test_valid_timestamps_give_their_intervals() -> None:
    steps, clock = _steps([10.0, 10.1, 10.25, 11.0])
    assert steps == [0.0, 0.1, 0.15, 0.75]
    assert clock.now_s == pytest.approx(1.0) and not clock.problems


def test_bad_timestamps_step_by_the_last_good_interval(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="streamseg.track.clock"):
        steps, clock = _steps([0.0, 0.1, 0.1, float("nan"), 0.05, 0.15, 0.25])
    # repeated -> 0.1, NaN -> 0.1, backwards -> 0.1, then intervals from the new base
    assert steps == [0.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    assert clock.problems == {NOT_INCREASING: 2, NON_FINITE: 1}
    text = [r.getMessage() for r in caplog.records]
    assert len(text) == 2 and text[0].startswith("cam: not increasing timestamp 0.1")


def test_before_any_valid_interval_the_fallback_is_used() -> None:
    steps, clock = _steps([float("inf"), None, 3.0, 3.0])
    assert steps == [0.0, 0.05, 0.05, 0.05]
    assert clock.problems == {NON_FINITE: 2, NOT_INCREASING: 1}


def test_warnings_are_throttled(caplog: pytest.LogCaptureFixture) -> None:
    clock = TrackClock(0.04)
    with caplog.at_level(logging.WARNING, logger="streamseg.track.clock"):
        for _ in range(1001):
            clock.advance(5.0)
    assert clock.problems[NOT_INCREASING] == 1000
    counts = [r.args[-1] for r in caplog.records]  # type: ignore[index]
    assert counts == [1, 10, 100, 1000]


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_fallback_must_be_positive(bad: float) -> None:
    with pytest.raises(ValueError, match="fallback_dt_s"):
        TrackClock(bad)

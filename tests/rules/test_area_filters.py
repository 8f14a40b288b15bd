"""``min_area_px`` / ``max_area_px``: a rule ignores objects showing too few or too many mask
pixels on a frame (a person far off, a sliver of one, a truck where a person is watched for)."""

from __future__ import annotations

from typing import Any

import pytest

from streamseg.config import ConfigError, load_pipeline_text

Kit = Any  # the `kit` fixture (tests/rules/conftest.py)

PEN = "  - {id: pen, type: polygon, points: [[40, 0], [119, 0], [119, 79], [40, 79]]}\n"


def test_inside_ignores_objects_under_min_area(kit: Kit) -> None:
    engine, _ = kit.engine(
        "zones:\n" + PEN + "rules:\n"
        "  - {id: r, type: inside, zone: pen, min_duration_s: 0, min_area_px: 100}\n"
    )
    # Track 1: 5 x 5 = 25 pixels, far off; track 2: 10 x 20 = 200 pixels.
    events = kit.run(engine, [[(1, 60, 10, 64, 14), (2, 80, 30, 89, 49)]] * 3)
    assert {(e.type, e.track_ids) for e in events} == {("start", (2,))}


def test_an_object_that_shrinks_under_min_area_is_unseen_for_the_rule(kit: Kit) -> None:
    engine, _ = kit.engine(
        "zones:\n" + PEN + "rules:\n"
        "  - {id: r, type: inside, zone: pen, min_duration_s: 0, min_area_px: 100,\n"
        "     lost_timeout_s: 0.5}\n"
    )
    # 200 pixels for 3 frames, then a 4 x 4 sliver (behind something) for 10 frames at 10 fps.
    timeline = [[(1, 80, 30, 89, 49)]] * 3 + [[(1, 80, 30, 83, 33)]] * 10
    events = kit.run(engine, timeline)
    assert [(e.type, e.details.get("reason")) for e in events] == [("start", None), ("end", "lost")]


def test_count_leaves_out_objects_over_max_area(kit: Kit) -> None:
    engine, _ = kit.engine(
        "zones:\n" + PEN + "rules:\n"
        "  - {id: r, type: count, zone: pen, above: 1, min_duration_s: 0, max_area_px: 300}\n"
    )
    people = [(1, 50, 10, 59, 29), (2, 70, 10, 79, 29)]  # 200 pixels each
    big = (3, 50, 40, 99, 79)  # 2000 pixels
    assert kit.run(engine, [[people[0], big]] * 3) == []  # the big one does not count
    events = kit.run(engine, [[*people, big]] * 3, start=3)
    assert [(e.type, e.details["count"]) for e in events] == [("start", 2)]


def test_near_filters_the_watched_object_not_the_one_it_is_near(kit: Kit) -> None:
    engine, _ = kit.engine(
        "rules:\n"
        "  - {id: r, type: near, classes: [person], other_classes: [truck], max_distance: 10,\n"
        "     min_duration_s: 0, min_area_px: 100}\n"
    )
    small_truck = (9, 62, 30, 65, 33, "truck")  # 16 pixels: still a truck to be near
    far_person = (1, 50, 30, 53, 33)  # 16 pixels: ignored
    person = (2, 50, 30, 59, 49)  # 200 pixels
    assert kit.run(engine, [[far_person, small_truck]] * 3) == []
    events = kit.run(engine, [[person, small_truck]] * 3, start=3)
    assert [(e.type, e.track_ids) for e in events] == [("start", (2, 9))]


def test_max_area_under_min_area_is_an_error() -> None:
    with pytest.raises(ConfigError, match="max_area_px is below min_area_px"):
        load_pipeline_text(
            "sources: [{id: cam, type: file, path: a.mp4}]\nzones:\n" + PEN + "rules:\n"
            "  - {id: r, type: inside, zone: pen, min_area_px: 500, max_area_px: 100}\n",
            env={},
        )

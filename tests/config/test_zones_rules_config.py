"""The zones and rules sections, the calibration key, and their cross-checks, through the loader."""

from __future__ import annotations

import textwrap

import pytest
from pydantic import ValidationError

from streamseg.config import ConfigError, ConfigIssue, load_pipeline_text
from streamseg.config.rules import CountRuleConfig, CrossRuleConfig, InsideRuleConfig
from streamseg.config.zones import (
    CalibrationConfig,
    LineZoneConfig,
    PolygonZoneConfig,
    polygon_problem,
    segments_intersect,
)

SOURCES = """\
sources:
  - {id: gate, type: file, path: a.mp4}
  - {id: crane, type: file, path: b.mp4}
"""
SQUARE = "[[0, 0], [10, 0], [10, 10], [0, 10]]"


def _issues(text: str) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        load_pipeline_text(SOURCES + textwrap.dedent(text), filename="p.yaml", env={})
    return info.value.issues


def test_a_full_example_loads() -> None:
    config = load_pipeline_text(
        SOURCES.replace(
            "path: b.mp4}",
            "path: b.mp4, calibration: {image_points: [[0, 100], [100, 100], [90, 0], "
            "[10, 0]], ground_points: [[0, 0], [5, 0], [5, 20], [0, 20]]}}",
        )
        + textwrap.dedent(
            f"""\
            zones:
              - {{id: swing, type: polygon, stream: gate, points: {SQUARE}}}
              - {{id: paddock, type: polygon, units: normalized,
                  points: [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]}}
              - {{id: halfway, type: line, streams: [gate, crane], points: [[5, 0], [5, 9]]}}
            rules:
              - {{id: worker-in-swing, type: inside, zone: swing, classes: [person],
                  min_overlap: 0.1, severity: critical}}
              - {{id: worker-feet, type: inside, zone: swing, basis: bottom_center}}
              - {{id: gone, type: exit, zone: paddock, classes: [cow, sheep]}}
              - {{id: loiter, type: dwell, zone: swing, dwell_s: 30}}
              - {{id: headcount, type: count, zone: paddock, below: 12, min_duration_s: 10}}
              - {{id: goal, type: cross, zone: halfway, direction: left_to_right, margin_px: 4}}
              - {{id: close, type: near, classes: [person], other_classes: [truck],
                  max_distance: 2, units: m, stream: crane}}
            """
        )
    )
    assert [zone.id for zone in config.zones] == ["swing", "paddock", "halfway"]
    swing, paddock, halfway = config.zones
    assert isinstance(swing, PolygonZoneConfig) and swing.stream_ids == ("gate",)
    assert isinstance(halfway, LineZoneConfig) and halfway.applies_to("crane")
    assert paddock.stream_ids is None and paddock.applies_to("anything")
    inside, feet, _, _, count, cross, _ = config.rules
    assert isinstance(inside, InsideRuleConfig) and inside.min_overlap == 0.1
    assert isinstance(feet, InsideRuleConfig) and feet.min_overlap == 0.5
    assert isinstance(count, CountRuleConfig) and (count.above, count.below) == (None, 12)
    assert isinstance(cross, CrossRuleConfig) and cross.anchor == "bottom_center"
    assert config.source("crane").calibration is not None


def test_rule_defaults() -> None:
    rule = InsideRuleConfig(id="r", type="inside", zone="z")
    assert (rule.classes, rule.min_duration_s, rule.cooldown_s, rule.severity) == (
        [],
        0.5,
        0.0,
        "warning",
    )
    assert (rule.basis, rule.min_overlap, rule.update_interval_s, rule.lost_timeout_s) == (
        "mask",
        0.5,
        10.0,
        2.0,
    )


# (id, zones/rules yaml, line, key path, message fragment)
BAD: list[tuple[str, str, int, str, str]] = [
    (
        "self-intersecting polygon",
        "zones:\n  - id: bow\n    type: polygon\n"
        "    points: [[0, 0], [10, 10], [10, 0], [0, 10]]\n",
        7,
        "zones[0].points",
        "zone 'bow': edge points[0]-points[1] crosses edge points[2]-points[3] (self-intersecting)",
    ),
    (
        "fewer than 3 points",
        "zones:\n  - {id: two, type: polygon, points: [[0, 0], [10, 10]]}\n",
        5,
        "zones[0].points",
        "zone 'two': a polygon needs at least 3 points, got 2",
    ),
    (
        "zero area",
        "zones:\n  - {id: flat, type: polygon, points: [[0, 0], [5, 5], [10, 10]]}\n",
        5,
        "zones[0].points",
        "zone 'flat': the polygon has zero area",
    ),
    (
        "repeated corner",
        "zones:\n  - {id: rep, type: polygon, points: [[0, 0], [0, 0], [5, 5], [0, 9]]}\n",
        5,
        "zones[0].points",
        "zone 'rep': points[0] and points[1] are the same point",
    ),
    (
        "line with identical points",
        "zones:\n  - {id: dot, type: line, points: [[3, 3], [3, 3]]}\n",
        5,
        "zones[0].points",
        "zone 'dot': the line's two points are the same point",
    ),
    (
        "line with three points",
        "zones:\n  - {id: bent, type: line, points: [[0, 0], [3, 3], [6, 0]]}\n",
        5,
        "zones[0].points",
        "zone 'bent': a line needs exactly 2 points, got 3",
    ),
    (
        "normalized out of range",
        "zones:\n  - {id: n, type: polygon, units: normalized,\n"
        "    points: [[0, 0], [1.5, 0], [1, 1]]}\n",
        6,
        "zones[0].points",
        "zone 'n': points[1] = [1.5, 0] is outside [0, 1]",
    ),
    (
        "a coordinate beyond any frame (it would wrap around in the polygon fill)",
        "zones:\n  - {id: far, type: polygon,\n    points: [[0, 0], [200000000.0, 0], [5, 5]]}\n",
        6,
        "zones[0].points[1][0]",
        "expected a number <= 1000000",
    ),
    (
        "unknown zone type",
        "zones:\n  - {id: c, type: circle, points: [[0, 0]]}\n",
        5,
        "zones[0].type",
        "got 'circle', expected one of 'polygon', 'line'",
    ),
    (
        "stream and streams",
        f"zones:\n  - {{id: z, type: polygon, stream: gate, streams: [gate], points: {SQUARE}}}\n",
        5,
        "zones[0].streams",
        "zone 'z': expected either 'stream' or 'streams', not both",
    ),
    (
        "zone for an unknown stream",
        f"zones:\n  - {{id: z, type: polygon, stream: dock, points: {SQUARE}}}\n",
        5,
        "zones[0].stream",
        "zone 'z' names stream 'dock', which is not a source; expected one of: gate, crane",
    ),
    (
        "duplicate zone id",
        f"zones:\n  - {{id: z, type: polygon, points: {SQUARE}}}\n"
        "  - {id: z, type: line, points: [[0, 0], [1, 1]]}\n",
        6,
        "zones[1].id",
        "duplicate zone id 'z', already used by zones[0]",
    ),
    (
        "rule names an unknown zone",
        f"zones:\n  - {{id: z, type: polygon, points: {SQUARE}}}\n"
        "rules:\n  - {id: r, type: inside, zone: nowhere}\n",
        7,
        "rules[0].zone",
        "rule 'r' names zone 'nowhere', which is not defined; zones: z",
    ),
    (
        "cross on a polygon",
        f"zones:\n  - {{id: z, type: polygon, points: {SQUARE}}}\n"
        "rules:\n  - {id: r, type: cross, zone: z}\n",
        7,
        "rules[0].zone",
        "rule 'r' (cross) needs a line zone, but zone 'z' is a polygon",
    ),
    (
        "inside on a line",
        "zones:\n  - {id: l, type: line, points: [[0, 0], [1, 1]]}\n"
        "rules:\n  - {id: r, type: inside, zone: l}\n",
        7,
        "rules[0].zone",
        "rule 'r' (inside) needs a polygon zone, but zone 'l' is a line",
    ),
    (
        "duplicate rule id",
        f"zones:\n  - {{id: z, type: polygon, points: {SQUARE}}}\n"
        "rules:\n  - {id: r, type: inside, zone: z}\n  - {id: r, type: exit, zone: z}\n",
        8,
        "rules[1].id",
        "duplicate rule id 'r', already used by rules[0]",
    ),
    (
        "count without a threshold",
        f"zones:\n  - {{id: z, type: polygon, points: {SQUARE}}}\n"
        "rules:\n  - {id: r, type: count, zone: z}\n",
        7,
        "rules[0].below",
        "rule 'r': expected exactly one of 'above' or 'below'",
    ),
    (
        "count with both thresholds",
        f"zones:\n  - {{id: z, type: polygon, points: {SQUARE}}}\n"
        "rules:\n  - {id: r, type: count, zone: z, above: 3, below: 1}\n",
        7,
        "rules[0].below",
        "expected exactly one of 'above' or 'below', not both",
    ),
    (
        "min_overlap with an anchor basis",
        f"zones:\n  - {{id: z, type: polygon, points: {SQUARE}}}\n"
        "rules:\n  - {id: r, type: inside, zone: z, basis: center, min_overlap: 0.3}\n",
        7,
        "rules[0].min_overlap",
        "rule 'r': min_overlap applies to basis: mask only, not basis: center",
    ),
    (
        "dwell without dwell_s",
        f"zones:\n  - {{id: z, type: polygon, points: {SQUARE}}}\n"
        "rules:\n  - {id: r, type: dwell, zone: z}\n",
        7,
        "rules[0].dwell_s",
        "missing required key 'dwell_s'",
    ),
    (
        "unknown rule kind",
        "rules:\n  - {id: r, type: loiter, zone: z}\n",
        5,
        "rules[0].type",
        "got 'loiter', expected one of 'inside', 'enter', 'exit', 'dwell', 'count', 'cross', "
        "'near'",
    ),
    (
        "metres without a calibration",
        "rules:\n  - {id: r, type: near, other_classes: [truck], max_distance: 2, units: m}\n",
        5,
        "rules[0].units",
        "rule 'r' measures in metres but sources 'gate', 'crane' have no calibration",
    ),
    (
        "near on an unknown stream",
        "rules:\n  - {id: r, type: near, other_classes: [truck], max_distance: 2, stream: x}\n",
        5,
        "rules[0].stream",
        "rule 'r' names stream 'x', which is not a source",
    ),
    (
        "rules with the tracker off",
        f"tracker: {{enabled: false}}\nzones:\n  - {{id: z, type: polygon, points: {SQUARE}}}\n"
        "rules:\n  - {id: r, type: inside, zone: z}\n",
        4,
        "tracker.enabled",
        "rules (r) count tracked objects only; expected the tracker enabled",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "key_path", "message"),
    [pytest.param(text, line, key, msg, id=name) for name, text, line, key, msg in BAD],
)
def test_bad_zones_and_rules_point_at_the_line(
    text: str, line: int, key_path: str, message: str
) -> None:
    issues = _issues(text)
    matching = [issue for issue in issues if message in issue.message]
    assert matching, f"no issue contains {message!r}; got:\n" + "\n".join(map(str, issues))
    assert (matching[0].line, matching[0].key_path) == (line, key_path), str(matching[0])


def test_every_cross_section_problem_is_reported_in_one_round() -> None:
    """Regression: each cross-section check stopped at its first failure, so a file with two
    rules naming missing zones took one `validate` per rule to fix."""
    issues = _issues(
        f"zones:\n  - {{id: z, type: polygon, points: {SQUARE}}}\n"
        "  - {id: z, type: polygon, points: [[0, 0], [5, 0], [5, 5]]}\n"
        "rules:\n"
        "  - {id: a, type: inside, zone: nowhere}\n"
        "  - {id: b, type: exit, zone: elsewhere}\n"
        "  - {id: a, type: inside, zone: z}\n"
    )
    found = [(issue.line, issue.key_path) for issue in issues]
    assert found == [
        (6, "zones[1].id"),
        (8, "rules[0].zone"),
        (9, "rules[1].zone"),
        (10, "rules[2].id"),
    ], "\n".join(map(str, issues))


@pytest.mark.parametrize(
    ("image_points", "message"),
    [
        ([[0, 0], [10, 0], [20, 0], [5, 5]], "points[0], points[1] and points[2] are on one line"),
        ([[0, 0], [10, 0], [10, 10]], "expected exactly 4 points, got 3"),
    ],
)
def test_calibration_needs_four_points_in_general_position(
    image_points: list[list[float]], message: str
) -> None:
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        CalibrationConfig(image_points=image_points, ground_points=[[0, 0], [1, 0], [1, 1], [0, 1]])


@pytest.mark.parametrize(
    ("calibration", "line", "key", "message"),
    [
        (
            "      image_points: [[0, 0], [10, 0], [10, 10], [0, 10]]\n"
            "      ground_points: [[0, 0], [1, 1], [2, 2], [0, 5]]\n",
            7,
            "ground_points",
            "are on one line",
        ),
        (  # regression: this error pointed at the units line, after the points
            "      image_points: [[0.1, 0.9], [0.9, 0.9], [0.7, 0.4], [1.3, 0.4]]\n"
            "      ground_points: [[0, 0], [10, 0], [10, 20], [0, 20]]\n"
            "      units: normalized\n",
            6,
            "image_points",
            "image_points[3] = [1.3, 0.4] is outside [0, 1]",
        ),
    ],
)
def test_calibration_errors_point_at_the_line_in_the_source(
    calibration: str, line: int, key: str, message: str
) -> None:
    text = "sources:\n  - id: gate\n    type: file\n    path: a.mp4\n    calibration:\n"
    with pytest.raises(ConfigError) as info:
        load_pipeline_text(text + calibration, filename="p.yaml")
    (issue,) = info.value.issues
    assert (issue.line, issue.key_path) == (line, f"sources[0].calibration.{key}")
    assert message in issue.message


@pytest.mark.parametrize(
    ("points", "problem"),
    [
        ([(0, 0), (4, 0), (4, 4), (0, 4)], None),
        ([(0, 0), (4, 0), (2, 2), (4, 4), (0, 4)], None),  # concave is fine
        ([(0, 0), (4, 4), (4, 0), (0, 4)], "self-intersecting"),
        ([(0, 0), (4, 0), (4, 4), (2, 0), (0, 4)], "self-intersecting"),  # a corner on an edge
        ([(0, 0), (4, 0)], "at least 3 points"),
        ([(0, 0), (2, 0), (4, 0)], "zero area"),
    ],
)
def test_polygon_problem(points: list[tuple[float, float]], problem: str | None) -> None:
    found = polygon_problem(points)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_segments_intersect_touching_and_collinear() -> None:
    assert segments_intersect((0, 0), (4, 0), (2, 0), (6, 0))  # collinear overlap
    assert segments_intersect((0, 0), (4, 0), (4, 0), (4, 5))  # touching at an end
    assert not segments_intersect((0, 0), (4, 0), (5, 0), (9, 0))
    assert not segments_intersect((0, 0), (4, 4), (0, 1), (3, 4))


@pytest.mark.parametrize(
    ("section", "key_path"),
    [
        (
            "zones:\n  - {id: z, type: polygon, points: [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]}\n",
            "zones[0].points",
        ),
        ("zones:\n  - {id: l, type: line, points: [[0, 0.5], [1, 0.5]]}\n", "zones[0].points"),
    ],
)
def test_fractions_written_in_pixels_are_an_error(section: str, key_path: str) -> None:
    """Regression: a zone drawn in fractions without ``units: normalized`` passed; in pixels it
    covers less than one pixel, and its rules never fired."""
    issues = _issues(section)
    assert [i.key_path for i in issues] == [key_path]
    assert "every point is within [0, 1]" in issues[0].message
    assert "expected units: normalized" in issues[0].message


def test_calibration_fractions_in_pixels_are_an_error() -> None:
    text = SOURCES.replace(
        "path: a.mp4}",
        "path: a.mp4, calibration: {image_points: [[0.1, 0.9], [0.9, 0.9], [0.7, 0.4], "
        "[0.3, 0.4]], ground_points: [[0, 0], [8, 0], [8, 10], [0, 10]]}}",
    )
    with pytest.raises(ConfigError) as info:
        load_pipeline_text(text, filename="p.yaml", env={})
    (issue,) = info.value.issues
    assert issue.key_path.endswith("calibration.image_points")
    assert "every point is within [0, 1]" in issue.message


def _by_path(issues: list[ConfigIssue]) -> dict[str, str]:
    return {issue.key_path: issue.message for issue in issues}


def test_cross_section_errors_come_in_the_same_round_as_field_errors() -> None:
    # pydantic checks across sections only once every field is valid; before, this file
    # reported the tracker key and the zone's points, and the unknown zone only after those
    # were fixed.
    issues = _issues(
        f"""\
        tracker: {{confidence: 0.3}}
        zones:
          - {{id: swing, type: polygon, points: [[0, 0], [10, 0]]}}
          - {{id: gate, type: polygon, points: {SQUARE}}}
        rules:
          - {{id: r, type: inside, zone: nowhere}}
        """
    )
    found = _by_path(issues)
    assert set(found) == {"tracker.confidence", "zones[0].points", "rules[0].zone"}
    assert found["rules[0].zone"] == (
        "rule 'r' names zone 'nowhere', which is not defined; zones: gate "
        "(besides zones with errors of their own: 'swing')"
    )
    assert [issue.line for issue in issues] == [4, 6, 9]  # in file order, at their lines


def test_no_cross_section_error_about_an_item_that_has_errors_of_its_own() -> None:
    # The zone and the source are invalid, so the rule naming the zone and the zone naming
    # the source get no "not defined" besides the errors that say what is wrong with them.
    issues = _issues(
        f"""\
          - {{id: cam, type: file, path: c.mp4, fps: -1}}
        zones:
          - {{id: swing, type: polygon, points: [[0, 0], [10, 0]]}}
          - {{id: gate, type: polygon, stream: cam, points: {SQUARE}}}
        rules:
          - {{id: r, type: inside, zone: swing}}
          - {{id: far, type: near, other_classes: [truck], max_distance: 5, stream: cam}}
        """
    )
    assert set(_by_path(issues)) == {"sources[2].fps", "zones[0].points"}


def test_an_invalid_item_without_a_readable_id_silences_the_references_to_its_section() -> None:
    issues = _issues(
        f"""\
        zones:
          - {{type: polygon, points: {SQUARE}}}
        rules:
          - {{id: r, type: inside, zone: swing}}
          - {{id: r, type: inside, zone: swing}}
        """
    )
    # The zone with no id may be the one the rules name; the duplicate rule id is still told.
    assert set(_by_path(issues)) == {"zones[0].id", "rules[1].id"}


def test_cross_section_errors_with_invalid_items_count_the_items_in_the_file() -> None:
    issues = _issues(
        f"""\
        zones:
          - {{id: a, type: polygon, points: {SQUARE}}}
          - {{id: b, type: polygon, points: [[0, 0], [10, 0]]}}
          - {{id: a, type: polygon, points: {SQUARE}}}
        rules:
          - {{id: r1, type: inside, zone: b, min_overlap: 2}}
          - {{id: r2, type: cross, zone: a}}
        """
    )
    found = _by_path(issues)
    assert set(found) == {"zones[1].points", "zones[2].id", "rules[0].min_overlap", "rules[1].zone"}
    assert found["zones[2].id"].endswith("already used by zones[0]; expected unique ids")
    # The zone was found, so the invalid ones are not mentioned.
    assert found["rules[1].zone"] == (
        "rule 'r2' (cross) needs a line zone, but zone 'a' is a polygon"
    )


def test_no_cross_section_round_when_no_source_is_valid() -> None:
    with pytest.raises(ConfigError) as info:
        load_pipeline_text(
            "sources:\n  - {id: cam, type: file}\nrules:\n  - {id: r, type: inside, zone: z}\n",
            filename="p.yaml",
            env={},
        )
    assert [issue.key_path for issue in info.value.issues] == ["sources[0].path"]


def _paths(text: str, **kwargs: object) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        load_pipeline_text(textwrap.dedent(text), filename="p.yaml", env={}, **kwargs)  # type: ignore[arg-type]
    return _by_path(info.value.issues)


def test_a_typo_in_a_section_does_not_hide_its_cross_section_errors() -> None:
    """Regression (audit): an error anywhere in outputs, model or tracker dropped the whole
    section, and with it the checks on its other keys (they came after the typo was fixed)."""
    found = _paths(
        """\
        sources:
          - {id: cam0, type: file, path: a.mp4}
          - {id: cam1, type: file, path: b.mp4}
        model: {score_threshold: 0.3, classes: [person]}
        tracker: {enabled: false, hidden_buffer_s: -3}
        zones:
          - {id: z, type: polygon, points: [[0, 0], [10, 0], [10, 10]]}
        rules:
          - {id: r, type: inside, zone: z, classes: [truck, persn]}
        outputs:
          jsonl: {pth: out/d.jsonl}
          video: {path: out/all.mp4}
          mqtt: {host: localhost, snapshots: true}
        """,
        class_names_of=lambda model: ["person", "truck"],
    )
    assert set(found) == {
        "model.score_threshold",
        "tracker.hidden_buffer_s",
        "tracker.enabled",  # the rules need the tracker
        "rules[0].classes[0]",  # truck: filtered out by model.classes
        "rules[0].classes[1]",  # persn: no such class
        "outputs.jsonl.pth",
        "outputs.video.path",  # two sources, one file
        "outputs.mqtt.snapshots",  # nothing writes them
    }


def test_a_check_that_reads_a_key_with_an_error_is_skipped() -> None:
    # outputs.record.snapshots is wrong, so whether snapshots are written is unknown: no
    # "that is not enabled" about a key the file does set.
    found = _paths(
        """\
        sources: [{id: cam, type: file, path: a.mp4}]
        outputs:
          mqtt: {host: localhost, snapshots: true}
          record: {snapshots: {dir: out/s, jpeg_quality: 500}}
        """
    )
    assert set(found) == {"outputs.record.snapshots.jpeg_quality"}


def test_numbers_as_ids_name_the_items_they_are() -> None:
    """Regression (audit): zone id "7" (text, bad points) named as zone: 7 (a number) got "not
    defined" beside the points error; the validated file has the same id for both."""
    found = _paths(
        """\
        sources:
          - {id: "1", type: file, path: a.mp4, fps: 0}
        zones:
          - {id: "7", type: polygon, points: [[0, 0], [10, 0]]}
          - {id: "8", type: polygon, stream: 1, points: [[0, 0], [10, 0], [10, 10]]}
        rules:
          - {id: r, type: inside, zone: 7}
        """
    )
    assert set(found) == {"sources[0].fps", "zones[0].points"}


def test_a_duplicate_source_names_the_first_use_where_the_file_has_it() -> None:
    found = _paths(
        """\
        sources:
          - {id: cam0, type: file, path: a.mp4, fps: -1}
          - {id: cam1, type: file, path: b.mp4}
          - {id: cam1, type: file, path: c.mp4}
        """
    )
    assert found["sources[2].id"].startswith(
        "duplicate source id 'cam1', already used by sources[1]"
    )


def test_points_are_not_judged_against_units_that_are_wrong() -> None:
    # units with an error of its own is missing from the validation: the points were judged
    # against the default (px) and got "every point is within [0, 1]" beside it.
    found = _paths(
        """\
        sources: [{id: cam, type: file, path: a.mp4}]
        zones:
          - {id: z, type: polygon, units: normalised, points: [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]}
        """
    )
    assert set(found) == {"zones[0].units"}

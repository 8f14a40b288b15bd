"""The engine and the stage: listeners, rule states, zone counts, schema, streams, closing."""

from __future__ import annotations

import itertools
import json
import typing
from typing import Any

import jsonschema
import numpy as np
import pytest

from streamseg.config import load_pipeline_text
from streamseg.config.rules import Anchor, Basis
from streamseg.rules import Event, RuleEngine, RulesStage, build_rules_stage_factory, event_schema

Kit = Any  # the `kit` fixture (tests/rules/conftest.py)

EVERY_KIND = """\
zones:
  - {id: pen, type: polygon, points: [[40, 0], [119, 0], [119, 79], [40, 79]]}
  - {id: line, type: line, points: [[60, 0], [60, 79]]}
rules:
  - {id: inside, type: inside, zone: pen, min_duration_s: 0, update_interval_s: 0.3}
  - {id: enter, type: enter, zone: pen, min_duration_s: 0, severity: info}
  - {id: exit, type: exit, zone: pen, min_duration_s: 0}
  - {id: dwell, type: dwell, zone: pen, dwell_s: 0.3, min_duration_s: 0}
  - {id: cross, type: cross, zone: line, min_duration_s: 0}
  - {id: count, type: count, zone: pen, above: 0, min_duration_s: 0, severity: critical}
  - {id: near, type: near, classes: [person], other_classes: [truck], max_distance: 30,
     units: m, min_duration_s: 0}
"""
CALIBRATION = (
    "{image_points: [[0, 0], [100, 0], [100, 50], [0, 50]], "
    "ground_points: [[0, 0], [10, 0], [10, 5], [0, 5]]}"
)


def walk() -> list[list[tuple[Any, ...]]]:
    """A person walking right across the pen and the line, then out again, past a truck."""
    truck = (9, 5, 60, 20, 75, "truck")
    xs = [5, 15, 25, 45, 55, 65, 75, 85, 85, 85, 65, 45, 25, 15, 5]
    return [[(1, x, 30, x + 9, 49), truck] for x in xs]


def test_every_kind_raises_events_that_validate_against_the_schema(kit: Kit) -> None:
    engine, recorder = kit.engine(EVERY_KIND, calibration=CALIBRATION)
    events = kit.run(engine, walk()) + engine.close()
    assert {e.rule_kind for e in events} == {
        "inside",
        "enter",
        "exit",
        "dwell",
        "cross",
        "count",
        "near",
    }
    validator = jsonschema.Draft202012Validator(
        event_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    listed = set(event_schema()["properties"]["details"]["properties"])
    for event in events:
        payload = json.loads(event.to_json())
        validator.validate(payload)
        assert Event.from_payload(payload) == event
        assert set(event.details) <= listed, f"details keys the schema does not list: {event}"
    # Every occurrence has one start, one end, and one event id; seq counts its messages.
    by_id: dict[str, list[Event]] = {}
    for event in events:
        by_id.setdefault(event.event_id, []).append(event)
    for messages in by_id.values():
        assert messages[0].type == "start" and messages[-1].type == "end"
        assert [m.seq for m in messages] == list(range(len(messages)))
    assert recorder.events == events
    severities = {e.rule_id: e.severity for e in events}
    assert (severities["enter"], severities["count"], severities["inside"]) == (
        "info",
        "critical",
        "warning",
    )


def test_rule_states_start_off_flip_and_pulse(kit: Kit) -> None:
    engine, recorder = kit.engine(EVERY_KIND, calibration=CALIBRATION)
    # Every rule reports OFF when the engine is built, before any frame: a retained state a
    # crashed run left ON must not stand while the camera is down.
    assert recorder.states == [("cam", rule_id, False) for rule_id in engine.rule_ids]
    kit.run(engine, walk())
    later = recorder.states[len(engine.rules) :]
    assert later[0] == ("cam", "near", True)  # only near is active at once, on the first frame
    assert ("cam", "inside", True) in later
    # enter: on at frame 3, held on for state_hold_s (default 1 s), off at frame 13.
    pulses = [s for s in later if s[1] == "enter"]
    assert pulses == [("cam", "enter", True), ("cam", "enter", False)]
    # No repeated reports of an unchanged state.
    for rule_id in engine.rule_ids:
        values = [s[2] for s in recorder.states if s[1] == rule_id]
        assert all(a != b for a, b in itertools.pairwise(values)), rule_id


def test_zone_counts_are_reported_when_they_change(kit: Kit) -> None:
    engine, recorder = kit.engine(
        "zones:\n"
        "  - {id: pen, type: polygon, points: [[40, 0], [119, 0], [119, 79], [40, 79]]}\n"
        "  - {id: unused, type: polygon, points: [[0, 0], [10, 0], [10, 10]]}\n"
        "rules:\n"
        "  - {id: crowd, type: count, zone: pen, classes: [cow], above: 5}\n"
    )
    cow_in, cow_out, sheep_in = (
        (1, 50, 5, 55, 10, "cow"),
        (2, 5, 5, 10, 10, "cow"),
        (
            3,
            70,
            5,
            75,
            10,
            "sheep",
        ),
    )
    half_in = (4, 35, 20, 44, 25, "cow")  # half of it inside: counted (>= 0.5)
    kit.run(engine, [[cow_in, cow_out], [cow_in, cow_out], [cow_in, sheep_in, half_in], [sheep_in]])
    assert recorder.counts == [
        ("cam", "pen", "cow", 0),  # the rule's class, before any frame
        ("cam", "pen", "cow", 1),
        ("cam", "pen", "cow", 2),
        ("cam", "pen", "sheep", 1),
        ("cam", "pen", "cow", 0),
    ]


def test_a_failing_listener_is_skipped(kit: Kit, caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def on_event(self, event: Event) -> None:
            raise RuntimeError("disk full")

        def on_rule_state(self, stream_id: str, rule_id: str, active: bool) -> None:
            raise RuntimeError("disk full")

        def on_zone_count(self, stream_id: str, zone_id: str, name: str, count: int) -> None:
            raise RuntimeError("disk full")

    config = kit.config(EVERY_KIND, calibration=CALIBRATION)
    recorder = kit.Recorder()
    engine = RuleEngine.from_config(config, "cam", [Broken(), recorder])
    events = kit.run(engine, walk())
    assert events and recorder.events == events
    assert "event listener Broken.on_event failed" in caplog.text


def test_close_ends_open_occurrences(kit: Kit) -> None:
    engine, recorder = kit.engine(
        EVERY_KIND.split("rules:")[0] + "rules:\n  - {id: inside, type: inside, zone: pen}\n"
    )
    kit.run(engine, [[(1, 50, 30, 59, 49)]] * 10)
    assert engine.rules[0].active
    (end,) = engine.close()
    assert end.type == "end" and end.details == {"reason": "stream_end"}
    assert end.frame_index == 9 and end.ended_at == pytest.approx(1000.9)
    assert recorder.states[-1] == ("cam", "inside", False)
    assert engine.close() == []


def test_close_puts_the_zone_counts_to_zero(kit: Kit) -> None:
    """Regression: a stream's last counts stayed (retained MQTT count topics at their last
    value after the run)."""
    engine, recorder = kit.engine(
        "zones:\n"
        "  - {id: pen, type: polygon, points: [[40, 0], [119, 0], [119, 79], [40, 79]]}\n"
        "rules:\n"
        "  - {id: crowd, type: count, zone: pen, classes: [cow], above: 5}\n"
    )
    cows = [(1, 50, 5, 55, 10, "cow"), (2, 60, 5, 65, 10, "cow"), (3, 70, 5, 75, 10, "sheep")]
    kit.run(engine, [cows] * 3)
    recorder.counts.clear()
    engine.close()
    assert sorted(recorder.counts) == [("cam", "pen", "cow", 0), ("cam", "pen", "sheep", 0)]
    engine.close()
    assert len(recorder.counts) == 2  # said once


def test_the_rules_classes_are_counted_at_zero_before_the_first_frame(kit: Kit) -> None:
    """Regression: a count was reported only when it changed from what this run had seen, so a
    retained count topic kept the value of a run that crashed (kill -9: no close() to put it to
    0) until that class was seen in that zone again; then until the stream's first frame,
    which a camera that is down may not deliver for minutes."""
    engine, recorder = kit.engine(
        "zones:\n"
        "  - {id: pen, type: polygon, points: [[40, 0], [119, 0], [119, 79], [40, 79]]}\n"
        "rules:\n"
        "  - {id: crowd, type: count, zone: pen, classes: [cow, sheep], above: 5}\n"
    )
    assert recorder.counts == [("cam", "pen", "cow", 0), ("cam", "pen", "sheep", 0)]
    assert recorder.states == [("cam", "crowd", False)]
    kit.run(engine, [[], [], [(1, 50, 5, 55, 10, "cow")]])
    assert recorder.counts == [
        ("cam", "pen", "cow", 0),
        ("cam", "pen", "sheep", 0),
        ("cam", "pen", "cow", 1),
    ]


def test_rules_follow_their_zones_streams() -> None:
    config = load_pipeline_text(
        """
sources:
  - {id: gate, type: file, path: a.mp4}
  - {id: crane, type: file, path: b.mp4}
zones:
  - {id: everywhere, type: polygon, points: [[0, 0], [10, 0], [10, 10]]}
  - {id: gate-only, type: polygon, stream: gate, points: [[0, 0], [10, 0], [10, 10]]}
  - {id: both, type: line, streams: [gate, crane], points: [[0, 0], [10, 0]]}
rules:
  - {id: a, type: inside, zone: everywhere}
  - {id: b, type: inside, zone: gate-only}
  - {id: c, type: cross, zone: both}
  - {id: d, type: near, other_classes: [truck], max_distance: 5, stream: crane}
"""
    )
    assert RuleEngine.from_config(config, "gate", []).rule_ids == ["a", "b", "c"]
    assert RuleEngine.from_config(config, "crane", []).rule_ids == ["a", "c", "d"]


def test_stage_factory(kit: Kit) -> None:
    assert build_rules_stage_factory(kit.config("zones: []\n"), []) is None
    recorder = kit.Recorder()
    factory = build_rules_stage_factory(kit.config(EVERY_KIND, calibration=CALIBRATION), [recorder])
    assert factory is not None
    stage = factory("cam")
    assert isinstance(stage, RulesStage) and stage.name == "rules"
    assert factory("cam") is not stage  # one per stream, no shared state
    for index, objects in enumerate(walk()):
        detections = kit.detections(objects)
        before = detections.xyxy.copy()
        out = stage.process(kit.frame(index, index / 10), detections)
        assert out is detections and np.array_equal(out.xyxy, before)
    assert stage.events == len(recorder.events) > 0
    stage.close()
    assert stage.events == len(recorder.events)


def test_a_stream_restarting_its_timestamps_does_not_freeze_the_rules(kit: Kit) -> None:
    """Regression: pts jumping back to 0 (a restarted stream) made durations negative, so a
    track lost after the jump was never declared lost."""
    engine, _ = kit.engine(
        EVERY_KIND.split("rules:")[0]
        + "rules:\n  - {id: inside, type: inside, zone: pen, min_duration_s: 0, "
        "lost_timeout_s: 0.5}\n"
    )
    person = [(1, 50, 30, 59, 49)]
    events = []
    for index in range(10):
        events += engine.evaluate(kit.frame(index, index / 10), kit.detections(person))
    for index in range(10, 20):  # the stream restarts at pts 0, the person is gone
        events += engine.evaluate(kit.frame(index, (index - 10) / 10), kit.detections([]))
    assert [(e.type, e.frame_index) for e in events] == [("start", 0), ("end", 15)]
    assert events[1].details["reason"] == "lost"
    assert events[1].frame_pts > events[0].frame_pts


def test_zones_mostly_outside_the_frame_are_logged_once(
    kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    """Pixel points written for a larger frame (the frame here is 120x80) leave rules that
    never fire: the first frame logs which zone, how much and on which stream; a zone drawn a
    little past the edge is not logged."""
    engine, _ = kit.engine(
        """\
        zones:
          - {id: big, type: polygon, points: [[300, 200], [900, 200], [900, 500]]}
          - {id: spill, type: polygon, points: [[60, 40], [400, 40], [400, 300], [60, 300]]}
          - {id: edge, type: polygon, points: [[-5, -5], [125, -5], [125, 85], [-5, 85]]}
          - {id: far, type: line, points: [[960, 0], [960, 1079]]}
          - {id: long, type: line, points: [[60, -100], [60, 1079]]}
        rules:
          - {id: a, type: inside, zone: big}
          - {id: b, type: count, zone: spill, above: 3}
          - {id: c, type: inside, zone: edge}
          - {id: d, type: cross, zone: far}
          - {id: e, type: cross, zone: long}
        """
    )
    walker = [(1, 10, 10, 30, 40)]
    with caplog.at_level("WARNING", logger="streamseg.rules.geometry"):
        for index in range(3):
            engine.evaluate(kit.frame(index, index / 10), kit.detections(walker))
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 3, warned
    assert warned[0].startswith("zone 'big': all of it lies outside the 120x80 frame of stream")
    assert "zone 'spill': 97% of its area lies outside" in warned[1]
    assert "line 'far': all of it lies outside" in warned[2]
    assert all("units: normalized" in message for message in warned)


def test_the_schema_lists_the_values_the_config_accepts() -> None:
    """The details' enums follow the config's types (basis, anchor, cross directions)."""
    details = event_schema()["properties"]["details"]["properties"]
    assert set(details["basis"]["enum"]) == set(typing.get_args(Basis))
    assert set(details["anchor"]["enum"]) == set(typing.get_args(Anchor))
    assert set(details["direction"]["enum"]) == {"left_to_right", "right_to_left"}
    assert set(details["reason"]["enum"]) == {
        "left",
        "apart",
        "cleared",
        "lost",
        "stream_end",
        "schedule",
        "test",  # streamseg alert-test
        "interrupted",  # streamseg.outputs.mqtt.recovery
    }

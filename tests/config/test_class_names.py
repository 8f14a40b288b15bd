"""Class names a pipeline filters on must be ones its model outputs (``class_names_of``)."""

from __future__ import annotations

import textwrap

import pytest

from streamseg.config import ConfigError, ConfigIssue, load_pipeline_text
from streamseg.config.model import ModelConfig

NAMES = ["person", "excavator", "truck", "cow", "sheep", "ball"]

TEXT = """\
sources:
  - {id: gate, type: file, path: a.mp4}
model:
  weights: builtin
  classes: [person, excavator, trucks]
zones:
  - {id: z, type: polygon, points: [[0, 0], [10, 0], [10, 10], [0, 10]]}
rules:
  - {id: in, type: inside, zone: z, classes: [person, persn]}
  - id: close
    type: near
    classes: [person]
    other_classes: [excavator, crane]
    max_distance: 40
"""


def _issues(
    text: str, names: list[str] | None, asked: list[ModelConfig] | None = None
) -> list[ConfigIssue]:
    def class_names_of(model: ModelConfig) -> list[str] | None:
        if asked is not None:
            asked.append(model)
        return names

    with pytest.raises(ConfigError) as info:
        load_pipeline_text(text, filename="p.yaml", env={}, class_names_of=class_names_of)
    return info.value.issues


def test_every_unknown_class_is_reported_at_its_item() -> None:
    asked: list[ModelConfig] = []
    issues = _issues(TEXT, NAMES, asked)
    assert asked and asked[0].weights == "builtin"  # the model section, validated, was given
    found = {(i.line, i.column, i.key_path): i.message for i in issues}
    assert set(found) == {
        (5, 32, "model.classes[2]"),
        (9, 55, "rules[0].classes[1]"),
        (13, 32, "rules[1].other_classes[1]"),
    }
    message = found[(9, 55, "rules[0].classes[1]")]
    assert "rule 'in' names class 'persn', which model 'builtin' does not output" in message
    assert "did you mean 'person'?" in message
    assert "its classes: person, excavator, truck, cow, sheep, ball" in message
    assert "did you mean 'truck'?" in found[(5, 32, "model.classes[2]")]
    assert "did you mean" not in found[(13, 32, "rules[1].other_classes[1]")]


def test_known_classes_and_unknown_names_pass() -> None:
    fixed = TEXT.replace("trucks", "truck").replace("persn", "truck").replace("crane", "truck")
    config = load_pipeline_text(fixed, env={}, class_names_of=lambda model: NAMES)
    assert config.rules[0].classes == ["person", "truck"]
    # Names that cannot be known without loading the model: no check (the runtime makes it);
    # only that the rules watch classes model.classes keeps.
    unknowable = TEXT.replace("persn", "trucks").replace("crane", "trucks")
    load_pipeline_text(unknowable, env={}, class_names_of=lambda model: None)
    load_pipeline_text(unknowable, env={})


def test_a_rule_watching_a_class_model_classes_filters_out_is_an_error() -> None:
    """Regression: ``model.classes: [person]`` with a rule on trucks passed validate and ran,
    and the rule could never fire."""
    text = TEXT.replace("[person, persn]", "[person, excavator]").replace(
        "[excavator, crane]", "[excavator, cow]"
    )
    issues = _issues(text, None)
    assert [(i.line, i.key_path) for i in issues] == [(13, "rules[1].other_classes[1]")]
    assert (
        "rule 'close' watches class 'cow', which model.classes (person, excavator, trucks)"
        " filters out" in issues[0].message
    )


def test_renamed_classes_are_the_ones_checked() -> None:
    # model.classes against model.class_names is ModelConfig's own check; the rules are
    # checked against the same names, which class_names_of returns.
    renamed = "  weights: builtin\n  class_names: [a, b, c]\n"
    text = TEXT.replace("  weights: builtin\n", renamed)
    rules = {
        "rules[0].classes[0]",
        "rules[0].classes[1]",
        "rules[1].classes[0]",
        "rules[1].other_classes[0]",
        "rules[1].other_classes[1]",
    }
    issues = _issues(text, ["a", "b", "c"])
    assert {i.key_path for i in issues} == {"model.classes", *rules}  # one round
    assert "not among them: person, excavator, trucks" in issues[0].message
    issues = _issues(text.replace("[person, excavator, trucks]", "[a, c]"), ["a", "b", "c"])
    assert {i.key_path for i in issues} == rules


def test_a_wrong_model_key_does_not_hold_the_class_checks_back() -> None:
    # The names are asked for with the model section less its wrong key (the names do not
    # depend on iou), so the class errors come in the same round as the iou one.
    asked: list[ModelConfig] = []
    issues = _issues(TEXT.replace("weights: builtin", "weights: builtin\n  iou: 2"), NAMES, asked)
    assert [model.weights for model in asked] == ["builtin"]
    assert [i.key_path for i in issues] == [
        "model.iou",
        "model.classes[2]",
        "rules[0].classes[1]",
        "rules[1].other_classes[1]",
    ]
    # A wrong weights key: the names cannot be known, so no class is judged.
    asked.clear()
    issues = _issues(TEXT.replace("weights: builtin", "weights: 7.5"), NAMES, asked)
    assert not asked


@pytest.mark.parametrize("kind", ["count", "enter", "dwell"])
def test_zone_rules_of_every_kind_are_checked(kind: str) -> None:
    extra = {"count": "below: 2, ", "dwell": "dwell_s: 5, "}.get(kind, "")
    text = TEXT.split("rules:")[0] + textwrap.dedent(
        f"""\
        rules:
          - {{id: r, type: {kind}, zone: z, {extra}classes: [cattle]}}
        """
    )
    text = text.replace("trucks", "truck")
    issues = _issues(text, NAMES)
    assert [i.key_path for i in issues] == ["rules[0].classes[0]"]


def test_unknown_classes_come_with_the_other_cross_section_errors() -> None:
    """Regression: the class check ran only once the rest of the file was valid, so a rule
    naming a missing zone hid every unknown class until it was fixed."""
    text = TEXT.replace("zone: z,", "zone: nowhere,")
    issues = _issues(text, NAMES)
    assert [i.key_path for i in issues] == [
        "model.classes[2]",
        "rules[0].zone",
        "rules[0].classes[1]",
        "rules[1].other_classes[1]",
    ], "\n".join(map(str, issues))

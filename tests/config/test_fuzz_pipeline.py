"""Property-based fuzzing of pipeline files: never a traceback, always a clear error.

Three generators, each run through the real loader (``load_pipeline_text``) and the
``streamseg validate`` command:

- mutations of the example pipelines: a value anywhere in the tree replaced by junk, a key
  renamed, an item dropped or duplicated (these reach deep validators: zones, rules, calibration,
  MQTT, recording);
- arbitrary YAML-able trees;
- arbitrary text, most of which is not YAML at all.

A pass is a ``PipelineConfig`` or a ``ConfigError`` whose message names the file and a line; any
other exception is a bug. Environment variables are given explicitly so ``${VAR}`` substitution
is exercised without depending on the machine.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamseg.cli import main
from streamseg.config import ConfigError, PipelineConfig, load_pipeline_text
from streamseg.config.pipeline import format_loc

PIPELINES = sorted((Path(__file__).resolve().parents[2] / "pipelines").glob("*.yaml"))
EXAMPLES = [yaml.safe_load(p.read_text()) for p in PIPELINES]
ENV = {"CAM_PASSWORD": "secret", "MQTT_PASSWORD": "secret", "STATE_DIR": "/tmp/state"}
LOCATION = re.compile(r"fuzz\.yaml(:\d+(:\d+)?)?")

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same cases on every run: CI stays reproducible
    suppress_health_check=[HealthCheck.too_slow],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["${CAM_PASSWORD}", "${MISSING}", "$${ESCAPED}", "{stream}", "-1", "1e999"]),
)
trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=12), children, max_size=4),
    ),
    max_leaves=12,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys / indices) to a node of ``node``, the root included."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def mutated_examples(draw: st.DrawFn) -> Any:
    """An example pipeline with one node replaced, renamed, dropped or duplicated."""
    doc = copy.deepcopy(draw(st.sampled_from(EXAMPLES)))
    path = draw(st.sampled_from(_paths(doc)[1:]))
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    action = draw(st.sampled_from(["replace", "rename", "drop", "duplicate"]))
    if action == "replace":
        parent[last] = draw(trees)
    elif action == "drop":
        del parent[last]
    elif action == "duplicate" and isinstance(parent, list):
        parent.insert(last, copy.deepcopy(parent[last]))
    elif isinstance(parent, dict):
        parent[draw(st.text(min_size=1, max_size=12))] = parent.pop(last)
    return doc


def _check(text: str) -> None:
    """The loader accepts ``text`` or raises a ConfigError that points into the file."""
    try:
        config = load_pipeline_text(text, filename="fuzz.yaml", env=ENV)
    except ConfigError as exc:
        message = str(exc)
        assert message.strip(), "empty error message"
        assert LOCATION.search(message), f"error does not name the file: {message!r}"
        assert "Traceback" not in message
    else:
        assert isinstance(config, PipelineConfig)


@SETTINGS
@given(mutated_examples())
def test_mutated_examples_load_or_fail_clearly(doc: Any) -> None:
    _check(yaml.safe_dump(doc, sort_keys=False))


@SETTINGS
@given(trees)
def test_arbitrary_trees_load_or_fail_clearly(doc: Any) -> None:
    _check(yaml.safe_dump(doc))


@SETTINGS
@given(st.text(max_size=200))
def test_arbitrary_text_loads_or_fails_clearly(text: str) -> None:
    _check(text)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(mutated_examples())
def test_validate_command_never_prints_a_traceback(doc: Any) -> None:
    import contextlib
    import io
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        out, err = io.StringIO(), io.StringIO()
        with (
            pytest.MonkeyPatch.context() as mp,
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            for key, value in ENV.items():
                mp.setenv(key, value)
            code = main(["validate", str(path)])
    assert code in (0, 1)
    assert "Traceback" not in out.getvalue() + err.getvalue()


def _leaf_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        return [p for key, value in node.items() for p in _leaf_paths(value, (*prefix, key))]
    if isinstance(node, list):
        return [p for i, value in enumerate(node) for p in _leaf_paths(value, (*prefix, i))]
    return [prefix]


@pytest.mark.parametrize("example", range(len(EXAMPLES)), ids=[p.name for p in PIPELINES])
def test_one_wrong_value_gives_errors_about_it_alone(example: int) -> None:
    """Every value of a valid example pipeline replaced, one at a time, by a mapping (wrong for
    every value there is): the errors are about that key, its item or what is inside it, never
    cross-section errors elsewhere (one round of errors runs those checks without the wrong
    item or key: a rule naming a zone with a wrong value must not be told it does not exist)."""
    for path in _leaf_paths(EXAMPLES[example]):
        doc = copy.deepcopy(EXAMPLES[example])
        node = doc
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = {"x": 1}
        with pytest.raises(ConfigError) as info:
            load_pipeline_text(yaml.safe_dump(doc), filename="fuzz.yaml", env=ENV)
        wrong = format_loc(path)
        elsewhere = [
            str(issue)
            for issue in info.value.issues
            if not (wrong.startswith(issue.key_path) or issue.key_path.startswith(wrong))
        ]
        assert not elsewhere, f"{wrong} made errors elsewhere: {elsewhere}"

"""The YAML examples of README.md and docs/ are valid pipelines (as a reader would paste them).

A snippet that shows one section (``tracker:``, ``outputs:``) is checked with a one-line file
source added; ``${VAR}`` references get placeholder values.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from streamseg.config import load_pipeline_text
from streamseg.config.pipeline import PipelineConfig

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SOURCE = "sources: [{id: cam, type: file, path: videos/input.mp4}]\n"


def _snippets() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in re.finditer(r"```yaml\n(.*?)```", text, re.S):
            line = text[: match.start()].count("\n") + 2
            found.append((f"{doc.relative_to(ROOT)}:{line}", match.group(1)))
    return found


SNIPPETS = _snippets()


def test_the_docs_have_yaml_examples() -> None:
    assert len(SNIPPETS) >= 5  # the collection below found the blocks


@pytest.mark.parametrize(("where", "snippet"), SNIPPETS, ids=[w for w, _ in SNIPPETS])
def test_a_yaml_example_of_the_docs_validates(where: str, snippet: str) -> None:
    data = yaml.safe_load(snippet)  # a YAML error here names the snippet in the test id
    assert isinstance(data, dict), where
    text = snippet if "sources" in data else SOURCE + snippet
    variables = set(re.findall(r"\$\{(\w+)", snippet))
    config = load_pipeline_text(text, filename=where, env=dict.fromkeys(variables, "x"))
    assert isinstance(config, PipelineConfig)

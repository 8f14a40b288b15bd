"""Read a pipeline file into a :class:`PipelineConfig`, with errors that point into the YAML.

The steps, in order:

1. Compose the YAML into a node tree (nodes keep their line and column).
2. Walk the tree: report duplicate keys (PyYAML would silently keep the last one) and
   substitute ``${VAR}`` in string scalars from the environment (``$${VAR}`` is a literal
   ``${VAR}``). The tree itself is not changed, so errors show what the operator wrote and a
   substituted secret never reaches a message.
3. Construct Python objects from the tree with the substituted strings.
4. Validate with pydantic and map each error's ``loc`` back to a node for its line; with
   ``class_names_of`` and a valid model section, the model's class names go into the
   validation, so a rule watching a class the model lacks is an error at its line, reported
   with the other cross-section errors.
"""

from __future__ import annotations

import copy
import datetime
import difflib
import logging
import os
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from streamseg.config._base import ID_PATTERN
from streamseg.config.errors import MISSING, ConfigError, ConfigIssue
from streamseg.config.model import ModelConfig
from streamseg.config.pipeline import (
    CLASS_NAMES_CONTEXT,
    CROSS_CHECK,
    DROPPED_CONTEXT,
    ID_REFERENCES,
    LIST_SECTIONS,
    POSITIONS_CONTEXT,
    PipelineConfig,
    format_loc,
    overlaps,
)
from streamseg.config.tracker import NOT_IMPLEMENTED

logger = logging.getLogger(__name__)

Loc = tuple[str | int, ...]

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_VARIABLE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")
_REPR_LIMIT = 80
_UNSUPPORTED_VARIABLE = re.compile(r"(?<!\$)\$\{[^}]*\}?")
"""A ``${`` that :data:`_VARIABLE` did not take (``${VAR:-default}``, ``${1}``): an error, not
a literal the camera would get as its password."""
_URL_UNSAFE = {char: f"%{ord(char):02X}" for char in "/?#@ "}
"""Characters of a value substituted into a URL's ``user:password@`` that would end it."""


def _userinfo_end(template: str) -> int:
    """Where the ``user:password@`` part of a URL template ends (the offset of its "@"), or
    -1 when ``template`` is not a URL with one: variables before it are credentials."""
    scheme = re.match(r"[A-Za-z][A-Za-z0-9+.\-]*://", template)
    if scheme is None:
        return -1
    return template.find("@", scheme.end())


ClassNamesOf = Callable[[ModelConfig], Sequence[str] | None]
"""The class names of the model a ``model`` section names, or None when they cannot be known
without loading it (``streamseg.models.model_class_names``)."""


def load_pipeline(
    path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    class_names_of: ClassNamesOf | None = None,
) -> PipelineConfig:
    """Read and validate one pipeline file.

    Args:
        path: the YAML file.
        env: variables for ``${VAR}`` substitution; ``None`` uses ``os.environ``.
        class_names_of: when given and it knows the model's class names, every class the file
            filters on (rules' ``classes`` and ``other_classes``, ``model.classes``) must be
            one of them (:func:`~streamseg.config.pipeline.check_class_names`).

    Returns:
        The validated pipeline.

    Raises:
        ConfigError: the file cannot be read, is not valid YAML, or does not validate; it lists
            every problem found.
    """
    filename = os.fspath(path)
    try:
        text = Path(filename).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise _file_error(filename, "file not found") from None
    except IsADirectoryError:
        raise _file_error(filename, "is a directory, expected a YAML file") from None
    except UnicodeDecodeError as exc:
        raise _file_error(
            filename, f"expected UTF-8 text, got byte 0x{exc.object[exc.start]:02x} at {exc.start}"
        ) from None
    except OSError as exc:
        raise _file_error(filename, f"cannot read the file: {exc.strerror or exc}") from None
    return load_pipeline_text(text, filename=filename, env=env, class_names_of=class_names_of)


def load_pipeline_text(
    text: str,
    filename: str = "<string>",
    env: Mapping[str, str] | None = None,
    class_names_of: ClassNamesOf | None = None,
) -> PipelineConfig:
    """Validate a pipeline given as YAML text.

    Args:
        text: the YAML document.
        filename: the name errors show.
        env: variables for ``${VAR}`` substitution; ``None`` uses ``os.environ``.
        class_names_of: as for :func:`load_pipeline`.

    Returns:
        The validated pipeline.

    Raises:
        ConfigError: the text is not valid YAML or does not validate; it lists every problem.
    """
    env = os.environ if env is None else env
    _check_printable(text, filename)
    loader = _SubstitutingLoader(text)
    try:
        root = _compose(loader, filename)
        walk = _TreeWalk(filename, env)
        walk.visit(root, ())
        loader.substitutions = walk.substitutions
        try:
            data = loader.construct_document(root)
        except yaml.MarkedYAMLError as exc:
            raise ConfigError([_syntax_issue(filename, exc, "YAML error")]) from None
    finally:
        loader.dispose()

    issues = walk.issues
    names = _class_names(data, class_names_of)
    context = {CLASS_NAMES_CONTEXT: list(names)} if names is not None else None
    try:
        config = PipelineConfig.model_validate(data, context=context)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        errors += _cross_section_errors(data, errors, context, class_names_of)
        for error in errors:
            issues.extend(_issues_from_error(error, root, filename, walk))
        raise ConfigError(_in_file_order(issues)) from None
    if issues:  # the document validated, but duplicate keys or missing variables remain
        raise ConfigError(_in_file_order(issues))
    logger.debug("%s: pipeline %r with %d sources", filename, config.name, len(config.sources))
    return config


def _cross_section_errors(
    data: Any,
    errors: Sequence[ErrorDetails],
    context: Mapping[str, Any] | None,
    class_names_of: ClassNamesOf | None = None,
) -> list[ErrorDetails]:
    """The cross-section problems of a file that has field errors, so that one round of errors
    lists both (pydantic runs the cross-section checks only on a file that is otherwise valid).

    The checks run on the file without what failed: the invalid items of ``sources``, ``zones``
    and ``rules`` are left out, and in the other sections the deepest key holding each error
    (``outputs.jsonl`` for a typo in it) takes its default; a check that reads such a key is
    skipped (:data:`~streamseg.config.pipeline.CROSS_CHECKS`). A failure at a key that names
    items by id (:data:`ID_REFERENCES`) is dropped when it names an item left out (a rule
    naming a zone whose points are wrong is not also told the zone does not exist), or any item
    of that section when one left out has no readable id. Nothing comes back when the file is
    not a mapping, a list section is not a list, or what remains is still invalid (every
    source left out).
    """
    if any(error["type"] == CROSS_CHECK for error in errors) or not isinstance(data, dict):
        return []
    remaining = dict(data)
    left_out: dict[str, set[int]] = {}
    dropped: list[Loc] = []
    for error in errors:
        loc = error["loc"]
        if not loc:
            return []
        section = str(loc[0])
        if section in LIST_SECTIONS:
            if len(loc) < 2 or not isinstance(loc[1], int):
                return []  # the list itself is wrong (or missing)
            left_out.setdefault(section, set()).add(loc[1])
        else:
            dropped.append(_drop_deepest_key(remaining, data, loc))
    positions: dict[str, list[int]] = {}
    left_out_ids: dict[str, set[str] | None] = {}
    for section, indices in left_out.items():
        items = data[section]
        positions[section] = [i for i in range(len(items)) if i not in indices]
        remaining[section] = [items[i] for i in positions[section]]
        ids = [_as_id(items[i].get("id")) if isinstance(items[i], dict) else None for i in indices]
        readable = all(item_id is not None for item_id in ids)
        left_out_ids[section] = {str(item_id) for item_id in ids} if readable else None
    salvage_context = {**(context or {}), POSITIONS_CONTEXT: positions, DROPPED_CONTEXT: dropped}
    names_read = (("model", "weights"), ("model", "class_names"))
    if not any(overlaps(loc, read) for loc in dropped for read in names_read):
        names = _class_names(remaining, class_names_of)
        if names is not None:
            salvage_context[CLASS_NAMES_CONTEXT] = list(names)
    try:
        PipelineConfig.model_validate(remaining, context=salvage_context)
    except ValidationError as exc:
        found = exc.errors(include_url=False)
    else:
        return []
    if len(found) != 1 or found[0]["type"] != CROSS_CHECK:
        return []
    error = found[0]
    ctx = dict(error.get("ctx") or {})
    kept: list[tuple[Loc, str]] = []
    for raw_loc, message in ctx["failures"]:
        loc = tuple(raw_loc)
        if _may_name_left_out(loc, data, left_out_ids):
            continue
        named = ID_REFERENCES.get((str(loc[0]), str(loc[-1])))
        if (
            named is not None
            and left_out_ids.get(named)
            and _names_unknown(loc, data, remaining.get(named))
        ):
            listed = ", ".join(repr(item_id) for item_id in sorted(left_out_ids[named] or ()))
            message += f" (besides {named} with errors of their own: {listed})"
        kept.append((loc, message))
    if not kept:
        return []
    error["ctx"] = {**ctx, "failures": kept}
    return [error]


def _drop_deepest_key(remaining: dict[str, Any], data: dict[str, Any], loc: Sequence[Any]) -> Loc:
    """Remove from ``remaining`` (a shallow copy of ``data``, its sections copied before they
    change) the deepest mapping key on the path ``loc`` that the file has; returns its path.
    A list on the way is not cut into (``model.classes`` loses the whole key, never an item:
    fewer classes kept would be a problem of its own)."""
    path: list[Any] = []
    node: Any = data
    for part in loc:
        if not (isinstance(node, dict) and isinstance(part, str) and part in node):
            break
        path.append(part)
        node = node[part]
    if not path:  # a key the file lacks at the top (missing): nothing to drop
        return tuple(loc[:1])
    section = path[0]
    if len(path) == 1:
        remaining.pop(section, None)
        return (section,)
    if section not in remaining:
        return tuple(path)  # the whole section went for another error
    if remaining[section] is data[section]:
        remaining[section] = copy.deepcopy(data[section])
    holder = remaining[section]
    for part in path[1:-1]:
        holder = holder.get(part) if isinstance(holder, dict) else None
    if isinstance(holder, dict):  # else a key above it went for another error
        holder.pop(path[-1], None)
    return tuple(path)


def _as_id(value: object) -> str | None:
    """A raw YAML value as the id the validated file has (numbers become text), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    return value if isinstance(value, str) else None


def _names_unknown(loc: Loc, data: Mapping[str, Any], items: Sequence[Any] | None) -> bool:
    """Whether the key at ``loc`` (counted in ``data``) names an id none of ``items`` has: the
    failure then says it is not defined, where the items left out are worth naming."""
    given = {_as_id(item.get("id")) for item in items or () if isinstance(item, dict)}
    return any(value not in given for value in _named_ids(data, loc))


def _named_ids(data: Mapping[str, Any], loc: Loc) -> list[str | None]:
    """The ids the key at ``loc`` (``(section, index, key)``, counted in ``data``) names."""
    value = data[str(loc[0])][loc[1]].get(str(loc[-1]))
    return [_as_id(item) for item in (value if isinstance(value, list) else [value])]


def _may_name_left_out(
    loc: Loc, data: dict[str, Any], left_out_ids: Mapping[str, set[str] | None]
) -> bool:
    """Whether a cross-check failure at ``loc`` (counted in the file) may be about an item
    :func:`_cross_section_errors` left out of the validation."""
    if len(loc) < 3 or not isinstance(loc[1], int):
        return False
    named = ID_REFERENCES.get((str(loc[0]), str(loc[-1])))
    if named is None or named not in left_out_ids:
        return False
    ids = left_out_ids[named]
    if ids is None:
        return True
    return any(item is not None and item in ids for item in _named_ids(data, loc))


def _class_names(data: Any, class_names_of: ClassNamesOf | None) -> Sequence[str] | None:
    """The model's class names, from the ``model`` section alone, so that the class checks
    run in the same round as the other cross-section checks; None when there is no
    ``class_names_of``, the section is invalid (its errors come with the whole file's) or the
    names cannot be read without running the model."""
    if class_names_of is None:
        return None
    section = data.get("model") if isinstance(data, dict) else None
    try:
        model = ModelConfig.model_validate(section if section is not None else {})
    except ValidationError:
        return None
    return class_names_of(model)


def _in_file_order(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    return sorted(issues, key=lambda issue: (issue.line or 0, issue.column or 0))


def _file_error(
    filename: str, message: str, line: int | None = None, column: int | None = None
) -> ConfigError:
    """An error about the file as a whole (no key path), optionally at a position."""
    return ConfigError([ConfigIssue(filename, line, column, "", MISSING, message)])


def _check_printable(text: str, filename: str) -> None:
    """Raise ConfigError for characters YAML refuses (PyYAML checks them when the loader opens)."""
    try:
        yaml.reader.Reader(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        if isinstance(exc.character, int):
            message = (
                f"YAML syntax error: unacceptable character #x{exc.character:04x} ({exc.reason})"
            )
        else:
            message = f"YAML syntax error: {exc.reason}"
        raise _file_error(filename, message, line, column) from None


def _construct_str(loader: _SubstitutingLoader, node: yaml.Node) -> str:
    """The substituted text of ``node`` when it had ``${...}``, else its own text."""
    if id(node) in loader.substitutions:
        return loader.substitutions[id(node)]
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


def _without_base_60(
    resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]],
) -> dict[Any, list[tuple[str, re.Pattern[str]]]]:
    """SafeLoader's implicit resolvers without YAML 1.1's base-60 numbers: ``18:00`` reads as
    the text ``"18:00"`` (as YAML 1.2 reads it), not as the integer 1080, so a schedule's
    unquoted times mean what they say, and a number written with a colon is an error."""
    return {
        first: [
            (tag, re.compile("(?!.*:)" + regexp.pattern, regexp.flags))
            if tag in _NUMBER_TAGS
            else (tag, regexp)
            for tag, regexp in entries
        ]
        for first, entries in resolvers.items()
    }


class _SubstitutingLoader(yaml.SafeLoader):
    """A SafeLoader whose string scalars take their ``${VAR}``-substituted text, and that reads
    no base-60 numbers (:func:`_without_base_60`)."""

    # A copy of SafeLoader's table with one entry replaced (add_constructor would do the same,
    # but as a statement run at import).
    yaml_constructors: ClassVar[dict[Any, Any]] = {
        **yaml.SafeLoader.yaml_constructors,
        _STR_TAG: _construct_str,
    }
    yaml_implicit_resolvers = _without_base_60(yaml.SafeLoader.yaml_implicit_resolvers)

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.substitutions: dict[int, str] = {}


def _compose(loader: yaml.SafeLoader, filename: str) -> yaml.MappingNode:
    """The document's root mapping node; ConfigError for syntax errors and non-mappings."""
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_syntax_issue(filename, exc)]) from None
    except yaml.YAMLError as exc:
        raise _file_error(filename, f"YAML syntax error: {_one_line(str(exc))}") from None
    if root is None:
        raise _file_error(
            filename, "the file is empty, expected a mapping with at least a 'sources' list"
        )
    if not isinstance(root, yaml.MappingNode):
        kind = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
        line, column = _position(root)
        raise _file_error(
            filename,
            f"got {kind} at the top level, expected a mapping of sections "
            "(name, sources, model, outputs, ...)",
            line,
            column,
        )
    return root


def _syntax_issue(
    filename: str, exc: yaml.MarkedYAMLError, prefix: str = "YAML syntax error"
) -> ConfigIssue:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or "invalid YAML"
    if exc.context == "expected a single document in the stream":
        line = mark.line + 1 if mark is not None else None
        return ConfigIssue(
            filename,
            line,
            1 if line is not None else None,
            "",
            MISSING,
            f"{prefix}: found a second document ('---'), expected one document per file",
        )
    if "\\t" in problem or "\t" in problem:
        if mark is not None and _text_before_mark(mark).strip():
            problem += " (a tab after a value, such as before a comment: use spaces there)"
        else:
            problem += " (indent with spaces, not tabs)"
    elif mark is not None and _braces_on_line(mark):
        problem += (
            " (a value holding { } or ${...} needs quotes: "
            'path: "out/{stream}.mp4", url: "rtsp://u:${PW}@host/x")'
        )
    if exc.context:
        where = ""
        if exc.context_mark is not None and exc.context_mark is not mark:
            where = f" started at line {exc.context_mark.line + 1}"
        problem = f"{problem} ({exc.context}{where})"
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    return ConfigIssue(filename, line, column, "", MISSING, f"{prefix}: {_one_line(problem)}")


def _text_before_mark(mark: yaml.Mark) -> str:
    """The text of the mark's line before the mark ("" when the buffer is not at hand)."""
    buffer = getattr(mark, "buffer", None)
    if not isinstance(buffer, str):
        return ""
    lines = buffer.splitlines()
    return lines[mark.line][: mark.column] if 0 <= mark.line < len(lines) else ""


def _braces_on_line(mark: yaml.Mark) -> bool:
    """Whether the line of ``mark`` has a "{" or "}" after a ": ": an unquoted value such as
    ``path: {stream}.mp4`` (YAML reads the brace as the start of a mapping) is the likely
    cause of a syntax error there."""
    buffer = getattr(mark, "buffer", None)
    if not isinstance(buffer, str):
        return False
    lines = buffer.splitlines()
    if not 0 <= mark.line < len(lines):
        return False
    return re.search(r":\s.*[{}]", lines[mark.line]) is not None


class _TreeWalk:
    """One pass over the node tree: duplicate keys and ``${VAR}`` substitution.

    Attributes:
        issues: duplicate-key and missing-variable issues, in document order.
        unresolved: ids of the scalars that still hold an unset ``${VAR}``.
        substitutions: ``id(node) -> text`` for every string scalar whose text changed.
        substituted: ids of the scalars that took a value from the environment.
    """

    def __init__(self, filename: str, env: Mapping[str, str]) -> None:
        self.filename = filename
        self.env = env
        self.issues: list[ConfigIssue] = []
        self.unresolved: set[int] = set()
        self.substitutions: dict[int, str] = {}
        self.substituted: set[int] = set()
        # Aliases share nodes: visit each once (this also bounds "billion laughs" documents).
        self._seen: set[int] = set()

    def visit(self, node: yaml.Node, path: Loc) -> None:
        """Walk ``node`` found at ``path``."""
        if id(node) in self._seen:
            return
        self._seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, yaml.Node] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    self.visit(value_node, path)
                    continue
                key = _key_text(key_node)
                if key in first:
                    line, column = _position(key_node)
                    self.issues.append(
                        ConfigIssue(
                            self.filename,
                            line,
                            column,
                            format_loc((*path, key)),
                            _raw_value(value_node),
                            f"duplicate key {key!r}, already set at line "
                            f"{first[key].start_mark.line + 1}; expected each key once "
                            "(YAML would silently keep only the last)",
                        )
                    )
                else:
                    first[key] = key_node
                self.visit(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.visit(item, (*path, index))
        elif isinstance(node, yaml.ScalarNode) and node.tag == _STR_TAG and "${" in node.value:
            self._substitute(node, path)

    def _substitute(self, node: yaml.ScalarNode, path: Loc) -> None:
        missing: list[str] = []
        used = False
        userinfo_end = _userinfo_end(node.value)

        def replace(match: re.Match[str]) -> str:
            nonlocal used
            escape, name = match.group(1), match.group(2)
            if escape:
                return "${" + name + "}"
            if name not in self.env:
                missing.append(name)
                return match.group(0)
            used = True
            value = self.env[name]
            if match.start() < userinfo_end:
                # A password with "/", "@", "#" or "?" would move the URL's host (and leak
                # the rest into logs): written percent-encoded, as FFmpeg decodes it.
                value = "".join(_URL_UNSAFE.get(char, char) for char in value)
            return value

        line, column = _position(node)

        def unresolved(message: str) -> None:
            issue = ConfigIssue(self.filename, line, column, format_loc(path), node.value, message)
            self.issues.append(issue)
            self.unresolved.add(id(node))

        unsupported = _UNSUPPORTED_VARIABLE.search(_VARIABLE.sub("", node.value))
        if unsupported is not None:
            unresolved(
                f"{unsupported.group(0)!r}: only ${{NAME}} is substituted (no defaults or "
                "other shell forms); write ${NAME} and set NAME in the environment"
            )
        text = _VARIABLE.sub(replace, node.value)
        if text != node.value:
            self.substitutions[id(node)] = text
        if used:
            self.substituted.add(id(node))
        for name in dict.fromkeys(missing):
            unresolved(
                f"environment variable {name} is not set (referenced as ${{{name}}}; "
                f"write $${{{name}}} for a literal)"
            )


def _key_text(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        return str(node.value)
    return _short_repr(_raw_value(node))


def _position(node: yaml.Node) -> tuple[int, int]:
    """1-based (line, column) where ``node`` starts."""
    return node.start_mark.line + 1, node.start_mark.column + 1


def _raw_value(node: yaml.Node) -> object:
    """The value of ``node`` as written (no substitution), for error messages."""
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    except yaml.YAMLError:
        return node.value if isinstance(node, yaml.ScalarNode) else MISSING
    finally:
        loader.dispose()


def _number(value: object) -> str:
    """``0.0`` -> ``0``, ``0.5`` -> ``0.5``: bounds as an operator would write them."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _short_repr(value: object) -> str:
    """``repr`` in YAML terms (null, true), cut to a readable length."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    text = repr(value)
    if len(text) > _REPR_LIMIT:
        text = text[: _REPR_LIMIT - 3] + "..."
    return text


# pydantic error -> issue ------------------------------------------------------------------


def _lookup(root: yaml.Node, path: Loc) -> tuple[yaml.Node, yaml.Node | None, bool]:
    """Follow ``path`` through the tree.

    Returns:
        ``(node, key_node, found)``: the node at ``path`` and the key node that led to it, or,
        when a step is missing, the deepest node reached, ``None`` and ``False``.
    """
    node: yaml.Node = root
    key_node: yaml.Node | None = None
    for part in path:
        step: tuple[yaml.Node | None, yaml.Node] | None = None
        if isinstance(node, yaml.MappingNode):
            for candidate_key, candidate_value in node.value:
                # The last match wins, as in the constructed mapping (merged keys come first).
                if isinstance(candidate_key, yaml.ScalarNode) and candidate_key.value == str(part):
                    step = (candidate_key, candidate_value)
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            step = (None, node.value[part])
        if step is None:
            return node, None, False
        key_node, node = step
    return node, key_node, True


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated[...]`` and ``X | None`` down to ``X``."""
    while True:
        origin = get_origin(annotation)
        if origin is typing.Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _sections_with_key(key: str) -> list[Loc]:
    """The sections of a pipeline file that have the key ``key`` (``confidence`` ->
    ``[("model",)]``), for an unknown key written in the wrong section (``tracker.confidence``).
    Sections under lists (sources, zones, rules) are not searched: their keys depend on the
    item's type."""
    found: list[Loc] = []

    def walk(model: type[BaseModel], at: Loc) -> None:
        for name, field in model.model_fields.items():
            if name == key and at:
                found.append(at)
            annotation = _unwrap(field.annotation)
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, (*at, name))

    walk(PipelineConfig, ())
    return found


def _union_tags(annotation: Any) -> dict[str, type[BaseModel]]:
    """``{tag: model}`` for a union of models discriminated on ``type``, else ``{}``."""
    annotation = _unwrap(annotation)
    if get_origin(annotation) not in (typing.Union, types.UnionType):
        return {}
    tags: dict[str, type[BaseModel]] = {}
    for member in get_args(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            field = member.model_fields.get("type")
            if field is not None and get_origin(field.annotation) is typing.Literal:
                for tag in get_args(field.annotation):
                    tags[str(tag)] = member
    return tags


def _resolve(loc: Sequence[str | int]) -> tuple[Loc, type[BaseModel] | None, Any]:
    """Map a pydantic ``loc`` onto the document.

    Returns:
        ``(path, owner, annotation)``: the key path with discriminator tags removed, the model
        that owns the last key (``None`` when the last step is a list index), and the
        annotation expected at the path.
    """
    path: list[str | int] = []
    annotation: Any = PipelineConfig
    owner: type[BaseModel] | None = None
    for part in loc:
        tags = _union_tags(annotation)
        if isinstance(part, str) and part in tags:
            annotation = tags[part]  # pydantic puts the union tag in loc; the YAML has no such key
            continue
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            owner = annotation
            field = annotation.model_fields.get(part) if isinstance(part, str) else None
            annotation = field.annotation if field is not None else None
        elif get_origin(annotation) is list:
            owner = None
            annotation = get_args(annotation)[0]
        else:
            owner, annotation = None, None
        path.append(part)
    return tuple(path), owner, annotation


def _expected(error: ErrorDetails) -> str:
    """What the operator should have written, from a pydantic error."""
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind in ("literal_error", "enum"):
        return f"expected one of {str(ctx['expected']).replace(' or ', ', ')}"
    bounds = {
        "greater_than": ("gt", ">"),
        "greater_than_equal": ("ge", ">="),
        "less_than": ("lt", "<"),
        "less_than_equal": ("le", "<="),
    }
    if kind in bounds:
        key, op = bounds[kind]
        return f"expected a number {op} {_number(ctx[key])}"
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == ID_PATTERN:
            return f"expected only letters, digits, '_' and '-' (pattern {ID_PATTERN})"
        return f"expected a string matching {ctx.get('pattern')}"
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return "expected a non-empty string" if n == 1 else f"expected at least {n} characters"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"expected at least {n} {'entry' if n == 1 else 'entries'}"
    simple = {
        "int_parsing": "expected an integer",
        "int_type": "expected an integer",
        "int_from_float": "expected an integer",
        "float_parsing": "expected a number",
        "float_type": "expected a number",
        "bool_parsing": "expected true or false",
        "bool_type": "expected true or false",
        "string_type": "expected a string",
        "finite_number": "expected a finite number",
        "list_type": "expected a list",
        "model_type": "expected a mapping of keys to values",
        "model_attributes_type": "expected a mapping of keys to values",
        "dict_type": "expected a mapping of keys to values",
    }
    if kind in simple:
        return simple[kind]
    message = str(error["msg"])
    return message[:1].lower() + message[1:]


def _issues_from_error(
    error: ErrorDetails, root: yaml.MappingNode, filename: str, walk: _TreeWalk
) -> list[ConfigIssue]:
    """One pydantic error as issues (a cross-check error carries several).

    An error about a scalar that still holds an unset ``${VAR}`` gives no issue: the
    missing-variable issue already says why the value is wrong.
    """
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    issues: list[ConfigIssue] = []

    def add(path: Loc, message: str, *, at_key: bool = False, got: bool = False) -> None:
        node, key_node, found = _lookup(root, path)
        if found and id(node) in walk.unresolved:
            return
        value: object = _raw_value(node) if found else MISSING
        if got and found:
            message = f"got {_short_repr(value)}, {message}"
            if id(node) in walk.substituted:
                message += " (after substituting environment variables)"
        if at_key and key_node is not None:
            node = key_node
        line, column = _position(node)
        issues.append(
            ConfigIssue(filename, line, column, format_loc(path), value, _one_line(message))
        )

    if kind == CROSS_CHECK:
        for loc, message in ctx["failures"]:
            add(tuple(loc), message)
        return issues

    path, owner, annotation = _resolve(error["loc"])
    if kind == "missing":
        key = path[-1]
        message = f"missing required key {key!r}"
        if owner is not None and isinstance(key, str) and key in owner.model_fields:
            description = owner.model_fields[key].description
            if description:
                message += f" ({description})"
        add(path, message)
    elif kind == "extra_forbidden":
        key = str(path[-1])
        message = f"unknown key {key!r}"
        if owner is not None:
            known = list(owner.model_fields)
            close = difflib.get_close_matches(key, known, n=1)
            homes = [home for home in _sections_with_key(key) if home != path[:-1]]
            hints = []
            if homes:  # the right key in the wrong section: the likelier mistake
                where = " or ".join(format_loc((*home, key)) for home in homes[:3])
                hints.append(f"it belongs elsewhere: {where}")
            if close:
                hints.append(f"{'or ' if homes else ''}did you mean {close[0]!r}?")
            if hints:
                message += f" ({'; '.join(hints)})"
            message += f"; expected one of: {', '.join(known)}" if known else "; expected no keys"
        add(path, message, at_key=True)
    elif kind == "union_tag_invalid":
        discriminator = str(ctx.get("discriminator", "type")).strip("'")
        add((*path, discriminator), f"expected one of {ctx.get('expected_tags', '')}", got=True)
    elif kind == "union_tag_not_found":
        discriminator = str(ctx.get("discriminator", "type")).strip("'")
        tags = ", ".join(repr(tag) for tag in _union_tags(annotation))
        add(
            (*path, discriminator),
            f"missing required key {discriminator!r}: expected one of {tags}",
        )
    elif kind == "invalid_key":
        add(path, f"got the key {_short_repr(path[-1])}, expected text keys", at_key=True)
    elif kind == NOT_IMPLEMENTED and "key" in ctx:
        add((*path, str(ctx["key"])), str(error["msg"]), at_key=True)
    elif kind == NOT_IMPLEMENTED:
        add(path, str(error["msg"]))
    else:
        add(path, _expected(error), got=True)
    return issues

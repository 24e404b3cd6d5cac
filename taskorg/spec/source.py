"""Turn spec text (YAML or JSON) into plain data plus a map of where each field is.

Error messages must point at a line, so YAML is composed into nodes (which
carry their position) before it is turned into data. The walk over the nodes
also catches duplicate keys, which YAML loaders silently resolve by keeping
the last one.

The loader is PyYAML's safe loader with one change: YAML 1.1 reads
``8080:80`` as the base-60 number 483680 (and ``1000:1000`` likewise), a
classic trap for port and user fields; here such scalars stay strings.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import Path, SpecError, SpecProblem, format_path

_SEXAGESIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
_STR_TAG = "tag:yaml.org,2002:str"


class _SpecLoader(yaml.SafeLoader):
    """Safe YAML without base-60 numbers."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode and implicit[0] and _SEXAGESIMAL.match(value):
            return _STR_TAG
        return super().resolve(kind, value, implicit)


@dataclass
class LineMap:
    """1-based lines of the fields of a YAML document, keyed by path.

    A mapping entry is at the line of its key, a list item at its first line.
    Empty for JSON input, where every lookup gives None.
    """

    lines: dict[Path, int] = field(default_factory=dict)

    def line(self, path: Path) -> int | None:
        """The line of `path`, or of its nearest existing parent."""
        for end in range(len(path), -1, -1):
            found = self.lines.get(path[:end])
            if found is not None:
                return found
        return None


@dataclass
class Loaded:
    """Parsed spec data, where its fields are, and problems already seen (duplicate keys)."""

    data: Any
    lines: LineMap
    problems: list[SpecProblem]


def load_text(text: str, source: str) -> Loaded:
    """Parse YAML or JSON text. Raises SpecError when it is not parseable or is empty."""
    if not text.strip():
        raise SpecError([SpecProblem(source, "", None, _EMPTY)])
    if text.lstrip().startswith(("{", "[")):
        try:
            return _load_json(text, source)
        except json.JSONDecodeError as json_error:
            try:
                return _load_yaml(text, source)  # flow-style YAML is not JSON
            except SpecError as yaml_error:
                raise _likelier(json_error, yaml_error, text, source) from None
    return _load_yaml(text, source)


def _likelier(json_error: json.JSONDecodeError, yaml_error: SpecError, text: str,
              source: str) -> SpecError:
    """Text that neither parser takes: report the one that got further (ties: JSON if quoted)."""
    yaml_line = yaml_error.problems[0].line or 0
    if yaml_line > json_error.lineno or (yaml_line == json_error.lineno and '"' not in text):
        return yaml_error
    return SpecError([SpecProblem(source, "", json_error.lineno,
                                  f"invalid JSON: {json_error.msg} (column {json_error.colno})")])


_EMPTY = "the spec is empty: expected a task (name, image, ...) or a job (job, tasks)"


def _load_json(text: str, source: str) -> Loaded:
    problems: list[SpecProblem] = []

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                problems.append(SpecProblem(source, "", None, f"duplicate key {key!r} in a JSON object"))
            result[key] = value
        return result

    data = json.loads(text, object_pairs_hook=no_duplicates)
    return Loaded(data, LineMap(), problems)


def _load_yaml(text: str, source: str) -> Loaded:
    try:
        loader = _SpecLoader(text)
    except yaml.reader.ReaderError as error:  # control characters, checked up front
        raise SpecError([_reader_problem(error, text, source)]) from None
    try:
        node = loader.get_single_node()
        if node is None or _is_blank(node):  # only comments, or a bare `---`
            raise SpecError([SpecProblem(source, "", None, _EMPTY)])
        lines = LineMap()
        problems: list[SpecProblem] = []
        _walk(node, (), lines, problems, source, set())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        raise SpecError([_yaml_problem(error, source)]) from None
    except yaml.YAMLError as error:
        raise SpecError([SpecProblem(source, "", None, f"invalid YAML: {error}")]) from None
    finally:
        loader.dispose()
    return Loaded(data, lines, problems)


def _reader_problem(error: yaml.reader.ReaderError, text: str, source: str) -> SpecProblem:
    line = text.count("\n", 0, error.position) + 1
    character = error.character if isinstance(error.character, int) else ord(error.character)
    return SpecProblem(source, "", line,
                       f"invalid YAML: the control character U+{character:04X} is not allowed")


def _is_blank(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.value == "" and node.style is None


def _yaml_problem(error: yaml.MarkedYAMLError, source: str) -> SpecProblem:
    mark = error.problem_mark or error.context_mark
    line = None if mark is None else mark.line + 1
    what = error.problem or "cannot parse"
    if error.context and "expected a single document" in error.context:
        what = "a spec holds one YAML document, but a second one starts here"
    elif error.context:
        what = f"{what} ({error.context})"
    return SpecProblem(source, "", line, f"invalid YAML: {what}")


def _walk(node: yaml.Node, path: Path, lines: LineMap, problems: list[SpecProblem],
          source: str, seen: set[int]) -> None:
    """Record the line of every field under `node`; report duplicate keys."""
    if id(node) in seen:  # an alias: already walked where its anchor is
        return
    seen.add(id(node))
    lines.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        _walk_mapping(node, path, lines, problems, source, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.lines[path + (index,)] = item.start_mark.line + 1
            _walk(item, path + (index,), lines, problems, source, seen)


def _walk_mapping(node: yaml.MappingNode, path: Path, lines: LineMap,
                  problems: list[SpecProblem], source: str, seen: set[int]) -> None:
    first_line: dict[str, int] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
            continue  # complex keys are refused later; merge keys are not fields
        key, line = key_node.value, key_node.start_mark.line + 1
        if key in first_line:
            problems.append(SpecProblem(source, format_path(path + (key,)), line,
                                        f"duplicate key (first set at line {first_line[key]})"))
            continue
        first_line[key] = line
        lines.lines[path + (key,)] = line
        _walk(value_node, path + (key,), lines, problems, source, seen)

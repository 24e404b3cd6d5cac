"""Turn spec text (YAML or JSON) into plain data plus a map of where each field is.

Error messages must point at a line, so YAML is composed into nodes (which
carry their position) before it is turned into data. The walk over the nodes
also catches duplicate keys, which YAML loaders silently resolve by keeping
the last one.

The loader is PyYAML's safe loader (libyaml's C parser when available) with
changes that make it safe to run on anyone's input:

- ``8080:80`` stays a string (YAML 1.1 reads it as the base-60 number 483680);
- dates stay strings (``2001-02-30`` is not a crash, ``seed: 2001-02-03`` not a date);
- aliases, merge keys and every tag beyond plain strings, numbers, booleans,
  null, lists and mappings are refused, with their line;
- size, depth, entry counts and integer length are bounded (limits.py), and
  checked on the event stream before any node tree is built.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import Path, SpecError, SpecProblem, format_path
from .limits import (MAX_DEPTH, MAX_INT_DIGITS, MAX_ITEMS, MAX_NODES, MAX_TEXT_BYTES,
                     MAX_TEXT_VALUE, data_problem)

_SEXAGESIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
_CORE = "tag:yaml.org,2002:"
_STR_TAG = _CORE + "str"
_MERGE_TAG = _CORE + "merge"
_PLAIN_TAGS = {_CORE + kind for kind in ("str", "int", "float", "bool", "null", "seq", "map")}
_CHECKED_TAGS = {_CORE + kind for kind in ("int", "float", "bool", "null")}
_DROPPED_RESOLVERS = {_CORE + "timestamp", _CORE + "value"}
_FRIENDLY_MESSAGES_UP_TO = 64 * 1024  # bytes re-parsed by the pure-Python parser for its wording

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Resolving:
    """Safe YAML resolution without base-60 numbers, dates or `=` values."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_RESOLVERS]
        for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode and implicit[0] and _SEXAGESIMAL.match(value):
            return _STR_TAG
        return super().resolve(kind, value, implicit)  # type: ignore[misc]


class _SpecLoader(_Resolving, _BaseLoader):  # type: ignore[misc, valid-type]
    """The fast loader: libyaml's parser and composer, our resolution."""


class _WordingLoader(_Resolving, yaml.SafeLoader):
    """The pure-Python parser, run again on a small bad file for its clearer messages."""


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
    """Parse YAML or JSON text. Raises SpecError when it is not parseable, empty or too big."""
    if not text.strip():
        raise SpecError([SpecProblem(source, "", None, _EMPTY)])
    if len(text) > MAX_TEXT_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
        raise SpecError([SpecProblem(source, "", None,
                                     f"the spec is larger than {MAX_TEXT_BYTES // 1024} KiB")])
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


class _TooLong(Exception):
    """An integer literal beyond MAX_INT_DIGITS in JSON."""


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _TooLong(text)
    return int(text)


def _load_json(text: str, source: str) -> Loaded:
    problems: list[SpecProblem] = []

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                problems.append(SpecProblem(source, "", None, f"duplicate key {key!r} in a JSON object"))
            result[key] = value
        return result

    try:
        data = json.loads(text, object_pairs_hook=no_duplicates, parse_int=_bounded_int)
    except _TooLong:
        raise SpecError([SpecProblem(source, "", None,
                                     f"an integer has more than {MAX_INT_DIGITS} digits")]) from None
    except RecursionError:
        raise SpecError([SpecProblem(source, "", None,
                                     f"the spec nests deeper than {MAX_DEPTH} levels")]) from None
    check_data(data, source)
    return Loaded(data, LineMap(), problems)


def check_data(data: Any, source: str) -> None:
    """Refuse parsed data beyond the limits (for JSON, and mappings handed in directly)."""
    problem = data_problem(data)
    if problem:
        raise SpecError([SpecProblem(source, "", None, problem)])


def _load_yaml(text: str, source: str) -> Loaded:
    match = yaml.reader.Reader.NON_PRINTABLE.search(text)
    if match:  # libyaml would name it '?'; say which character it is
        line = text.count("\n", 0, match.start()) + 1
        raise SpecError([SpecProblem(source, "", line, "invalid YAML: the control character "
                                     f"U+{ord(match.group()):04X} is not allowed")])
    try:
        _check_events(text, source)
        loader = _SpecLoader(text)
        try:
            node = loader.get_single_node()
            if node is None or _is_blank(node):  # only comments, or a bare `---`
                raise SpecError([SpecProblem(source, "", None, _EMPTY)])
            lines = LineMap()
            problems: list[SpecProblem] = []
            refused: list[SpecProblem] = []
            _walk(node, (), _Walk(lines, problems, refused, source))
            if refused:
                raise SpecError(sorted(refused + problems, key=lambda p: p.line or 0))
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as error:
        raise SpecError([_friendlier(text, source) or _yaml_problem(error, source)]) from None
    except yaml.YAMLError as error:
        raise SpecError([_friendlier(text, source) or
                         SpecProblem(source, "", None, f"invalid YAML: {error}")]) from None
    return Loaded(data, lines, problems)


def _check_events(text: str, source: str) -> None:
    """Walk the event stream (iterative, cheap) to refuse what must never reach the composer.

    Deep nesting would exhaust the composer's stack, aliases multiply work and
    memory, and foreign tags build objects the spec cannot hold.
    """
    parser = _SpecLoader(text)
    open_counts: list[int] = []
    nodes = documents = 0
    try:
        while parser.check_event():
            event = parser.get_event()
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    _refuse(source, event, "a spec holds one YAML document, but a second one starts here")
            elif isinstance(event, yaml.AliasEvent):
                _refuse(source, event, f"aliases (*{event.anchor}) are not allowed: "
                                       "write the value out where it is used")
            elif isinstance(event, yaml.CollectionEndEvent):
                open_counts.pop()
            if not isinstance(event, yaml.NodeEvent) or isinstance(event, yaml.AliasEvent):
                continue
            nodes += 1
            if nodes > MAX_NODES:
                _refuse(source, event, f"the spec holds more than {MAX_NODES} values")
            if open_counts:
                open_counts[-1] += 1
                if open_counts[-1] > 2 * MAX_ITEMS:
                    _refuse(source, event, f"a mapping or list holds more than {MAX_ITEMS} entries")
            tag = getattr(event, "tag", None)
            if tag not in (None, "!") and tag not in _PLAIN_TAGS:
                _refuse(source, event, f"the tag {_short_tag(tag)} is not allowed: a spec holds "
                                       "strings, numbers, booleans, null, lists and mappings")
            if isinstance(event, yaml.CollectionStartEvent):
                open_counts.append(0)
                if len(open_counts) > MAX_DEPTH:
                    _refuse(source, event, f"the spec nests deeper than {MAX_DEPTH} levels")
    finally:
        parser.dispose()


def _refuse(source: str, event: yaml.Event, message: str) -> None:
    raise SpecError([SpecProblem(source, "", event.start_mark.line + 1, f"invalid YAML: {message}")])


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag


def _friendlier(text: str, source: str) -> SpecProblem | None:
    """PyYAML's own wording for a syntax error in a small file (libyaml's is terser)."""
    if len(text) > _FRIENDLY_MESSAGES_UP_TO:
        return None
    loader = _WordingLoader(text)
    try:
        while loader.check_event():
            loader.get_event()
    except yaml.MarkedYAMLError as error:
        return _yaml_problem(error, source)
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()
    return None


def _is_blank(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.value == "" and not node.style


def _yaml_problem(error: yaml.MarkedYAMLError, source: str) -> SpecProblem:
    mark = error.problem_mark or error.context_mark
    line = None if mark is None else mark.line + 1
    what = error.problem or "cannot parse"
    if error.context and "expected a single document" in error.context:
        what = "a spec holds one YAML document, but a second one starts here"
    elif error.context:
        what = f"{what} ({error.context})"
    return SpecProblem(source, "", line, f"invalid YAML: {what}")


@dataclass
class _Walk:
    """What a walk over the node tree fills in: lines, duplicate keys, refused values."""

    lines: LineMap
    problems: list[SpecProblem]
    refused: list[SpecProblem]
    source: str

    def refuse(self, path: Path, node: yaml.Node, message: str) -> None:
        self.refused.append(SpecProblem(self.source, format_path(path), node.start_mark.line + 1, message))


_CHECKER = _WordingLoader("")


def _walk(node: yaml.Node, path: Path, walk: _Walk) -> None:
    """Record the line of every field under `node`; report duplicate keys and bad scalars."""
    walk.lines.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        _walk_mapping(node, path, walk)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            walk.lines.lines[path + (index,)] = item.start_mark.line + 1
            _walk(item, path + (index,), walk)
    else:
        _check_scalar(node, path, walk)


def _check_scalar(node: yaml.Node, path: Path, walk: _Walk) -> None:
    """A scalar the constructor could not turn into a value, or one too big to hold."""
    value, tag = node.value, node.tag
    if len(value) > MAX_TEXT_VALUE:
        walk.refuse(path, node, f"a string is longer than {MAX_TEXT_VALUE} characters")
    elif tag in _CHECKED_TAGS and _CHECKER.resolve(yaml.ScalarNode, value, (True, False)) != tag:
        walk.refuse(path, node, f"{describe_text(value)} is not a valid {_short_tag(tag)}")
    elif tag == _CORE + "int" and sum(char.isdigit() for char in value) > MAX_INT_DIGITS:
        walk.refuse(path, node, f"an integer has more than {MAX_INT_DIGITS} digits")
    elif tag not in _PLAIN_TAGS:
        walk.refuse(path, node, f"the tag {_short_tag(tag)} is not allowed here")


def describe_text(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:60] + "...")


def _walk_mapping(node: yaml.MappingNode, path: Path, walk: _Walk) -> None:
    first_line: dict[str, int] = {}
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG:
            walk.refuse(path, key_node, "merge keys (<<) are not allowed: write the fields out")
            continue
        if not isinstance(key_node, yaml.ScalarNode):
            continue  # complex keys are refused by the constructor (unhashable)
        key, line = key_node.value, key_node.start_mark.line + 1
        _check_scalar(key_node, path, walk)
        if key in first_line:
            walk.problems.append(SpecProblem(walk.source, format_path(path + (key,)), line,
                                             f"duplicate key (first set at line {first_line[key]})"))
            continue
        first_line[key] = line
        walk.lines.lines[path + (key,)] = line
        _walk(value_node, path + (key,), walk)

"""Compose's variables: `${VAR}` interpolation and env files.

Interpolation runs over every string value of the file before anything else,
as docker compose does: `$VAR`, `${VAR}`, `${VAR:-default}` (unset or
empty), `${VAR-default}` (unset), `${VAR:?message}` / `${VAR?message}` (an
error), `${VAR:+other}` / `${VAR+other}`, and `$$` for a literal `$`. The
variables come from the caller's environment, then a `.env` file beside the
compose file (the environment wins). A variable that is not set becomes an
empty string with a warning, as in compose.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from .checks import Invalid
from .errors import PathPart
from .limits import MAX_TEXT_VALUE
from .report import Reporter

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<word>.*))?$", re.DOTALL)
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)\s*(?:=\s*(?P<value>.*?))?\s*$")
MAX_ENV_FILE_BYTES = 256 * 1024
_INTEGER = re.compile(r"^-?[0-9]{1,18}$")
_DECIMAL = re.compile(r"^-?[0-9]{1,18}\.[0-9]{1,18}$")


def interpolate(data: Any, environ: Mapping[str, str], rep: Reporter, unset: set[str]) -> Any:
    """`data` with every string value interpolated (keys are left as they are).

    Each variable that is not set is warned about once, where it is first used.
    """
    if isinstance(data, str):
        missing: list[str] = []
        try:
            text = interpolate_text(data, environ, missing)
        except Invalid as problem:
            rep.add(problem.message)
            return data
        for name in missing:
            if name not in unset:
                unset.add(name)
                rep.warn(f"variable {name} is not set; it becomes an empty string")
        return _as_number(text) if text != data else text
    if isinstance(data, list):
        return [interpolate(item, environ, rep.at(index), unset) for index, item in enumerate(data)]
    if isinstance(data, dict):
        return {key: interpolate(value, environ, rep.at(_part(key)), unset)
                for key, value in data.items()}
    return data


def _as_number(text: str) -> str | int | float:
    """`replicas: ${N:-2}` is the number 2, as compose reads it after interpolation."""
    if _INTEGER.match(text):
        return int(text)
    if _DECIMAL.match(text):
        return float(text)
    return text


def _part(key: Any) -> PathPart:
    return key if isinstance(key, (str, int)) else str(key)


def interpolate_text(text: str, environ: Mapping[str, str], missing: list[str]) -> str:
    """`text` with its variables filled in; names used but not set are added to `missing`.

    A scan rather than one regular expression, since defaults nest: ${A:-${B}}.
    """
    if "$" not in text:
        return text
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "$":
            out.append(char)
            index += 1
            continue
        following = text[index + 1:index + 2]
        if following == "$":
            out.append("$")
            index += 2
        elif following == "{":
            end = _closing_brace(text, index + 2)
            if end < 0:
                raise Invalid(f"an unclosed ${{ in {_shown(text)}: write $$ for a literal $")
            out.append(_braced(text[index + 2:end], environ, missing))
            index = end + 1
        else:
            match = _NAME.match(text, index + 1)
            if not match:
                raise Invalid(f"a lone $ in {_shown(text)}: write $$ for a literal $ "
                              "or ${NAME} for a variable")
            out.append(_value(match.group(), environ, missing))
            index = match.end()
        if sum(map(len, out)) > MAX_TEXT_VALUE:
            raise Invalid(f"is longer than {MAX_TEXT_VALUE} characters once its variables are filled in")
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    """Where the ${ opened just before `start` closes, counting nested ${...}; -1 if it does not."""
    depth = 1
    index = start
    while index < len(text):
        if text.startswith("${", index):
            depth += 1
            index += 2
            continue
        if text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return -1


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:60] + "...")


def _braced(inner: str, environ: Mapping[str, str], missing: list[str]) -> str:
    match = _BRACED.match(inner)
    if not match:
        raise Invalid(f"invalid variable reference ${{{inner}}}: write ${{NAME}}, ${{NAME:-default}} "
                      "or ${NAME:?message}")
    name, op, word = match["name"], match["op"], match["word"] or ""
    value = environ.get(name)
    empty_counts = bool(op) and op.startswith(":")  # the ':' forms treat empty like unset
    absent = value is None or (empty_counts and value == "")
    if op is None:
        return _value(name, environ, missing)
    kind = op[-1]
    if kind == "-":
        return interpolate_text(word, environ, missing) if absent else str(value)
    if kind == "+":
        return "" if absent else interpolate_text(word, environ, missing)
    if absent:  # "?"
        raise Invalid(f"variable {name} is required: {word or 'it is not set'}")
    return str(value)


def _value(name: str, environ: Mapping[str, str], missing: list[str]) -> str:
    if name not in environ:
        missing.append(name)
        return ""
    return environ[name]


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (comments, blank lines, `export` and quotes as compose reads them).

    Raises Invalid naming the line that is not a variable.
    """
    text = read_small_text(path, MAX_ENV_FILE_BYTES)
    variables: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _ENV_LINE.match(line)
        if not match:
            raise Invalid(f"{path}:{number}: expected KEY=VALUE, got {line.strip()[:60]!r}")
        variables[match["key"]] = _unquote(match["value"] or "")
    return variables


def read_small_text(path: Path, limit: int) -> str:
    """A UTF-8 file of at most `limit` bytes, read without ever holding more. Raises Invalid."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as error:
        raise Invalid(f"cannot read {path}: {error.strerror or error}") from None
    if len(raw) > limit:
        raise Invalid(f"{path} is larger than {limit // 1024} KiB")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid(f"{path} is not UTF-8 text") from None


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        inner = value[1:-1]
        return inner.replace("\\n", "\n").replace('\\"', '"') if value[0] == '"' else inner
    return re.sub(r"\s+#.*$", "", value)  # an unquoted value ends at a comment

"""Problems found in a task spec, and the one exception that carries them.

Validation collects every problem of a file before it fails, so a user fixes
a spec in one round instead of one error at a time. Each problem names the
file, the field (a path like ``tasks[1].resources.memory``) and the line.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Iterable

# One step into a spec: a mapping key or a list index.
PathPart = str | int
Path = tuple[PathPart, ...]

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_MAX_SHOWN = 60


@dataclass(frozen=True)
class SpecProblem:
    """One thing wrong with a spec. `line` is 1-based, None when unknown (JSON input)."""

    source: str
    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SpecError(ValueError):
    """A spec is invalid; `problems` lists everything wrong with it."""

    def __init__(self, problems: Iterable[SpecProblem]) -> None:
        self.problems: tuple[SpecProblem, ...] = tuple(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)

    def to_dicts(self) -> list[dict[str, Any]]:
        """The problems as the API returns them: `[{source, path, line, message}]`."""
        return [problem.to_dict() for problem in self.problems]


def format_path(path: Path) -> str:
    """("tasks", 1, "resources", "memory") -> "tasks[1].resources.memory"."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


def describe(value: Any) -> str:
    """Show a user's value in a message, the way they would write it in YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and abs(value) >= 10**_MAX_SHOWN:
        return "a number of more than 60 digits"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        shown = value if len(value) <= _MAX_SHOWN else value[:_MAX_SHOWN] + "..."
        return repr(shown)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"

"""What the compose modules share: where a file lives, the task being written, key checks.

compose.py converts services; compose_deploy.py their `deploy:` and
compose_files.py their secrets and configs. They meet here, so none imports
another's internals.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .checks import Invalid
from .compose_env import read_env_file
from .compose_keys import IGNORED, REFUSED
from .errors import Path as SpecPath, PathPart, describe
from .report import Reporter


@dataclass(frozen=True)
class ComposeContext:
    """Where a compose file lives (for env_file, .env and secrets) and its variables."""

    base_dir: Path | None = None
    environ: Mapping[str, str] = field(default_factory=dict)
    dotenv_problem: str | None = None  # a .env beside the file that could not be read

    @classmethod
    def for_file(cls, path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> "ComposeContext":
        """The file's directory, and the environment over a `.env` beside it (the environment wins)."""
        base = Path(path).resolve().parent
        variables: dict[str, str] = {}
        problem = None
        dotenv = base / ".env"
        if dotenv.is_file():
            try:
                variables.update(read_env_file(dotenv))
            except Invalid as error:
                problem = error.message
        variables.update(os.environ if environ is None else environ)
        return cls(base_dir=base, environ=variables, dotenv_problem=problem)


def beside(path: str, context: ComposeContext, rep: Reporter) -> Path | None:
    """A file named in the compose file, relative to its directory."""
    if context.base_dir is None:
        rep.add(f"{path} is read beside the compose file, which is not at hand here: "
                "run taskorg convert FILE and submit its output")
        return None
    return context.base_dir / os.path.expanduser(path)



def check_compose_keys(data: Mapping[Any, Any], table: Mapping[str, tuple[str, str]], rep: Reporter, what: str) -> None:
    """Warn about ignored keys, refuse refused and unknown ones; `x-` extensions pass."""
    for key in data:
        name = str(key)
        if name.startswith("x-"):
            continue
        status, note = table.get(name, (None, ""))
        if status == IGNORED:
            rep.at(name).warn(f"ignored: {note}")
        elif status == REFUSED:
            rep.at(name).add(f"not supported: {note}")
        elif status is None:
            close = rep.budget.closest(name, list(table))
            hint = f" (did you mean {close!r}?)" if close else ""
            rep.at(name).add(f"unknown compose {what} {describe(name)}{hint}")


@dataclass
class TaskOut:
    """The task being written, and where each of its fields came from."""

    task: dict[str, Any]
    origins: dict[str, SpecPath]
    base: SpecPath

    def copy(self, body: Mapping[Any, Any], key: str, field_name: str | None = None) -> None:
        if body.get(key) is not None:
            self.set(field_name or key, body[key], key)

    def set(self, field_name: str, value: Any, *origin: PathPart) -> None:
        if value is None or value == {} or value == []:
            return
        self.task[field_name] = value
        self.origins[field_name] = self.base + origin


def labels_of(value: Any, rep: Reporter) -> dict[Any, Any] | None:
    if isinstance(value, list):
        labels: dict[Any, Any] = {}
        for index, item in enumerate(value):
            if not isinstance(item, str):
                rep.at(index).add(f"must be a KEY=VALUE string, got {describe(item)}")
                continue
            key, _, text = item.partition("=")
            labels[key] = text
        return labels
    return value


def gpus_of(value: Any, rep: Reporter) -> Any:
    """`gpus: all`, or a list of one request (driver, count, device_ids, capabilities)."""
    if isinstance(value, list):
        if len(value) != 1:
            rep.add("one GPU request per service is supported, got " + str(len(value)))
            return None
        request = value[0]
        return {key: val for key, val in request.items() if key != "options"} if isinstance(request, dict) else request
    return value

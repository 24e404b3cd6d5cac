"""The submit page's logic: read the spec from the form, place problems on lines.

A problem from `POST /v1/jobs` carries `{source, path, line, message}`; the
page shows every line of the spec numbered, with each problem right under
the line it names, so a user sees *where* as well as *what*.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import FileStorage

PASTED_SOURCE = "pasted.yaml"
MAX_SPEC_BYTES = 512 * 1024
_SAFE_SOURCE = re.compile(r"[^A-Za-z0-9_.-]+")


class SpecInputError(ValueError):
    """The form carried no usable spec (empty, binary, too big)."""


@dataclass
class Line:
    number: int
    text: str
    problems: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Annotated:
    lines: list[Line]
    # Problems with no line (or a line outside the text): shown above the listing.
    general: list[dict[str, Any]]

    @property
    def first_bad_line(self) -> int | None:
        return next((line.number for line in self.lines if line.problems), None)


def source_name(filename: str | None) -> str:
    """A short, safe name for error messages: the uploaded file's base name."""
    if not filename:
        return PASTED_SOURCE
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return _SAFE_SOURCE.sub("_", base)[:80] or PASTED_SOURCE


def read_spec(form: Any, files: Any) -> tuple[str, str]:
    """(spec text, source name) from an upload, else from the pasted text."""
    upload: FileStorage | None = files.get("file")
    if upload is not None and upload.filename:
        data = upload.read(MAX_SPEC_BYTES + 1)
        if len(data) > MAX_SPEC_BYTES:
            raise SpecInputError(f"{upload.filename}: too big for a spec (more than {MAX_SPEC_BYTES // 1024} KiB)")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SpecInputError(f"{upload.filename}: not UTF-8 text; a spec is a YAML file") from None
        return text, source_name(upload.filename)
    text = str(form.get("spec", ""))
    return text, source_name(form.get("source") or None)


def _line_number(problem: dict[str, Any]) -> int | None:
    try:
        line = int(problem.get("line"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return line if line > 0 else None


def annotate(text: str, problems: list[dict[str, Any]], source: str | None = None) -> Annotated:
    """Attach each problem to its line (1-based, as the API reports it)."""
    lines = [Line(number, content) for number, content in enumerate(text.splitlines() or [""], start=1)]
    general: list[dict[str, Any]] = []
    for problem in problems:
        if not isinstance(problem, dict):
            general.append({"message": str(problem)})
            continue
        number = _line_number(problem)
        other_file = source and problem.get("source") not in (None, "", source)
        if number is None or number > len(lines) or other_file:
            general.append(problem)
        else:
            lines[number - 1].problems.append(problem)
    return Annotated(lines, general)

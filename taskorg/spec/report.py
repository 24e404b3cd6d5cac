"""A problem collector that knows where it stands in the spec.

Validators receive a `Reporter` positioned at the field they check and call
`add(message)`; the reporter turns that into a SpecProblem with the full path
and the line. Sharing one list between reporters lets every problem of a file
be collected before anything fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import Path, PathPart, SpecError, SpecProblem, format_path
from .limits import MAX_PROBLEMS, Budget
from .source import LineMap


@dataclass
class Reporter:
    source: str
    lines: LineMap = field(default_factory=LineMap)
    problems: list[SpecProblem] = field(default_factory=list)
    path: Path = ()
    budget: Budget = field(default_factory=Budget)
    warnings: list[SpecProblem] = field(default_factory=list)

    def at(self, *parts: PathPart) -> "Reporter":
        """A reporter for a field below this one, sharing the same lists and budget."""
        return Reporter(self.source, self.lines, self.problems, self.path + parts, self.budget,
                        self.warnings)

    def warn(self, message: str) -> None:
        """Something accepted but not honoured (a compose key that means nothing here)."""
        if len(self.warnings) < MAX_PROBLEMS:
            self.warnings.append(self._problem(message))

    def add(self, message: str) -> None:
        if len(self.problems) >= MAX_PROBLEMS:
            self.budget.dropped += 1
            return
        self.problems.append(self._problem(message))

    def _problem(self, message: str) -> SpecProblem:
        return SpecProblem(self.source, format_path(self.path), self.lines.line(self.path), message)

    def check_time(self) -> None:
        """Give up on a spec that has taken its whole time budget (SpecError)."""
        if self.budget.expired():
            raise SpecError([SpecProblem(self.source, "", None,
                                         f"checking the spec took longer than {self.budget.seconds:g} s: "
                                         "it is too large or too complex")])

    @property
    def count(self) -> int:
        return len(self.problems)

    def raise_if_any(self) -> None:
        """Raise SpecError with every problem so far, in file order."""
        if self.problems:
            problems = sorted(self.problems, key=lambda p: p.line or 0)
            if self.budget.dropped:
                problems.append(SpecProblem(self.source, "", None,
                                            f"... and {self.budget.dropped} more problems"))
            raise SpecError(problems)

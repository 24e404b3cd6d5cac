"""How much a spec may hold, and how long checking one may take.

A spec comes from anyone who may submit, and the parser runs inside the
master's request threads: no input may crash it (an exception other than
SpecError is an HTTP 500) or keep it busy. Every limit here is far above what
a real job needs; each one closes a known way to make a small input costly
(deep nesting, alias bombs, huge integers, thousands of misspelt names).
"""

from __future__ import annotations

import difflib
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

MAX_TEXT_BYTES = 1024 * 1024  # spec text, YAML or JSON
MAX_CANONICAL_BYTES = 2 * 1024 * 1024  # the canonical JSON of an accepted job (defaults filled in)
MAX_DEPTH = 32  # nested mappings and lists
MAX_ITEMS = 1000  # entries of one mapping or list
MAX_NODES = 250_000  # keys and values in the whole document
MAX_INT_DIGITS = 40  # 64-bit values need 20; Python refuses to parse 4,301
MAX_TEXT_VALUE = 64 * 1024  # characters of one string
MAX_SUGGESTIONS = 50  # "did you mean" searches per spec (difflib is quadratic)
MAX_SUGGEST_AMONG = 200  # names a suggestion is searched among
MAX_SUGGESTED_NAME = 64  # characters of a name a suggestion is searched for
MAX_PROBLEMS = 200  # problems reported for one spec
TIME_BUDGET_S = 3.0  # CPU seconds to check one spec, from text to JobSpec (a 1 MiB job takes ~1)


@dataclass
class Budget:
    """The work left for one spec: a deadline and a number of suggestion searches.

    Shared by every Reporter of a spec, so the whole file draws on one budget.
    The deadline counts this thread's CPU time, not the clock: on a busy
    master a valid spec must not fail because other threads had the CPU.
    """

    seconds: float = field(default_factory=lambda: TIME_BUDGET_S)
    suggestions: int = MAX_SUGGESTIONS
    dropped: int = 0  # problems past MAX_PROBLEMS, counted but not listed

    def __post_init__(self) -> None:
        self.deadline = time.thread_time() + self.seconds

    def expired(self) -> bool:
        return time.thread_time() > self.deadline

    def closest(self, name: str, known: Sequence[str]) -> str | None:
        """The known name closest to `name` ("did you mean"), within the suggestion budget."""
        if len(known) > MAX_SUGGEST_AMONG or len(name) > MAX_SUGGESTED_NAME or self.suggestions <= 0:
            return None
        self.suggestions -= 1
        close = difflib.get_close_matches(name, known, n=1)
        return close[0] if close else None


def data_problem(data: Any) -> str | None:
    """What makes already-parsed data (JSON) too big or too deep, or None.

    Iterative, so deep input cannot exhaust the stack; stops at the first problem.
    """
    stack: list[tuple[Any, int]] = [(data, 1)]
    nodes = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            return f"the spec holds more than {MAX_NODES} values"
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                return f"the spec nests deeper than {MAX_DEPTH} levels"
            if len(value) > MAX_ITEMS:
                kind = "mapping" if isinstance(value, dict) else "list"
                return f"a {kind} holds more than {MAX_ITEMS} entries"
            items = list(value.items()) if isinstance(value, dict) else value
            if isinstance(value, dict):
                for key, item in items:
                    stack.append((key, depth + 1))
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in items)
        else:
            problem = scalar_problem(value)
            if problem:
                return problem
    return None


def scalar_problem(value: Any) -> str | None:
    """Why one plain value is unacceptable (a huge number or string, a foreign type), or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        if value.bit_length() > MAX_INT_DIGITS * 10 // 3:
            return f"an integer has more than {MAX_INT_DIGITS} digits"
        return None
    if isinstance(value, float):
        return None
    if isinstance(value, str):
        if len(value) > MAX_TEXT_VALUE:
            return f"a string is longer than {MAX_TEXT_VALUE} characters"
        return None
    return f"a value of type {type(value).__name__} is not plain data (strings, numbers, booleans, null, lists, mappings)"

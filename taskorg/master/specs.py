"""Parsed task specs, kept per task id, so a scheduling tick does not re-parse thousands of them.

A task's spec changes only with an update (cancel and restart keep it),
so the parsed spec for a task id stays right; the text is compared anyway,
which costs far less than parsing it. The specs handed out are shared:
callers read them and never change them (the master's are frozen TaskSpecs).
"""

from __future__ import annotations

import json
import threading
from typing import Callable, Generic, TypeVar

# Bounded: past this many tasks the cache starts over (a tick then parses once more).
MAX_SPECS = 50_000
S = TypeVar("S")


class SpecCache(Generic[S]):
    def __init__(self, parse: Callable[[str], S] = json.loads) -> None:
        self.lock = threading.Lock()
        self.parse = parse
        self.specs: dict[str, tuple[str, S]] = {}

    def get(self, task_id: str, text: str) -> S:
        with self.lock:
            cached = self.specs.get(task_id)
        if cached is not None and cached[0] == text:
            return cached[1]
        spec = self.parse(text)
        with self.lock:
            if len(self.specs) >= MAX_SPECS:
                self.specs.clear()
            self.specs[task_id] = (text, spec)
        return spec

    def known(self, task_id: str) -> S | None:
        """The parsed spec when it is cached (no text at hand to check against)."""
        with self.lock:
            cached = self.specs.get(task_id)
        return cached[1] if cached is not None else None

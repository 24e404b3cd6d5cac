"""Ask a slave for its containers at a moment the master picks, instead of waiting for its next report.

Why: slaves report on change (docker's events) and otherwise resync only every
`report_resync_interval` (5 s). Two moments need the truth sooner: the end of a
missing container's grace (`reconcile`'s `recheck`: a container removed just
after it started is placed again when the grace ends, not a resync later), and
a node that comes back alive (after a false death its duplicates are stopped at
once). One timer per node at most; an earlier moment replaces a later one.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from taskorg.logs import get_logger

log = get_logger("master.relist")
SLACK = 0.1  # seconds after the grace ends: the listing must find it over


class Relister:
    def __init__(self, relist: Callable[[str], None]) -> None:
        self._relist = relist
        self._lock = threading.Lock()
        self._due: dict[str, tuple[float, threading.Timer]] = {}

    def at(self, node: str, delay: float) -> None:
        """List `node` again in `delay` seconds (or sooner, if that is already planned)."""
        due = time.monotonic() + max(0.0, delay)
        with self._lock:
            current = self._due.get(node)
            if current is not None and current[0] <= due:
                return
            if current is not None:
                current[1].cancel()
            timer = threading.Timer(max(0.0, delay), self._run, args=(node, due))
            timer.daemon = True
            timer.name = f"relist-{node}"
            self._due[node] = (due, timer)
        timer.start()

    def planned(self) -> dict[str, float]:
        """Node -> seconds until its listing (for tests and logs)."""
        now = time.monotonic()
        with self._lock:
            return {node: due - now for node, (due, _) in self._due.items()}

    def cancel(self) -> None:
        with self._lock:
            timers, self._due = [timer for _, timer in self._due.values()], {}
        for timer in timers:
            timer.cancel()

    def _run(self, node: str, due: float) -> None:
        with self._lock:
            current = self._due.get(node)
            if current is None or current[0] != due:
                return  # replaced by an earlier one, or cancelled
            del self._due[node]
        try:
            self._relist(node)
        except Exception as exc:  # the slave's next report tells
            log.info("listing a slave again failed", extra={"node": node, "error": str(exc)})

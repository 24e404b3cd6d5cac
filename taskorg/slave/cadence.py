"""When the slave reports: pure, the clock passed in (the reporter's thread does the waiting).

Why not every second: an idle slave's reports were nearly all of its CPU and a good part of the
master's. A change (docker's event stream: a container started, died, stopped, was removed or changed
health; or a new master raised the epoch) is reported after `coalesce` (50 ms), so a burst such as
`docker rm -f` (kill, die, destroy) or a job's containers dying together goes as one report. Without
changes a full report goes every `resync` seconds after the last delivered one: it carries the telemetry,
and corrects anything an event did not say (a missed event, a report lost on the way). A report that was
not delivered is tried again after `retry` seconds, whatever it carried, so a failover or a dockerd
restart delays the master's news by `retry` at most. Every report is a full listing, so one delivered
report makes every earlier one moot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

COALESCE = 0.05  # seconds: a burst of docker events becomes one report


@dataclass
class Cadence:
    resync: float
    retry: float
    coalesce: float = COALESCE
    # When the next full report is due without any change (0.0: at once, the first report).
    next_resync: float = 0.0
    # When the first change not yet in a listing is to be reported (None: no such change).
    change_due: float | None = None

    def changed(self, now: float) -> None:
        """A change to report; one already waiting is not pushed back (the burst joins it)."""
        if self.change_due is None:
            self.change_due = now + self.coalesce

    def due(self) -> float:
        """The clock time the next report is due (never inf: the resync always comes)."""
        return min(self.next_resync, math.inf if self.change_due is None else self.change_due)

    def start(self, now: float) -> str:
        """A report starts now (its listing comes after this): the changes so far are in it. Its reason,
        `change` or `resync`, for the metrics and logs."""
        reason = "change" if self.change_due is not None and self.change_due <= now else "resync"
        self.change_due = None
        return reason

    def done(self, now: float, delivered: bool) -> None:
        """The report ended: the next resync counts from a delivery; an undelivered one is tried again
        after `retry`. A change that came during the report is still waiting (`change_due`)."""
        self.next_resync = now + (self.resync if delivered else self.retry)

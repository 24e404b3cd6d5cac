"""Long polls on the membership: the active master hears of a change instead of asking five times a second.

The master acts on who is alive, draining or gone, on addresses and labels,
and on the master and the epoch. Asking the arbiter for the whole member
list on every tick was the largest part of an idle master's CPU (and of
the DNS services relaying it, by py-spy). Now it asks with the version it
holds, and the arbiter answers when that part of the view changes, or
after `MAX_WAIT` seconds at most (so replica positions, last-heard times
and the consensus group, which change without notice, are never older).

The arbiter's DNS tick compares the view's key only while someone waits;
a watch that comes in compares it first, so nothing that changed while no
one waited goes unseen. The version starts from the clock, so a new
arbiter's never matches its predecessor's by chance.
"""

from __future__ import annotations

import threading
import time
from typing import Hashable

MAX_WAIT = 1.5  # seconds a watch is held at most (under the relay's timeout)
MAX_WATCHERS = 4  # watches held at once; more are answered at once (threads are few)


class MembershipWatch:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.version = time.time_ns() // 1_000_000
        self.key: Hashable | None = None
        self.waiting = 0

    def wanted(self) -> bool:
        return self.waiting > 0

    def observe(self, key: Hashable) -> None:
        """The view's key now: a different one moves the version and wakes every watch."""
        with self.cond:
            if key != self.key:
                self.key = key
                self.version += 1
                self.cond.notify_all()

    def wait(self, since: int, timeout: float) -> int:
        """Wait until the version is not `since` (at most `timeout`, capped); the version then."""
        with self.cond:
            if self.version == since and self.waiting < MAX_WATCHERS:
                self.waiting += 1
                try:
                    self.cond.wait_for(lambda: self.version != since, min(max(0.0, timeout), MAX_WAIT))
                finally:
                    self.waiting -= 1
            return self.version

"""Login throttling and logged-out sessions, as pure bookkeeping with the clock passed in.

A login form is a password oracle: without a limit, a script on the LAN can
try guesses as fast as the server answers. And a signed cookie stays valid
until it expires unless the server remembers that its session ended, so a
logout must be recorded, not only the cookie cleared in one browser.
"""

from __future__ import annotations

import threading
from collections import deque

# Failed logins allowed per source address within the window, then 429 until the oldest ages out.
FAILURES_ALLOWED = 5
FAILURE_WINDOW = 60.0
# A source address table this large is pruned of its oldest entries (a flood of sources costs bounded memory).
SOURCES_KEPT = 4096


class LoginThrottle:
    """At most FAILURES_ALLOWED failed logins per source address per FAILURE_WINDOW seconds."""

    def __init__(self, allowed: int = FAILURES_ALLOWED, window: float = FAILURE_WINDOW) -> None:
        self.allowed = allowed
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait_before_next(self, source: str, now: float) -> float:
        """Seconds `source` must wait before its next attempt (0: it may try now)."""
        with self._lock:
            failures = self._recent(source, now)
            if len(failures) < self.allowed:
                return 0.0
            return max(0.0, failures[0] + self.window - now)

    def failed(self, source: str, now: float) -> None:
        with self._lock:
            self._recent(source, now).append(now)
            if len(self._failures) > SOURCES_KEPT:
                oldest = min(self._failures, key=lambda s: self._failures[s][-1] if self._failures[s] else 0.0)
                del self._failures[oldest]

    def succeeded(self, source: str) -> None:
        with self._lock:
            self._failures.pop(source, None)

    def _recent(self, source: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(source, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures


class EndedSessions:
    """Session ids that logged out, kept until their cookie would have expired anyway."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self._ended: dict[str, float] = {}  # session id -> when its cookie expires at the latest
        self._lock = threading.Lock()

    def end(self, session_id: str, now: float) -> None:
        with self._lock:
            self._ended = {s: until for s, until in self._ended.items() if until > now}
            self._ended[session_id] = now + self.lifetime

    def ended(self, session_id: str) -> bool:
        with self._lock:
            return session_id in self._ended

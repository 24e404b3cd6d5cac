"""systemd's notify protocol: READY=1 once a service serves, WATCHDOG=1 only while it is alive.

The units are `Type=notify` with `WatchdogSec=`: systemd restarts a service whose
pings stop, so a hung service is restarted, not only a dead one. The protocol is
one datagram per message to the AF_UNIX socket named by $NOTIFY_SOCKET, so it is
written here by hand (a few lines) rather than through python-systemd, a C
extension built against libsystemd. Without $NOTIFY_SOCKET (a local cluster,
tests, a shell) every call does nothing.

A ping thread that pinged unconditionally would keep a hung service alive, so
the watchdog pings only while every liveness check of the process passes (the
HTTP server's loop turned lately, the master's tick loop ran lately, ...).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Callable, Mapping

from taskorg.logs import get_logger

log = get_logger("sdnotify")

# A liveness check: None while alive, else why not (logged once when pings stop).
Check = Callable[[], "str | None"]


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send `state` (e.g. "READY=1") to systemd; False when not run by systemd or the send failed."""
    environ = os.environ if environ is None else environ
    address = environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
        return True
    except OSError as exc:
        log.warning("systemd notification failed", extra={"state": state, "error": str(exc)})
        return False


def watchdog_seconds(environ: Mapping[str, str] | None = None) -> float | None:
    """The unit's WatchdogSec, from $WATCHDOG_USEC (None when off or meant for another process)."""
    environ = os.environ if environ is None else environ
    pid = environ.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None


class Beat:
    """When a loop last went round: it calls `mark()` each turn; `stale(limit)` says if it stopped."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._last: float | None = None

    def mark(self) -> None:
        self._last = time.monotonic()

    def stale(self, limit: float) -> str | None:
        """None while the loop has not started yet or went round within `limit` seconds."""
        if self._last is None:
            return None
        age = time.monotonic() - self._last
        return f"{self.name} has not gone round for {age:.1f} s" if age > limit else None


class Watchdog:
    """Pings systemd's watchdog from a thread, at a third of WatchdogSec, while every check passes."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        self.interval = watchdog_seconds(self.environ)
        self._checks: list[Check] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, check: Check) -> Check:
        with self._lock:
            self._checks.append(check)
        return check

    def unwatch(self, check: Check) -> None:
        with self._lock:
            if check in self._checks:
                self._checks.remove(check)

    def why_not_alive(self) -> str | None:
        with self._lock:
            checks = list(self._checks)
        for check in checks:
            problem = check()
            if problem:
                return problem
        return None

    def start(self) -> bool:
        """Start pinging; False (and no thread) when systemd asked for no watchdog."""
        if self.interval is None or self._thread is not None:
            return False
        self._thread = threading.Thread(target=self._run, name="sd-watchdog", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        assert self.interval is not None
        silent_because: str | None = None
        while not self._stopped.wait(self.interval / 3):
            problem = self.why_not_alive()
            if problem is None:
                notify("WATCHDOG=1", self.environ)
            elif problem != silent_because:
                log.error("service not alive: watchdog pings stop, systemd will restart it",
                          extra={"reason": problem})
            silent_because = problem


_process_watchdog = Watchdog()


def process_watchdog() -> Watchdog:
    """The one watchdog of this service process (each service is one process and one unit)."""
    return _process_watchdog


def ready(status: str = "") -> bool:
    """Tell systemd the service serves now (Type=notify units wait for this)."""
    return notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

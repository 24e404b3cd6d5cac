"""The master's view of cluster membership, from the DNS service (the arbiter).

Liveness is the DNS service's call, not the master's: one judge for "dead"
everywhere. When the DNS service cannot be reached, the last view is kept
and `refresh` says so, so nobody is declared dead on a blip.

The active master follows the view with a long poll (`follow`,
taskorg.dns.watch) straight to the arbiter, and its tick runs at once when
the view moves (a death is heard within the arbiter's 50 ms tick); asking
for the whole list on every tick was most of an idle master's CPU.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from taskorg.config import Config
from taskorg.logs import get_logger
from taskorg.net.client import ServiceClient, ServiceError, ServiceUnavailable

log = get_logger("master")
WATCH_WAIT = 1.5  # seconds the arbiter holds a watch at most (taskorg.dns.watch.MAX_WAIT)
FRESH_FOR = 4.0  # a view this old or younger is current: a watch answers every 1.5 s at least
RETRY_AFTER = 0.2  # after a failed watch
INACTIVE_WAIT = 1.0  # a standby looks at its role on its own this often (a role change wakes it at once)


class MemberCache:
    def __init__(self, config: Config, secret: str) -> None:
        self.config = config
        self.secret = secret
        self.client = ServiceClient(config.dns_api_url, secret, timeout=0.5)
        self.arbiters: dict[str, ServiceClient] = {}  # the arbiter's own DNS service, for the watch
        self.lock = threading.Lock()
        self.view: dict[str, Any] = {"members": [], "master": None, "epoch": 0}
        self.fetched_at = 0.0

    def refresh(self) -> bool:
        try:
            view = self.client.get("/v1/members")
        except (ServiceUnavailable, ServiceError):
            return False
        self._keep(view)
        return True

    def _keep(self, view: dict[str, Any]) -> None:
        with self.lock:
            self.view = view
            self.fetched_at = time.monotonic()

    def current(self) -> bool:
        """Whether the view is recent enough to act on (a watch or a refresh answered lately)."""
        with self.lock:
            return self.fetched_at > 0 and time.monotonic() - self.fetched_at <= FRESH_FOR

    def follow(self, active: Callable[[], bool], changed: Callable[[], None], stop: threading.Event,
               role_moved: threading.Event | None = None) -> None:
        """While `active()` (this master holds the role), keep the view current with long polls;
        `changed()` when what the master acts on moved. Runs until `stop` is set. A standby waits for
        `role_moved` (set when its role changes) rather than looking ten times a second."""
        while not stop.is_set():
            if not active():
                if role_moved is None:
                    stop.wait(0.1)
                else:
                    role_moved.wait(INACTIVE_WAIT)
                    role_moved.clear()  # active() is looked at again before anything else
                continue
            with self.lock:
                version, arbiter = self.view.get("version"), self.view.get("arbiter")
            try:
                if version is None:
                    view = self.client.get("/v1/members")
                else:
                    view = self._watcher(arbiter).get("/v1/members", params={"since": version, "wait": WATCH_WAIT},
                                                      timeout=WATCH_WAIT + 1.0)
            except (ServiceUnavailable, ServiceError) as exc:
                with self.lock:
                    self.view = {**self.view, "version": None}  # start over from the local DNS service
                log.debug("membership watch failed", extra={"error": str(exc)})
                stop.wait(RETRY_AFTER)
                continue
            moved = view.get("version") != version
            self._keep(view)
            if moved:
                changed()

    def _watcher(self, arbiter: Any) -> ServiceClient:
        """A client to the arbiter's DNS service itself (no relay hop); the local one when unknown."""
        if not isinstance(arbiter, str) or not arbiter:
            return self.client
        if arbiter not in self.arbiters:
            self.arbiters = {arbiter: ServiceClient(self.config.url(arbiter, self.config.dns_api_port), self.secret,
                                                    timeout=0.5)}
        return self.arbiters[arbiter]

    def granted_epoch(self) -> int | None:
        """The master epoch the DNS service has granted last (None: it cannot be asked now)."""
        try:
            answer = self.client.get("/v1/master")
        except (ServiceUnavailable, ServiceError):
            return None
        epoch = answer.get("epoch") if isinstance(answer, dict) else None
        return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None

    def members(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.view["members"])

    def alive_nodes(self) -> list[str]:
        return [m["node"] for m in self.members() if m["alive"]]

    def draining_nodes(self) -> set[str]:
        return {m["node"] for m in self.members() if m["state"] == "draining"}

    def placeable(self) -> list[dict[str, Any]]:
        return [m for m in self.members() if m["alive"] and m["state"] == "active"]

    def address(self, node: str) -> str | None:
        return next((m["address"] for m in self.members() if m["node"] == node), None)

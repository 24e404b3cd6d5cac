"""The master's view of cluster membership, from the DNS service (the arbiter).

Liveness is the DNS service's call, not the master's: one judge for "dead"
everywhere. When the DNS service cannot be reached, the last view is kept
and `refresh` says so, so nobody is declared dead on a blip.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from taskorg.config import Config
from taskorg.net.client import ServiceClient, ServiceError, ServiceUnavailable


class MemberCache:
    def __init__(self, config: Config, secret: str) -> None:
        self.client = ServiceClient(config.dns_api_url, secret, timeout=0.5)
        self.node_dead_after = config.node_dead_after
        self.lock = threading.Lock()
        self.view: dict[str, Any] = {"members": [], "master": None, "epoch": 0}
        self.fetched_at = 0.0

    def refresh(self) -> bool:
        try:
            view = self.client.get("/v1/members")
        except (ServiceUnavailable, ServiceError):
            return False
        with self.lock:
            self.view = view
            self.fetched_at = time.monotonic()
        return True

    def granted_epoch(self) -> int | None:
        """The master epoch the DNS service has granted last (None: it cannot be asked now)."""
        try:
            answer = self.client.get("/v1/master")
        except (ServiceUnavailable, ServiceError):
            return None
        epoch = answer.get("epoch") if isinstance(answer, dict) else None
        return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None

    def next_death_in(self) -> float | None:
        """Seconds until the DNS service would first declare a member dead that is alive in our
        view, if it stays silent: the tick looks then instead of up to a tick later (every 0.1 s
        of that is 0.1 s more before a dead node's tasks run again). None: nobody is alive."""
        with self.lock:
            ages = [m["last_seen_ago"] for m in self.view["members"]
                    if m["alive"] and isinstance(m.get("last_seen_ago"), (int, float))]
            fetched_at = self.fetched_at
        since = time.monotonic() - fetched_at
        if not ages or since > 1.0:
            return None  # no view, or an old one (the DNS service is unreachable): just the beat
        return self.node_dead_after - max(ages) - since

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

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

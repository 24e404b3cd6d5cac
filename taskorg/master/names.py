"""Service names on the active master: after each tick, push the name map to the DNS services.

The master is the one process that knows which instances run and are
healthy; the DNS services are the ones that answer names. Each tick builds
the whole map (`taskorg.dns.service_names.name_map`, pure) from the running
instances on living nodes, and when it differs from the last map the DNS
services accepted, sends it (`PUT /v1/services`, relayed to the arbiter, which
commits it to the replicated cluster state under the master's epoch; every
DNS service then publishes it from its own replica). A push that fails is
simply tried again on the next tick: the map is whole, never a delta.
"""

from __future__ import annotations

import threading
from concurrent.futures import Executor

from taskorg.config import Config
from taskorg.dns.service_names import NameMap, ServedInstance, name_map
from taskorg.logs import get_logger
from taskorg.net.client import ServiceClient, ServiceError, ServiceUnavailable
from taskorg.protocol import ServiceNames, to_wire

log = get_logger("master.names")
PUSH_TIMEOUT = 2.0  # a relay to the arbiter and a Raft commit


class NamePusher:
    def __init__(self, config: Config, secret: str, pool: Executor) -> None:
        self.suffix = config.suffix
        self.client = ServiceClient(config.dns_api_url, secret, timeout=PUSH_TIMEOUT)
        self.pool = pool
        self.lock = threading.Lock()
        self.pushed: NameMap | None = None  # what the DNS services accepted last (None: nothing yet)
        self.wanted: tuple[int, NameMap] | None = None
        self.pushing = False
        self.warned: set[str] = set()
        self.failing = False

    def reset(self) -> None:
        """A new activation: push the whole map again, whatever an earlier term pushed."""
        with self.lock:
            self.pushed = None

    def update(self, epoch: int, rows: list[tuple[str, str, str, str | None]], addresses: dict[str, str]) -> None:
        """From the tick: (job, task, node, health) of the running instances and the living nodes'
        addresses; push the map if it changed (an instance on a node not alive is not named)."""
        served = [ServedInstance(job, task, addresses.get(node), health) for job, task, node, health in rows]
        result = name_map(served, self.suffix)
        for key, why in result.skipped.items():
            if key not in self.warned:
                self.warned.add(key)
                log.warning("no service name for a task", extra={"task": key, "reason": why})
        with self.lock:
            if result.names == self.pushed:
                return
            self.wanted = (epoch, result.names)
        self.retry()

    def retry(self) -> None:
        """Send the wanted map if the DNS services have not accepted it yet (a failed push, or a new map);
        the tick calls this when the map itself needs no rebuild."""
        with self.lock:
            if self.wanted is None or self.wanted[1] == self.pushed or self.pushing:
                return  # nothing new, or the push under way sends the newest map next
            self.pushing = True
        try:
            self.pool.submit(self._push)
        except RuntimeError:  # the engine is closing: nothing to publish any more
            with self.lock:
                self.pushing = False

    def _push(self) -> None:
        try:
            for _ in range(10):  # bounded: each round sends the newest map; the next tick resumes
                with self.lock:
                    if self.wanted is None or self.wanted[1] == self.pushed:
                        return
                    epoch, names = self.wanted
                try:
                    self.client.request("PUT", "/v1/services", json=to_wire(ServiceNames(epoch=epoch, names=names)))
                except (ServiceError, ServiceUnavailable) as exc:
                    if not self.failing:
                        log.warning("service names not published; retrying on the next tick",
                                    extra={"error": str(exc)})
                    self.failing = True
                    return
                self.failing = False
                with self.lock:
                    self.pushed = names
        finally:
            with self.lock:
                self.pushing = False

    def close(self) -> None:
        self.client.close()

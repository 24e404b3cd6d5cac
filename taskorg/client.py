"""A Python client for a taskorg cluster: finds the master by DNS, rides out failovers.

    from taskorg.client import Client
    client = Client.from_config(load_config())
    job = client.submit(open("examples/hello.yaml").read(), source="hello.yaml")

Every call resolves `master.<suffix>` afresh. While a failover is under way
(no answer, or a standby saying "not the master") it retries for up to
`failover_wait` seconds, then raises with the last error.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Iterator

from taskorg.config import Config
from taskorg.net.client import ServiceClient, ServiceError, ServiceUnavailable
from taskorg.net.resolve import ResolveError, resolve_master
from taskorg.secret import read_credential


class ClusterUnavailable(Exception):
    """No active master answered within the failover wait."""


class Client:
    def __init__(self, config: Config, secret: str, timeout: float = 15.0, failover_wait: float = 8.0) -> None:
        self.config = config
        self.secret = secret
        self.timeout = timeout
        self.failover_wait = failover_wait

    @classmethod
    def from_config(cls, config: Config, **kwargs: Any) -> "Client":
        return cls(config, read_credential(config), **kwargs)

    # ---- plumbing ----------------------------------------------------------------------------
    def master_address(self) -> str:
        return resolve_master(self.config)

    def call(self, method: str, path: str, retry: bool = True, **kwargs: Any) -> Any:
        deadline = time.monotonic() + (self.failover_wait if retry else 0)
        while True:
            try:
                address = self.master_address()
                client = ServiceClient(self.config.url(address, self.config.master_port), self.secret, self.timeout)
                try:
                    return client.request(method, path, **kwargs)
                finally:
                    client.close()
            except ServiceError as exc:
                # A standby, or a master whose standbys have not confirmed yet: try again.
                retriable = (exc.status == 409 and "not the master" in exc.message) or exc.status == 503
                if not retriable:
                    raise
                last: Exception = exc
            except (ServiceUnavailable, ResolveError) as exc:
                last = exc
            if time.monotonic() >= deadline:
                raise ClusterUnavailable(f"no active master at {self.config.master_name}: {last}") from None
            time.sleep(0.05)

    def dns(self) -> ServiceClient:
        return ServiceClient(self.config.dns_api_url, self.secret, timeout=5)

    # ---- tasks ------------------------------------------------------------------------------------
    def submit(self, text: str, source: str = "<input>", dry_run: bool = False) -> dict[str, Any]:
        params = {"source": source}
        if dry_run:
            params["dry_run"] = "1"
        # One key for every retry of this submission: the master stores it once.
        headers = {"Content-Type": "application/yaml", "Idempotency-Key": uuid.uuid4().hex}
        return self.call("POST", "/v1/jobs", params=params, data=text.encode(), headers=headers)

    def tasks(self, **filters: str | None) -> list[dict[str, Any]]:
        params = {k: v for k, v in filters.items() if v}
        return self.call("GET", "/v1/tasks", params=params)["tasks"]

    def task(self, task_id: str) -> dict[str, Any]:
        return self.call("GET", f"/v1/tasks/{task_id}")

    def cancel(self, task_id: str) -> dict[str, Any]:
        return self.call("DELETE", f"/v1/tasks/{task_id}")

    def restart(self, task_id: str) -> dict[str, Any]:
        return self.call("POST", f"/v1/tasks/{task_id}/restart")

    def logs(self, task_id: str, index: int = 0, tail: int = 200) -> dict[str, Any]:
        return self.call("GET", f"/v1/tasks/{task_id}/logs", params={"index": index, "tail": tail})

    def events(self, since: int = 0, wait: float = 10.0) -> list[dict[str, Any]]:
        """Events after id `since`; waits up to `wait` s for the first (long poll)."""
        return self.call("GET", "/v1/events", params={"since": since, "wait": wait}, timeout=wait + 15)["events"]

    def follow(self, since: int = 0, until: float | None = None) -> Iterator[dict[str, Any]]:
        """Every event after `since`, as it happens, across failovers, until `until` (monotonic)."""
        while until is None or time.monotonic() < until:
            for event in self.events(since, wait=5.0):
                since = event["id"]
                yield event

    def status(self) -> dict[str, Any]:
        return self.call("GET", "/v1/status")

    def state(self) -> dict[str, Any]:
        return self.call("GET", "/v1/state")

    # ---- members (the DNS service answers these even with no master) ---------------------------------
    def members(self) -> dict[str, Any]:
        return self.call("GET", "/v1/members")

    def dns_members(self) -> dict[str, Any]:
        client = self.dns()
        try:
            return client.get("/v1/members")
        finally:
            client.close()

    def drain(self, node: str) -> dict[str, Any]:
        client = self.dns()
        try:
            return client.post(f"/v1/members/{node}/drain")
        finally:
            client.close()

    def handover(self, node: str) -> dict[str, Any]:
        client = self.dns()
        try:
            return client.post("/v1/master", {"node": node})
        finally:
            client.close()

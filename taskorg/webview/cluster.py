"""The webview's view of the cluster, through the one master client (`taskorg.client`).

Pages must answer quickly, so the webview's budget for following a failover is
short: 3 tries over about 1.5 s. Longer would hold a server thread and the
user's click; the page polls again anyway. When that is not enough the caller
gets `MasterUnavailable`, which the pages turn into a friendly "master changing
over" state instead of an error page.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

from taskorg.client import Client, ClusterUnavailable, Connector, DnsUnavailable, RetryBudget, never_sent
from taskorg.config import Config
from taskorg.logstream import LogQuery
from taskorg.net.client import ServiceError
from taskorg.net.resolve import resolve_master
from taskorg.webview.jobs import job_rows

__all__ = ["ClusterApi", "DnsUnavailable", "LiveCluster", "MasterUnavailable", "SubmitResult", "never_sent"]

# Bounded retry: 3 tries over about 1.5 s.
BUDGET = RetryBudget(seconds=1.5, tries=3, pause=0.5)
# Read patiently once connected (a connect to a dead LAN host gives up in 0.5 s).
READ_TIMEOUT = 8.0

MasterUnavailable = ClusterUnavailable  # the pages' name for it


@dataclass(frozen=True)
class SubmitResult:
    """What `POST /v1/jobs` said: accepted, previewed or refused with problems."""

    ok: bool
    body: dict[str, Any]
    status: int


class ClusterApi(Protocol):
    """What the pages need from the cluster; tests may pass a fake."""

    def dns_members(self) -> dict[str, Any]: ...
    def status(self) -> dict[str, Any]: ...
    def members(self, history: bool = False) -> dict[str, Any]: ...
    def tasks(self, **filters: str) -> list[dict[str, Any]]: ...
    def task(self, task_id: str) -> dict[str, Any]: ...
    def logs(self, task_id: str, index: int, tail: int = 200) -> dict[str, Any]: ...
    def log_stream(self, task_id: str, index: int, query: LogQuery) -> Iterator[bytes]: ...
    def events(self, since: int) -> list[dict[str, Any]]: ...
    def jobs(self, limit: int, before: float | None = None) -> list[dict[str, Any]]: ...
    def submit(self, text: str, source: str, dry_run: bool = False) -> SubmitResult: ...
    def cancel(self, task_id: str) -> dict[str, Any]: ...
    def restart(self, task_id: str) -> dict[str, Any]: ...
    def drain(self, node: str) -> dict[str, Any]: ...
    def activate(self, node: str) -> dict[str, Any]: ...


class LiveCluster:
    """The real cluster, through the master client with the webview's short budget."""

    def __init__(self, config: Config, secret: str, resolver: Callable[[Config], str] = resolve_master,
                 sleep: Callable[[float], None] = time.sleep, connect: Connector | None = None) -> None:
        self.client = Client(config, secret, timeout=READ_TIMEOUT, budget=BUDGET, resolver=resolver, sleep=sleep,
                             connect=connect)

    def dns_members(self) -> dict[str, Any]:
        return self.client.dns_members()

    def status(self) -> dict[str, Any]:
        return self.client.status()

    def members(self, history: bool = False) -> dict[str, Any]:
        return self.client.members(history)

    def tasks(self, **filters: str) -> list[dict[str, Any]]:
        return self.client.tasks(**filters)

    def task(self, task_id: str) -> dict[str, Any]:
        return self.client.task(task_id)

    def logs(self, task_id: str, index: int, tail: int = 200) -> dict[str, Any]:
        """The last lines with Docker's timestamps (the log tab's stream goes on from the last one)."""
        return self.client.logs(task_id, index, LogQuery(tail=tail, timestamps=True))

    def log_stream(self, task_id: str, index: int, query: LogQuery) -> Iterator[bytes]:
        response = self.client.log_stream(task_id, index, query)
        try:
            yield from response.iter_content(chunk_size=None)
        finally:
            response.close()

    def events(self, since: int) -> list[dict[str, Any]]:
        """At most one page (500) of the master's events after id `since`, oldest first; no waiting."""
        return self.client.events(since, wait=0)

    def jobs(self, limit: int, before: float | None = None) -> list[dict[str, Any]]:
        """Newest jobs first. Interim: grouped here from every task summary, until the master
        serves `GET /v1/jobs?limit=&before=` itself (see docs/webview.md)."""
        return job_rows(self.tasks(), limit, before)

    def submit(self, text: str, source: str, dry_run: bool = False) -> SubmitResult:
        try:
            body = self.client.submit(text, source, dry_run)
        except ServiceError as exc:
            if exc.status == 400:
                return SubmitResult(False, {"error": exc.message, **exc.payload}, exc.status)
            raise
        return SubmitResult(True, dict(body or {}), 200 if dry_run else 201)

    def cancel(self, task_id: str) -> dict[str, Any]:
        return self.client.cancel(task_id)

    def restart(self, task_id: str) -> dict[str, Any]:
        return self.client.restart(task_id)

    def drain(self, node: str) -> dict[str, Any]:
        return self.client.drain(node)

    def activate(self, node: str) -> dict[str, Any]:
        return self.client.activate(node)

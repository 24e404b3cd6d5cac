"""The webview's view of the cluster: the active master's API and the DNS service's.

Every call resolves `master.<suffix>` afresh (the record has TTL 0: the point
is to follow a failover), and a short, bounded retry rides over the moment
when the old master is gone or a standby answers "not the master". When that
is not enough the caller gets `MasterUnavailable`, which the pages turn into
a friendly "master changing over" state instead of an error page.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import requests

from taskorg.config import Config
from taskorg.net.client import ServiceClient, ServiceError, ServiceUnavailable
from taskorg.net.resolve import ResolveError, resolve_master

# Bounded retry: 3 tries over about 1.5 s. Longer would hold a waitress
# thread and the user's click; the page polls again anyway.
TRIES = 3
RETRY_PAUSE = 0.5
# Connect fast (a dead LAN host must not stall a page), read patiently.
MASTER_TIMEOUT = (1.0, 8.0)
DNS_TIMEOUT = (1.0, 3.0)


class MasterUnavailable(Exception):
    """No active master answered within the retry budget (failover, DNS down).

    `maybe_applied` is True when a write may have reached a master before the
    connection broke: the user must check instead of blindly resubmitting.
    """

    def __init__(self, message: str, maybe_applied: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.maybe_applied = maybe_applied


class DnsUnavailable(Exception):
    """The DNS service (registry, elections) did not answer."""


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
    def members(self) -> dict[str, Any]: ...
    def tasks(self, **filters: str) -> list[dict[str, Any]]: ...
    def task(self, task_id: str) -> dict[str, Any]: ...
    def logs(self, task_id: str, index: int, tail: int = 200) -> dict[str, Any]: ...
    def events(self, since: int) -> list[dict[str, Any]]: ...
    def jobs(self, limit: int, before: float | None = None) -> list[dict[str, Any]]: ...
    def submit(self, text: str, source: str, dry_run: bool = False) -> SubmitResult: ...
    def cancel(self, task_id: str) -> dict[str, Any]: ...
    def restart(self, task_id: str) -> dict[str, Any]: ...
    def drain(self, node: str) -> dict[str, Any]: ...
    def activate(self, node: str) -> dict[str, Any]: ...


def is_not_master(exc: ServiceError) -> bool:
    return exc.status == 409 and "not the master" in exc.message


def never_sent(exc: ServiceUnavailable) -> bool:
    """True when the request surely never reached a server (refused, connect timeout).

    Only then may a write be retried: a connection that broke after sending
    may have been applied by a master that died before answering.
    """
    cause = exc.__context__
    if isinstance(cause, requests.ConnectTimeout):
        return True
    if isinstance(cause, requests.ConnectionError):
        text = str(cause)
        return "NewConnectionError" in text or "Connection refused" in text
    return False


class LiveCluster:
    """The real cluster, reached over HTTP with the cluster secret."""

    def __init__(self, config: Config, secret: str,
                 resolver: Callable[[Config], str] = resolve_master,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self._secret = secret
        self._resolve = resolver
        self._sleep = sleep

    # ---- plumbing ------------------------------------------------------------
    def _client(self, address: str, port: int) -> ServiceClient:
        return ServiceClient(self.config.url(address, port), self._secret)

    def _master_call(self, method: str, path: str, *, write: bool = False, **kwargs: Any) -> Any:
        """Call the active master, following a failover for up to ~1.5 s."""
        hint: str | None = None
        reason = "no answer"
        for attempt in range(TRIES):
            if attempt:
                self._sleep(RETRY_PAUSE)
            try:
                address = self._resolve(self.config)
            except ResolveError as exc:
                reason = str(exc)
                continue
            if hint and address == hint[1]:
                address = hint[0]  # DNS not rewritten yet: use the standby's pointer
            client = self._client(address, self.config.master_port)
            try:
                return client.request(method, path, timeout=MASTER_TIMEOUT, **kwargs)  # type: ignore[arg-type]
            except ServiceError as exc:
                if not is_not_master(exc):
                    raise
                reason = exc.message
                pointed = exc.payload.get("address")
                hint = (str(pointed), address) if pointed and pointed != address else None
            except ServiceUnavailable as exc:
                if write and not never_sent(exc):
                    raise MasterUnavailable(
                        "the master went away while handling this request; it may or may not have "
                        "been applied: check the task list before trying again", maybe_applied=True) from None
                reason = str(exc)
            finally:
                client.close()
        raise MasterUnavailable(f"master changing over, retrying ({reason})")

    def _dns_call(self, method: str, path: str) -> Any:
        client = self._client(self.config.dns_address, self.config.dns_api_port)
        try:
            return client.request(method, path, timeout=DNS_TIMEOUT)  # type: ignore[arg-type]
        except ServiceUnavailable as exc:
            raise DnsUnavailable(f"the DNS service at {self.config.dns_address} does not answer ({exc})") from None
        finally:
            client.close()

    # ---- reads ---------------------------------------------------------------
    def dns_members(self) -> dict[str, Any]:
        return dict(self._dns_call("GET", "/v1/members"))

    def status(self) -> dict[str, Any]:
        return dict(self._master_call("GET", "/v1/status"))

    def members(self) -> dict[str, Any]:
        return dict(self._master_call("GET", "/v1/members"))

    def tasks(self, **filters: str) -> list[dict[str, Any]]:
        params = {key: value for key, value in filters.items() if value}
        return list(self._master_call("GET", "/v1/tasks", params=params).get("tasks", []))

    def task(self, task_id: str) -> dict[str, Any]:
        return dict(self._master_call("GET", f"/v1/tasks/{task_id}"))

    def logs(self, task_id: str, index: int, tail: int = 200) -> dict[str, Any]:
        answer = self._master_call("GET", f"/v1/tasks/{task_id}/logs", params={"index": index, "tail": tail})
        return answer if isinstance(answer, dict) else {"id": task_id, "index": index, "logs": str(answer or "")}

    def events(self, since: int) -> list[dict[str, Any]]:
        """At most one page (500) of the master's events after id `since`, oldest first."""
        return list(self._master_call("GET", "/v1/events", params={"since": since}).get("events", []))

    def jobs(self, limit: int, before: float | None = None) -> list[dict[str, Any]]:
        """Newest jobs first. Interim: grouped here from every task summary, until the master
        serves `GET /v1/jobs?limit=&before=` itself (see docs/webview.md)."""
        from taskorg.webview.jobs import job_rows

        return job_rows(self.tasks(), limit, before)

    # ---- writes --------------------------------------------------------------
    def submit(self, text: str, source: str, dry_run: bool = False) -> SubmitResult:
        params = {"source": source, **({"dry_run": "1"} if dry_run else {})}
        try:
            body = self._master_call("POST", "/v1/jobs", write=not dry_run, params=params,
                                     data=text.encode(), headers={"Content-Type": "application/yaml"})
        except ServiceError as exc:
            if exc.status == 400:
                return SubmitResult(False, {"error": exc.message, **exc.payload}, exc.status)
            raise
        return SubmitResult(True, dict(body or {}), 200 if dry_run else 201)

    def cancel(self, task_id: str) -> dict[str, Any]:
        return dict(self._master_call("DELETE", f"/v1/tasks/{task_id}", write=True) or {})

    def restart(self, task_id: str) -> dict[str, Any]:
        return dict(self._master_call("POST", f"/v1/tasks/{task_id}/restart", write=True) or {})

    def drain(self, node: str) -> dict[str, Any]:
        return dict(self._dns_call("POST", f"/v1/members/{node}/drain") or {})

    def activate(self, node: str) -> dict[str, Any]:
        return dict(self._dns_call("POST", f"/v1/members/{node}/activate") or {})

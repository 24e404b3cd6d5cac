"""The one client of the master API: the CLI, the webview, the forwarders and scripts use it.

    from taskorg.client import Client
    client = Client.from_config(load_config())
    job = client.submit(open("examples/hello.yaml").read(), source="hello.yaml")

Every call resolves `master.<suffix>` afresh (TTL 0: the point is to follow
a failover) over kept-alive connections, one pool per address. Its retry
rules, in one place:
- a read is tried again while a failover is under way (no answer, a standby
  saying "not the master", a 503), up to the budget;
- a standby's "not the master" names the master: the next try goes there
  when DNS has not moved yet;
- every write carries an `Idempotency-Key`, the same on every try. A write
  that surely never reached a server (refused, connect timeout) is tried
  again; one that may have landed is re-sent only when the master dedupes
  it by that key (submissions). Otherwise the caller gets
  `ClusterUnavailable(maybe_applied=True)` and must look before retrying.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import requests

from taskorg.config import Config
from taskorg.logstream import LogQuery
from taskorg.net import listeners
from taskorg.net.client import CONNECT_TIMEOUT, ServiceClient, ServiceError, ServiceUnavailable
from taskorg.net.resolve import ResolveError, resolve_master
from taskorg.secret import read_credential

Resolver = Callable[[Config], str]
# A live LAN master answers most calls within this; a slower call starts watching DNS for a move.
HEDGE_AFTER = 0.1
DNS_WATCH_INTERVAL = 0.05
Connector = Callable[[str, str, float], ServiceClient]  # (base url, secret, timeout) -> client


class ClusterUnavailable(Exception):
    """No active master answered within the retry budget (failover, DNS down).

    `maybe_applied` is True when a write may have reached a master before the
    connection broke: the caller must check instead of blindly resubmitting.
    """

    def __init__(self, message: str, maybe_applied: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.maybe_applied = maybe_applied


# A follower the master could not hold waiting asks again after this long (master.api.MAX_FOLLOWERS).
FOLLOW_BUSY_PAUSE = 1.0
# A DNS service that answered 503 is asked again this long, this often (an election takes ~1 s).
DNS_BUSY_BUDGET = 3.0
DNS_BUSY_PAUSE = 0.2


class DnsUnavailable(Exception):
    """The DNS service (registry, elections) did not answer."""


@dataclass
class RetryBudget:
    """How long a call follows a failover: `seconds` in all and/or at most `tries` attempts."""

    seconds: float = 8.0
    tries: int | None = None
    pause: float = 0.05


@dataclass
class _Attempts:
    budget: RetryBudget
    sleep: Callable[[float], None]
    started: float = field(default_factory=time.monotonic)
    made: int = 0

    def another(self) -> bool:
        """Whether to try (again), pausing before every try but the first."""
        if self.made and (time.monotonic() - self.started >= self.budget.seconds
                          or (self.budget.tries is not None and self.made >= self.budget.tries)):
            return False
        if self.made:
            self.sleep(self.budget.pause)
        self.made += 1
        return True


class _Workers:
    """Daemon threads kept for the tries of calls (_Race): a thread started per call cost the client about
    as much CPU as the request itself (issue 14). A worker idle for IDLE_SECONDS ends; daemon, so a try
    still stuck on a dead master never holds the process at exit."""

    IDLE_SECONDS = 30.0

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # workers waiting for a job and not yet claimed by one

    def run(self, job: Callable[[], None]) -> None:
        with self._lock:
            claimed = self._idle > 0
            if claimed:
                self._idle -= 1
        self._jobs.put(job)
        if not claimed:
            threading.Thread(target=self._serve, daemon=True, name="master-call").start()

    def _serve(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self.IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # unclaimed: end (a claimed worker has a job coming)
                        self._idle -= 1
                        return
                continue
            job()
            with self._lock:
                self._idle += 1


_WORKERS = _Workers()


class _Race:
    """Tries of one call running side by side: the first answer wins; if none answers, the
    newest try's error stands (it speaks of the newest master)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._started = 0
        self._running = 0
        self._won = False
        self._value: Any = None
        self._errors: dict[int, Exception] = {}

    def start(self, attempt: Callable[[], Any]) -> None:
        with self._cond:
            order = self._started
            self._started += 1
            self._running += 1
        _WORKERS.run(lambda: self._run(order, attempt))

    def _run(self, order: int, attempt: Callable[[], Any]) -> None:
        try:
            value, error = attempt(), None
        except Exception as exc:  # handed to the caller by result()
            value, error = None, exc
        with self._cond:
            self._running -= 1
            if error is not None:
                self._errors[order] = error
            elif not self._won:
                self._won, self._value = True, value
            self._cond.notify_all()

    def wait(self, timeout: float) -> bool:
        """True once a try answered or every try failed."""
        with self._cond:
            return self._cond.wait_for(lambda: self._won or self._running == 0, timeout)

    def result(self) -> Any:
        with self._cond:
            if self._won:
                return self._value
            raise self._errors[max(self._errors)]


def is_not_master(exc: ServiceError) -> bool:
    return exc.status == 409 and "not the master" in exc.message


def never_sent(exc: ServiceUnavailable) -> bool:
    """True when the request surely never reached a server (refused, connect timeout).

    Only then may any write be retried: a connection that broke after sending
    may have been applied by a master that died before answering.
    """
    cause = exc.__context__
    if isinstance(cause, requests.ConnectTimeout):
        return True
    if isinstance(cause, requests.ConnectionError):
        text = str(cause)
        return "NewConnectionError" in text or "Connection refused" in text
    return False


class Client:
    def __init__(self, config: Config, secret: str, timeout: float = 15.0, failover_wait: float = 8.0, *,
                 budget: RetryBudget | None = None, resolver: Resolver = resolve_master,
                 sleep: Callable[[float], None] = time.sleep, connect: Connector | None = None) -> None:
        self.config = config
        self.secret = secret
        self.timeout = timeout
        self.budget = budget or RetryBudget(seconds=failover_wait)
        self._resolve = resolver
        self._sleep = sleep
        self._connect = connect or (lambda url, secret, timeout: ServiceClient(url, secret, timeout))
        self._pool: dict[str, ServiceClient] = {}
        self._pool_lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Config, **kwargs: Any) -> "Client":
        """A client with the settings' credential (user token or secret) and, unless this process has
        its TLS material already, the settings' cluster CA."""
        from taskorg.security import tls

        if config.tls and not tls.configured():
            tls.configure(config, service=False)
        listeners.use(config)
        return cls(config, read_credential(config), **kwargs)

    # ---- plumbing ----------------------------------------------------------------------------
    def master_address(self) -> str:
        return self._resolve(self.config)

    def connection(self, address: str, port: int | None = None) -> ServiceClient:
        """A kept-alive client for one service address (the master's port unless told)."""
        url = self.config.url(address, port or self.config.master_port)
        with self._pool_lock:
            found = self._pool.get(url)
            if found is None:
                found = self._pool[url] = self._connect(url, self.secret, self.timeout)
            return found

    def call(self, method: str, path: str, *, write: bool = False, deduped: bool = False, retry: bool = True,
             **kwargs: Any) -> Any:
        """One master API call under the retry rules above.

        `write`: the call changes state (it carries an Idempotency-Key);
        `deduped`: the master stores it once per key, so even a write that
        may have landed is sent again; `retry=False`: one try only (probes).
        """
        if write:
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault("Idempotency-Key", uuid.uuid4().hex)
            kwargs["headers"] = headers
        attempts = _Attempts(self.budget if retry else RetryBudget(seconds=0, tries=1), self._sleep)
        hint: tuple[str, str] | None = None  # (where the standby pointed, the address it had)
        last = "no answer"
        while attempts.another():
            try:
                address = self.master_address()
            except ResolveError as exc:
                last = str(exc)
                continue
            if hint and address == hint[1]:
                address = hint[0]  # DNS not rewritten yet: use the standby's pointer
            hint = None
            try:
                return self._send(address, method, path, not write or deduped, kwargs)
            except ServiceError as exc:
                if is_not_master(exc):
                    pointed = exc.payload.get("address")
                    hint = (str(pointed), address) if pointed and pointed != address else None
                elif exc.status != 503 or (write and not deduped):
                    raise
                last = exc.message
            except ServiceUnavailable as exc:
                if write and not deduped and not never_sent(exc):
                    raise ClusterUnavailable(
                        "the master went away while handling this request; it may or may not have "
                        "been applied: check before trying again", maybe_applied=True) from None
                last = str(exc)
        raise ClusterUnavailable(f"no active master at {self.config.master_name}: {last}")

    def _send(self, address: str, method: str, path: str, may_repeat: bool, kwargs: dict[str, Any]) -> Any:
        """One try at `address`. A call that may be repeated (a read, a deduped write) and is slow to
        answer watches DNS meanwhile: if the record moves while a connect to a dead master could still
        be pending, the new address is tried side by side and the first answer wins, so a client never
        waits out a connect timeout to a powered-off host."""
        if not may_repeat:
            return self.connection(address).request(method, path, **kwargs)
        race = _Race()
        race.start(lambda: self.connection(address).request(method, path, **kwargs))
        if race.wait(HEDGE_AFTER):
            return race.result()
        tried, watch_until = {address}, time.monotonic() + CONNECT_TIMEOUT
        while not race.wait(DNS_WATCH_INTERVAL):
            if time.monotonic() >= watch_until:
                continue
            try:
                moved = self._resolve(self.config)
            except ResolveError:
                continue
            if moved not in tried:
                tried.add(moved)
                race.start(lambda: self.connection(moved).request(method, path, **kwargs))
        return race.result()

    def dns_call(self, method: str, path: str, **kwargs: Any) -> Any:
        """A call to a DNS service (members, drain, handover): it answers even with no master.

        Every machine runs one; the first that answers is used (`dns_address`, then `dns_servers`).
        A 503 (no arbiter yet, no quorum: the consensus group is electing) applied nothing, so the
        servers are asked again for up to DNS_BUSY_BUDGET seconds before its reason is raised."""
        deadline = time.monotonic() + DNS_BUSY_BUDGET
        while True:
            failures, busy = [], None
            for address in self.config.dns_server_list:
                try:
                    return self.connection(address, self.config.dns_api_port).request(
                        method, path, **{"timeout": 5.0, **kwargs})
                except ServiceUnavailable as exc:
                    failures.append(f"{address}: {exc}")
                except ServiceError as exc:
                    if exc.status != 503:
                        raise
                    busy = exc
            if busy is None:
                raise DnsUnavailable(f"no DNS service answers ({'; '.join(failures)})")
            if time.monotonic() >= deadline:
                raise busy
            time.sleep(DNS_BUSY_PAUSE)

    def relay(self, address: str, method: str, path: str, data: bytes, headers: dict[str, str],
              read_timeout: float = 65.0) -> requests.Response:
        """Pass one request on to the master at `address` as it came (the forwarders): the caller's
        own credentials and key travel in `headers`, the answer streams back, nothing is retried."""
        session = self.connection(address).session
        url = f"{listeners.route(self.config.url(address, self.config.master_port), method, path)}{path}"
        return session.request(method, url, data=data, headers={"Authorization": None, **headers},
                               stream=True, timeout=(CONNECT_TIMEOUT, read_timeout))

    def close(self) -> None:
        with self._pool_lock:
            for connection in self._pool.values():
                connection.close()
            self._pool.clear()

    # ---- jobs and tasks ---------------------------------------------------------------------------
    def submit(self, text: str, source: str = "<input>", dry_run: bool = False, update: bool = False) -> dict[str, Any]:
        """Submit a spec; a job whose name runs is updated in place (`update`: only that, never a new job)."""
        return self.call("POST", "/v1/jobs", write=not dry_run, deduped=True, params=_submit_params(source, dry_run, update),
                         data=text.encode(), headers={"Content-Type": "application/yaml"})

    def submit_job(self, job: dict[str, Any], source: str = "<input>", dry_run: bool = False,
                   update: bool = False) -> dict[str, Any]:
        """Submit an already-checked job in its canonical form (JSON), e.g. a converted compose file."""
        return self.call("POST", "/v1/jobs", write=not dry_run, deduped=True,
                         params=_submit_params(source, dry_run, update), json=job)

    def job(self, job_id: str) -> dict[str, Any]:
        """A job, its tasks and its rolling update's progress (`update`)."""
        return dict(self.call("GET", f"/v1/jobs/{job_id}"))

    def rollback(self, job_id: str) -> dict[str, Any]:
        """Take a job's updated tasks back to their previous spec."""
        return dict(self.call("POST", f"/v1/jobs/{job_id}/rollback", write=True) or {})

    def tasks(self, **filters: str | None) -> list[dict[str, Any]]:
        params = {k: v for k, v in filters.items() if v}
        return list(self.call("GET", "/v1/tasks", params=params)["tasks"])

    def task(self, task_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/v1/tasks/{task_id}"))

    def cancel(self, task_id: str) -> dict[str, Any]:
        return dict(self.call("DELETE", f"/v1/tasks/{task_id}", write=True) or {})

    def restart(self, task_id: str) -> dict[str, Any]:
        return dict(self.call("POST", f"/v1/tasks/{task_id}/restart", write=True) or {})

    def logs(self, task_id: str, index: int = 0, query: LogQuery | None = None) -> dict[str, Any]:
        """An instance's output once (the last 200 lines unless `query` says otherwise)."""
        params = {"index": str(index), **(query or LogQuery()).params(), "follow": "0"}
        answer = self.call("GET", f"/v1/tasks/{task_id}/logs", params=params)
        return answer if isinstance(answer, dict) else {"id": task_id, "index": index, "logs": str(answer or "")}

    def log_stream(self, task_id: str, index: int, query: LogQuery) -> requests.Response:
        """An open follow of an instance's output from the master (it ends after `query.duration` s,
        or sooner; see taskorg/cli/log_follow.py for the loop that resumes it)."""
        params = {"index": str(index), **query.params(), "follow": "1"}
        return self.call("GET", f"/v1/tasks/{task_id}/logs", params=params, stream=True,
                         timeout=(CONNECT_TIMEOUT, query.duration + 15))

    def events(self, since: int = 0, wait: float = 10.0) -> list[dict[str, Any]]:
        """Events after id `since`; waits up to `wait` s for the first (long poll)."""
        return list(self._poll_events(since, wait)["events"])

    def _poll_events(self, since: int, wait: float) -> dict[str, Any]:
        return dict(self.call("GET", "/v1/events", params={"since": since, "wait": wait}, timeout=wait + 15))

    def follow(self, since: int = 0, until: float | None = None) -> Iterator[dict[str, Any]]:
        """Every event after `since`, as it happens, across failovers, until `until` (monotonic)."""
        while until is None or time.monotonic() < until:
            answer = self._poll_events(since, wait=5.0)
            for event in answer["events"]:
                since = event["id"]
                yield event
            if answer.get("busy") and not answer["events"]:
                time.sleep(FOLLOW_BUSY_PAUSE)  # the master has every follower it can hold: ask later

    def status(self) -> dict[str, Any]:
        return dict(self.call("GET", "/v1/status"))

    def prune(self) -> dict[str, Any]:
        """Remove finished jobs past their retention now (the master also does it every minute)."""
        return dict(self.call("POST", "/v1/prune", write=True, deduped=True) or {})

    def state(self) -> dict[str, Any]:
        return dict(self.call("GET", "/v1/state"))

    def members(self, history: bool = False) -> dict[str, Any]:
        """The master's members with telemetry; `history` adds each node's last hour (`node_history`)."""
        return dict(self.call("GET", "/v1/members", params={"history": "1"} if history else None))

    def node_history(self, node: str) -> dict[str, Any]:
        """`{node, step, span, points: [{time, cpu, memory, disk, temperature}]}`, oldest point first."""
        return dict(self.call("GET", f"/v1/nodes/{node}/history"))

    # ---- the DNS service: members and elections, answered even with no master ----------------------
    def dns_members(self) -> dict[str, Any]:
        return dict(self.dns_call("GET", "/v1/members"))

    def drain(self, node: str) -> dict[str, Any]:
        return dict(self.dns_call("POST", f"/v1/members/{node}/drain") or {})

    def activate(self, node: str) -> dict[str, Any]:
        return dict(self.dns_call("POST", f"/v1/members/{node}/activate") or {})

    def leave(self, node: str) -> dict[str, Any]:
        return dict(self.dns_call("POST", f"/v1/members/{node}/leave") or {})

    def handover(self, node: str) -> dict[str, Any]:
        return dict(self.dns_call("POST", "/v1/master", json={"node": node}) or {})


def _submit_params(source: str, dry_run: bool, update: bool) -> dict[str, str]:
    return {"source": source, **({"dry_run": "1"} if dry_run else {}), **({"update": "1"} if update else {})}

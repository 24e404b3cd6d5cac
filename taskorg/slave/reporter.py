"""Push this node's containers and telemetry to the active master, on change and on a slow resync.

The slave follows docker's event stream for its own containers (the runner's
`changes()`, on a thread that reconnects when dockerd goes away) and reports at
once when one starts, dies, stops, is removed or changes health, and when a
command raises the epoch fence (a new master: it hears from us at once, not at
the next resync). A burst of events is one report; otherwise a full report goes
every `report_resync_interval`, and an undelivered one is tried again after
`report_interval` (taskorg/slave/cadence.py decides when, purely). Every report
is a `Report` (taskorg/protocol.py): the full container list and a telemetry
sample, posted to whoever `master.<suffix>` names right now (resolved on every
report, no cache). The master answers a `ReportAnswer` (epoch, stop); the stop
list is obeyed only when that epoch passes the fence.

When the master cannot be reached the slave does nothing: a network blip or a
failover must never kill running tasks. Only a master removes containers.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import requests
from docker.errors import DockerException

from taskorg.config import Config
from taskorg.net import sdnotify
from taskorg.logs import get_logger
from taskorg.metrics import slave as metrics
from taskorg.net.client import ServiceClient, ServiceError, ServiceUnavailable
from taskorg.net.resolve import ResolveError, resolve_master
from taskorg.protocol import ContainerState, ProtocolError, Report, ReportAnswer, Telemetry, convert, encode
from taskorg.slave import telemetry
from taskorg.slave.cadence import Cadence
from taskorg.slave.fence import EpochFence, Fenced
from taskorg.slave.job_dirs import JobDirs
from taskorg.slave.runner import Runner

log = get_logger("slave.reporter")
# The report loop goes round at least this often, waiting or not: its beat is the watchdog's sign of life
# (stale after 120 s), whatever the resync interval.
MAX_WAIT = 30.0


class Reporter:
    def __init__(self, config: Config, secret: str, runner: Runner, fence: EpochFence,
                 collect: Callable[[str], dict[str, Any]] | None = None,
                 resolve: Callable[[Config], str] = resolve_master,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.secret = secret
        self.runner = runner
        self.job_dirs = JobDirs(config.shared_dir)  # pruned jobs' directories on the shared storage
        self.fence = fence
        self.collect = collect or telemetry.collector(config.advertise_cpus, config.state_dir,
                                                      telemetry.docker_root_of(runner))
        self.resolve = resolve
        self.clock = clock
        self.cadence = Cadence(resync=config.report_resync_interval, retry=config.report_interval)
        self._clients: dict[str, ServiceClient] = {}
        self._lock = threading.Lock()  # the cadence
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._events: Any = None
        self._threads: list[threading.Thread] = []
        self._docker_down = False
        # Marked on every turn of the report loop: systemd's watchdog restarts a slave whose reporting hangs.
        self.beat = sdnotify.Beat("the slave's report loop")
        fence.on_raise(lambda epoch: self.changed("new master"))

    # ---- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        for target, name in ((self._loop, "slave-reports"), (self._watch_changes, "slave-changes")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._events is not None:
            try:
                self._events.close()
            except Exception:  # the stream may already be gone
                pass
        for client in self._clients.values():
            client.close()

    def changed(self, why: str = "change") -> None:
        """Something this node's master should hear about soon (see cadence.py): a report follows within
        the coalescing window, or right after the report in flight."""
        with self._lock:
            self.cadence.changed(self.clock())
        log.debug("report asked for", extra={"why": why})
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopped.is_set():
            self.beat.mark()
            self._wake.clear()
            with self._lock:
                now = self.clock()
                wait = self.cadence.due() - now
                reason = self.cadence.start(now) if wait <= 0 else ""
            if wait > 0:
                self._wake.wait(min(wait, MAX_WAIT))
                continue
            delivered = self._report_safely(reason)
            with self._lock:
                self.cadence.done(self.clock(), delivered)

    # ---- reporting ---------------------------------------------------------
    def _report_safely(self, reason: str) -> bool:
        try:
            delivered = self.report_once()
        except Exception:  # never let one bad report stop the reporting
            log.exception("report failed")
            delivered = False
        metrics.REPORTS.labels(reason, "delivered" if delivered else "failed").inc()
        return delivered

    def report_once(self) -> bool:
        """One report; True when a current master answered."""
        try:
            address = self.resolve(self.config)
        except ResolveError as exc:
            log.debug("no master to report to", extra={"error": str(exc)})
            return False
        listed = time.monotonic()  # before listing: a start answered after this may be missing from it
        try:
            containers = self.runner.list()
        except (DockerException, requests.RequestException) as exc:
            # No report at all: an empty list would tell the master our tasks are gone.
            if not self._docker_down:
                log.warning("docker engine unreachable; not reporting", extra={"error": str(exc)})
            self._docker_down = True
            return False
        if self._docker_down:
            log.warning("docker engine reachable again")
            self._docker_down = False
        report = Report(node=self.runner.node, address=self.config.node_address, listed=listed,
                        containers=convert(containers, list[ContainerState], "container states"),
                        telemetry=self._telemetry())
        try:
            answer = self._client(address).post("/v1/reports", data=encode(report),
                                                headers={"Content-Type": "application/json"})
        except (ServiceUnavailable, ServiceError) as exc:
            log.debug("report not delivered", extra={"master": address, "error": str(exc)})
            return False
        return self._obey(answer, address)

    def _telemetry(self) -> Telemetry | None:
        """This node's sample; a malformed one is left out (and said), never the whole report."""
        try:
            return convert(self.collect(self.runner.node), Telemetry, "telemetry")
        except ProtocolError as exc:
            log.warning("telemetry left out of the report", extra={"error": str(exc)})
            return None

    def _obey(self, answer: Any, address: str) -> bool:
        """Carry out a current master's answer; False when it is not one (the report is tried again after
        `report_interval`: the master that counts has not heard it)."""
        try:
            decided = convert(answer, ReportAnswer, "report answer")
            self.fence.check(decided.epoch)
        except Fenced as exc:
            log.warning("ignoring a stale master", extra={"master": address, "epoch": exc.epoch,
                                                          "highest": exc.highest})
            return False
        except ValueError as exc:  # ProtocolError too: no valid epoch, no obedience
            log.warning("master answer without a valid epoch", extra={"master": address, "error": str(exc)})
            return False
        if decided.stop:
            removed = self.runner.stop(decided.stop)
            log.info("stopped on master's request", extra={"epoch": decided.epoch, "removed": len(removed)})
        if decided.removed_jobs:
            self.job_dirs.remove(decided.removed_jobs)
        return True

    def _client(self, address: str) -> ServiceClient:
        url = self.config.url(address, self.config.master_port)
        if url not in self._clients:
            timeout = min(5.0, max(1.0, 4 * self.config.report_interval))
            self._clients[url] = ServiceClient(url, self.secret, timeout=timeout)
        return self._clients[url]

    # ---- changes -----------------------------------------------------------
    def _watch_changes(self) -> None:
        """Follow docker's events for this node's containers; each asks for a report. After every
        (re)subscription too: what happened while nobody listened is in that report."""
        backoff = 0.5
        while not self._stopped.is_set():
            try:
                self._events = self.runner.changes()
                backoff = 0.5
                self.changed("subscribed")
                for container_id in self._events:
                    if self._stopped.is_set():
                        return
                    self.changed(f"container {container_id[:12]}")
            except Exception as exc:  # dockerd restarted or unreachable: retry
                if self._stopped.is_set():
                    return
                log.debug("change feed interrupted", extra={"error": str(exc)})
            self._stopped.wait(backoff)
            backoff = min(backoff * 2, 10.0)

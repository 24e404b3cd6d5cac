"""Push this node's containers and telemetry to the active master.

Every `report_interval`, and at once when the runner says one of this node's
containers died or its health changed (docker's events), the slave posts a `Report` (taskorg/protocol.py) to
whoever `master.<suffix>` names right now (resolved on every report, no
cache). The master answers a `ReportAnswer` (epoch, stop); the stop list is obeyed only when
that epoch passes the fence.

When the master cannot be reached the slave does nothing: a network blip or a
failover must never kill running tasks. Only a master removes containers.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable

import requests
from taskorg.intervals import BackgroundScheduler  # not apscheduler: ~2.5 MiB less heap (issue 14)
from docker.errors import DockerException

from taskorg.config import Config
from taskorg.net import sdnotify
from taskorg.logs import get_logger
from taskorg.net.client import ServiceClient, ServiceError, ServiceUnavailable
from taskorg.net.resolve import ResolveError, resolve_master
from taskorg.protocol import ContainerState, ProtocolError, Report, ReportAnswer, Telemetry, convert, encode
from taskorg.slave import telemetry
from taskorg.slave.fence import EpochFence, Fenced
from taskorg.slave.runner import Runner

log = get_logger("slave.reporter")
# Only errors from the report tick are news (a skipped tick, while the previous
# report still waits for a slow master, is the intended behaviour).
_scheduler_log = get_logger("slave.reporter.scheduler")
_scheduler_log.setLevel(logging.ERROR)


class Reporter:
    def __init__(self, config: Config, secret: str, runner: Runner, fence: EpochFence,
                 collect: Callable[[str], dict[str, Any]] | None = None,
                 resolve: Callable[[Config], str] = resolve_master) -> None:
        self.config = config
        self.secret = secret
        self.runner = runner
        self.fence = fence
        self.collect = collect or telemetry.collector(config.advertise_cpus, config.state_dir,
                                                      telemetry.docker_root_of(runner))
        self.resolve = resolve
        self._clients: dict[str, ServiceClient] = {}
        self._send_lock = threading.Lock()
        self._pending = threading.Event()
        self._stopped = threading.Event()
        self._events: Any = None
        self._scheduler: BackgroundScheduler | None = None
        self._watcher: threading.Thread | None = None
        self._docker_down = False
        # Marked before every report: systemd's watchdog restarts a slave whose reporting hangs.
        self.beat = sdnotify.Beat("the slave's report loop")

    # ---- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        self._scheduler = BackgroundScheduler(daemon=True, timezone=timezone.utc, logger=_scheduler_log)
        self._scheduler.add_job(self.report_now, "interval", seconds=self.config.report_interval,
                                id="report", max_instances=1, coalesce=True, misfire_grace_time=None,
                                next_run_time=datetime.now(timezone.utc))
        self._scheduler.start()
        self._watcher = threading.Thread(target=self._watch_changes, name="slave-changes", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._scheduler:
            self._scheduler.shutdown(wait=False)
        if self._events is not None:
            try:
                self._events.close()
            except Exception:  # the stream may already be gone
                pass
        for client in self._clients.values():
            client.close()

    # ---- reporting ---------------------------------------------------------
    def report_now(self) -> None:
        """Send a report now; if one is in flight, send another right after it.

        The tick and the docker-event thread both call this; reports never
        overlap and a request made during a report is never lost.
        """
        self._pending.set()
        while self._pending.is_set():
            if not self._send_lock.acquire(blocking=False):
                return  # the sender holding the lock will see _pending
            try:
                while self._pending.is_set() and not self._stopped.is_set():
                    self._pending.clear()
                    self._report_safely()
            finally:
                self._send_lock.release()
            if self._stopped.is_set():
                return

    def _report_safely(self) -> None:
        self.beat.mark()
        try:
            self.report_once()
        except Exception:  # never let one bad report stop the reporting
            log.exception("report failed")

    def report_once(self) -> bool:
        """One report; True when the master answered."""
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
        self._obey(answer, address)
        return True

    def _telemetry(self) -> Telemetry | None:
        """This node's sample; a malformed one is left out (and said), never the whole report."""
        try:
            return convert(self.collect(self.runner.node), Telemetry, "telemetry")
        except ProtocolError as exc:
            log.warning("telemetry left out of the report", extra={"error": str(exc)})
            return None

    def _obey(self, answer: Any, address: str) -> None:
        try:
            decided = convert(answer, ReportAnswer, "report answer")
            self.fence.check(decided.epoch)
        except Fenced as exc:
            log.warning("ignoring a stale master", extra={"master": address, "epoch": exc.epoch,
                                                          "highest": exc.highest})
            return
        except ValueError as exc:  # ProtocolError too: no valid epoch, no obedience
            log.warning("master answer without a valid epoch", extra={"master": address, "error": str(exc)})
            return
        if decided.stop:
            removed = self.runner.stop(decided.stop)
            log.info("stopped on master's request", extra={"epoch": decided.epoch, "removed": len(removed)})

    def _client(self, address: str) -> ServiceClient:
        url = self.config.url(address, self.config.master_port)
        if url not in self._clients:
            timeout = min(5.0, max(1.0, 4 * self.config.report_interval))
            self._clients[url] = ServiceClient(url, self.secret, timeout=timeout)
        return self._clients[url]

    # ---- changes -----------------------------------------------------------
    def _watch_changes(self) -> None:
        """Report as soon as one of our containers dies or changes health (reconnects if dockerd
        restarts): a death or an unhealthy instance is news the master acts on."""
        backoff = 0.5
        while not self._stopped.is_set():
            try:
                self._events = self.runner.changes()
                backoff = 0.5
                for container_id in self._events:
                    if self._stopped.is_set():
                        return
                    log.debug("container changed", extra={"container": container_id[:12]})
                    self.report_now()
            except Exception as exc:  # dockerd restarted or unreachable: retry
                if self._stopped.is_set():
                    return
                log.debug("change feed interrupted", extra={"error": str(exc)})
            self._stopped.wait(backoff)
            backoff = min(backoff * 2, 10.0)

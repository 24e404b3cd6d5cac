"""The master's calls to its slaves, typed, over one pooled HTTP session per slave.

Every call returns the slave's answer (or raises); none calls back into the
engine, so the engine decides what an answer means, under its own lock.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, as_completed
from concurrent.futures import TimeoutError as FuturesTimeout
from typing import Any, Callable, Iterator, TypeVar


import requests

from taskorg.config import Config
from taskorg.logstream import LogQuery
from taskorg.logs import get_logger
from taskorg.master.members import MemberCache
from taskorg.net.client import ServiceClient
from taskorg.protocol import (ContainerList, ContainerState, EpochCommand, StartOrder, StopAnswer, StopRequest,
                              Telemetry, convert, encode)

log = get_logger("master.slaves")
K = TypeVar("K")
# Start orders run on up to 32 threads at once, several to one slave: keep that many connections.
POOL_SIZE = 32
CALL_TIMEOUT = 3.0
START_TIMEOUT = 30.0  # docker's own start of a container under load


class NoAddress(LookupError):
    """The members view knows no address for this node."""


class SlaveClient:
    def __init__(self, config: Config, secret: str, members: MemberCache) -> None:
        self.config = config
        self.secret = secret
        self.members = members
        self._lock = threading.Lock()
        self._clients: dict[str, ServiceClient] = {}

    # ---- commands ---------------------------------------------------------------------------
    def start(self, address: str, order: StartOrder) -> ContainerState:
        """Start one attempt; a ServiceError (409: fenced) or ServiceUnavailable when it could not."""
        answer = self._at(address).post("/v1/containers", data=encode(order), timeout=START_TIMEOUT,
                                        headers={"Content-Type": "application/json"})
        return convert(answer, ContainerState, "start answer")

    def stop(self, node: str, epoch: int, container_ids: list[str], timeout: float = CALL_TIMEOUT) -> list[str]:
        """Stop and remove containers; the slave answers once they are gone (`timeout`: their stop grace)."""
        return self._command(node, StopRequest(epoch=epoch, container_ids=container_ids), timeout)

    def stop_task(self, node: str, epoch: int, task_id: str) -> list[str]:
        return self._command(node, StopRequest(epoch=epoch, task_id=task_id))

    def fence(self, node: str, epoch: int) -> int:
        answer = self._of(node).post("/v1/epoch", data=encode(EpochCommand(epoch)), timeout=CALL_TIMEOUT,
                                     headers={"Content-Type": "application/json"})
        return convert(answer, EpochCommand, "epoch answer").epoch

    # ---- questions --------------------------------------------------------------------------
    def containers(self, node: str) -> ContainerList:
        return convert(self._of(node).get("/v1/containers", timeout=CALL_TIMEOUT), ContainerList, "container list")

    def telemetry(self, node: str) -> Telemetry:
        return convert(self._of(node).get("/v1/telemetry", timeout=CALL_TIMEOUT), Telemetry, "telemetry")

    def logs(self, node: str, task_id: str, index: int, query: LogQuery) -> str:
        return self._of(node).get(f"/v1/containers/{task_id}/{index}/logs", params=query.params(),
                                  timeout=CALL_TIMEOUT) or ""

    def follow_logs(self, node: str, task_id: str, index: int, query: LogQuery) -> requests.Response:
        """The slave's open log stream (it ends after `query.duration` seconds at the latest)."""
        return self._of(node).get(f"/v1/containers/{task_id}/{index}/logs", params=query.params(), stream=True,
                                  timeout=(CALL_TIMEOUT, query.duration + CALL_TIMEOUT))

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, {}
        for client in clients.values():
            client.close()

    # ---- sessions ---------------------------------------------------------------------------
    def _command(self, node: str, request: StopRequest, timeout: float = CALL_TIMEOUT) -> list[str]:
        answer = self._of(node).post("/v1/containers/stop", data=encode(request), timeout=timeout,
                                     headers={"Content-Type": "application/json"})
        return convert(answer, StopAnswer, "stop answer").removed

    def _of(self, node: str) -> ServiceClient:
        address = self.members.address(node)
        if not address:
            raise NoAddress(f"no address known for node {node}")
        return self._at(address)

    def _at(self, address: str) -> ServiceClient:
        """The pooled client of the slave at `address` (made on first use, then reused)."""
        with self._lock:
            client = self._clients.get(address)
            if client is None:
                client = ServiceClient(self.config.url(address, self.config.slave_port), self.secret, timeout=5,
                                       pool_size=POOL_SIZE)
                self._clients[address] = client
            return client


def quietly(call: Callable[..., Any], node: str, *args: Any) -> None:
    """A slave command whose failure changes nothing: the slave's next report says the truth."""
    try:
        call(node, *args)
    except Exception as exc:
        log.info("slave command failed (its report will tell)", extra={"node": node, "error": str(exc)})


def answers_as_they_come(futures: dict[K, Future[Any]], timeout: float = 2.0) -> Iterator[tuple[K, Any]]:
    """(key, answer) for each call that answered in time with something, as they come: a dead node
    (not yet declared so) is skipped and never holds up the living. In order, one powered-off host
    listed first kept a new master from placing anything for its 0.5 s connect timeout."""
    keys = {future: key for key, future in futures.items()}
    try:
        for future in as_completed(keys, timeout=timeout):
            try:
                answer = future.result()
            except Exception:
                continue
            if answer:
                yield keys[future], answer
    except FuturesTimeout:
        return

"""A runner that starts no container: instances live in an in-memory table.

For control-plane load tests at a scale the machine could not hold in
containers (the scale benchmark runs 10,000 instances on 100 nodes on two
cores), and for tests that need no dockerd. Chosen with the node setting
`runner: standin`. Everything else on the node is the product's own code.

A start order passes the same door and policy as for the Docker runner and
is mapped to the same create arguments (the same orders are refused),
answered `running` at once, and the instance is in every listing until it
is stopped or told to finish (`finish`). Its states have
the Docker runner's fields, so the master cannot tell them apart.
"""

from __future__ import annotations

import queue
import threading
import uuid
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

from taskorg.protocol import StartOrder
from taskorg.slave.runner.create_args import Site, create_args
from taskorg.slave.runner.order import container_name, order_state
from taskorg.slave.runner.protocol import ContainerState

LOGS = "(stand-in runner: no container, no output)\n"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


class StandInChanges:
    """Deaths of stand-in instances (those told to finish), in order; iteration ends when closed.
    (A stand-in has no health check, so no health changes.)"""

    _CLOSED = object()

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.closed = False

    def put(self, container_id: str) -> None:
        self._queue.put(container_id)

    def __iter__(self) -> Iterator[str]:
        while (item := self._queue.get()) is not self._CLOSED:
            yield item

    def close(self) -> None:
        self.closed = True
        self._queue.put(self._CLOSED)


class StandInRunner:
    def __init__(self, cluster: str, node: str, address: str = "0.0.0.0", site: Site | None = None) -> None:
        self.site = site or Site(cluster, node, address)
        self.cluster = cluster
        self.node = node
        self._lock = threading.Lock()
        self._states: dict[str, ContainerState] = {}  # container id -> state
        self._feeds: list[StandInChanges] = []

    def start(self, order: StartOrder) -> ContainerState:
        """Running at once; the same attempt twice gives the same instance."""
        name = container_name(self.cluster, self.node, order.task_id, order.index, order.attempt)
        create_args(order, name, self.site)  # refuses what the Docker runner refuses
        with self._lock:
            same = next((state for state in self._states.values() if state["name"] == name), None)
            if same is not None:
                return dict(same)
            self._drop_earlier_attempts(order)
            state = order_state(order, name, container_id=uuid.uuid4().hex * 2, status="running",
                                started_at=_now())
            self._states[state["container_id"]] = state
            return dict(state)

    def _drop_earlier_attempts(self, order: StartOrder) -> None:
        """As the Docker runner removes an instance's finished earlier attempts."""
        for cid, state in list(self._states.items()):
            if (state["task_id"], state["index"]) == (order.task_id, order.index) \
                    and state["attempt"] < order.attempt and state["status"] != "running":
                del self._states[cid]

    def finish(self, container_id: str, exit_code: int = 0, result: Any = None) -> ContainerState:
        """End a running instance as if its process exited; KeyError when there is none."""
        with self._lock:
            state = self._states[container_id]
            if state["status"] == "running":
                state.update(status="exited", exit_code=exit_code, finished_at=_now(),
                             result=result, result_error=None)
            feeds = list(self._feeds)
            finished = dict(state)
        for feed in feeds:
            feed.put(container_id)
        return finished

    def list(self) -> list[ContainerState]:
        with self._lock:
            return [dict(state) for state in self._states.values()]

    def stop(self, container_ids: Iterable[str]) -> list[str]:
        """Every id is gone afterwards (an unknown one already was)."""
        ids = [str(cid) for cid in container_ids if cid]
        with self._lock:
            for cid in ids:
                self._states.pop(cid, None)
        return ids

    def stop_task(self, task_id: str) -> list[str]:
        with self._lock:
            ids = [cid for cid, state in self._states.items() if state["task_id"] == task_id]
        return self.stop(ids)

    def logs(self, task_id: str, index: int, tail: int | None = 200, since: float | None = None,
             timestamps: bool = False) -> str:
        with self._lock:
            if not any((s["task_id"], s["index"]) == (task_id, index) for s in self._states.values()):
                raise LookupError(f"no container for {task_id}/{index} on {self.node}")
        return LOGS if tail != 0 and since is None else ""

    def follow_logs(self, task_id: str, index: int, tail: int | None = None, since: float | None = None,
                    timestamps: bool = True) -> Iterator[bytes]:
        """What `logs` gives, then the end: a stand-in writes nothing more."""
        text = self.logs(task_id, index, tail, since)
        stamp = f"{_now()[:-1]}000Z " if timestamps else ""
        return iter([f"{stamp}{text}".encode()] if text else [])

    def changes(self) -> StandInChanges:
        feed = StandInChanges()
        with self._lock:
            self._feeds = [*(f for f in self._feeds if not f.closed), feed]
        return feed

    def close(self) -> None:
        with self._lock:
            feeds, self._feeds = self._feeds, []
        for feed in feeds:
            feed.close()

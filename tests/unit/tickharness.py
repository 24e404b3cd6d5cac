"""Run whole master ticks with no network: a real Store on a temp SQLite file, fake members, a fake clock.

Like a scheduler test harness: the engine is the real one, only its edges are
stand-ins. The members view is set, not fetched; slave calls go to
`FakeSlaves`, which starts "containers" in memory and answers as a slave
would; the thread pool runs each call at once, so a tick's starts are
answered before `tick()` returns.
"""

from __future__ import annotations

import time
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, Callable

from taskorg.config import load_config
from taskorg.master import state
from taskorg.master.engine import Engine, Role
from taskorg.master.store import Store
from taskorg.protocol import ContainerList, ContainerState, StartOrder, Telemetry
from taskorg.spec import parse_spec_text

GiB = 1 << 30


class InlineExecutor(Executor):
    """Runs each call at once, in the caller's thread: a tick is over when `tick()` returns."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


class FakeSlaves:
    """The slaves as the master sees them: start orders are recorded and answered 'running'."""

    def __init__(self) -> None:
        self.orders: list[tuple[str, StartOrder]] = []  # (address, order)
        self.stopped: list[tuple[str, str]] = []  # (node, task id)
        self.stopped_containers: list[tuple[str, str]] = []  # (node, container id)

    def start(self, address: str, order: StartOrder) -> ContainerState:
        self.orders.append((address, order))
        return ContainerState(task_id=order.task_id, index=order.index, attempt=order.attempt, status="running",
                              container_id=f"c-{order.task_id}-{order.index}-{order.attempt}", answered=0.0)

    def stop(self, node: str, epoch: int, container_ids: list[str], timeout: float = 3.0) -> list[str]:
        self.stopped_containers += [(node, cid) for cid in container_ids]
        return list(container_ids)

    def stop_task(self, node: str, epoch: int, task_id: str) -> list[str]:
        self.stopped.append((node, task_id))
        return []

    def fence(self, node: str, epoch: int) -> int:
        return epoch

    def containers(self, node: str) -> ContainerList:
        return ContainerList(node=node, epoch=1, containers=[])

    def telemetry(self, node: str) -> Telemetry:
        return Telemetry(node=node, cpu_count=4, memory_total=4 * GiB)

    def close(self) -> None:
        pass


class Relists:
    """The engine's relister without timers: the (node, delay) it was asked for, in order."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, float]] = []

    def at(self, node: str, delay: float) -> None:
        self.asked.append((node, delay))

    def cancel(self) -> None:
        pass


class TickHarness:
    def __init__(self, tmp_path: Path, nodes: int = 2, settings: dict[str, Any] | None = None) -> None:
        self.now = 1_000_000.0
        config = load_config(overrides={"state_dir": str(tmp_path), "cluster": "unit", **(settings or {})},
                             environ={})
        self.store = Store(tmp_path / "master.db")
        self.slaves = FakeSlaves()
        self.engine = Engine(config, "secret", self.store, clock=lambda: self.now,
                             slaves=self.slaves)  # type: ignore[arg-type]
        self.engine.pool.shutdown(wait=False)
        self.engine.pool = InlineExecutor()  # type: ignore[assignment]
        self.engine.telemetry_book.pool = self.engine.pool
        self.engine.role = Role(active=True, epoch=1, lease_until=time.monotonic() + 600, node="node1")
        self.engine.activated_epoch = 1
        self.engine.members.refresh = lambda: True  # type: ignore[method-assign]
        self.relists = Relists()
        self.engine.relister = self.relists  # type: ignore[assignment]
        self.set_members({f"node{n}": "active" for n in range(1, nodes + 1)})

    def set_members(self, states: dict[str, str], dead: tuple[str, ...] = ()) -> None:
        """The DNS service's members view: node -> state (active, draining), and who is dead."""
        members = [{"node": node, "address": f"127.0.9.{n + 2}", "alive": node not in dead, "state": member_state,
                    "labels": {}, "last_seen_ago": 0.05} for n, (node, member_state) in enumerate(states.items())]
        self.engine.members.view = {"members": members, "master": "node1", "epoch": 1}
        for member in members:
            self.engine.telemetry_book.store(member["node"], Telemetry(cpu_count=4, memory_total=4 * GiB))

    def submit(self, yaml: str) -> dict[str, Any]:
        """Store a job as a submission does (without waiting for standbys: there are none)."""
        job = parse_spec_text(yaml, source="harness.yaml")
        return self.engine.group_commit.submit(job, "harness.yaml", None)

    def tick(self, advance: float = 0.2) -> None:
        self.now += advance
        self.engine.tick()

    def report(self, node: str, containers: list[ContainerState], listed: float | None = None) -> list[str]:
        return self.engine.on_report(node, containers, None, listed=listed)

    def instances(self, task_id: str) -> list[state.Instance]:
        return state.instances(self.store, task_id)

    def task(self, task_id: str) -> state.Task:
        return state.task(self.store, task_id)

    def events(self) -> list[str]:
        return [row["event"] for row in state.history_after(self.store, 0, 10_000)]

    def close(self) -> None:
        self.store.close()

"""taskorg's real services with one piece swapped in, for the benchmarks that need it.

    python -m bench.lightslave slave --config node1/taskorg.yaml     (any service: dns, node, master, slave)
    python -m bench.lightslave light --config node7/taskorg.yaml     (a light node: bench/lightnode.py)

Environment:
  BENCH_RUNNER=standin   a runner that starts no container: a start order is
                         answered "running" at once and the instance stays
                         running until stopped (scale bench: 10,000 tasks
                         on 100 nodes cannot be 10,000 containers on 2 cores).
  BENCH_NODE_CPUS=0.4    the slave reports this CPU count instead of the
                         machine's, so placement treats the node as a 0.4-CPU
                         machine (speed-up bench: every local node shares the
                         same two cores, so a node's capacity must be its quota).
  BENCH_STANDBYS=127.0.9.3,127.0.9.4
                         the active master streams its state to the standby
                         master services at these addresses only (scale
                         bench: light nodes run no master service, and the
                         master would otherwise retry each of them 5 times a
                         second). Without it: every living member, as usual.

Everything else is taskorg's own code: the HTTP API, the epoch fence, the
reporter and its schedule, replication to the standbys it streams to. The
slave modules are imported only when a slave piece is swapped, so a master
started through here has the memory of `taskorg master`. Core settings would
make these swaps unnecessary (see docs/bench.md, "Core changes asked for").
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


class _NoEvents:
    """Stands in for docker's event stream: blocks until closed (no container ever dies)."""

    def __init__(self) -> None:
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self._closed.wait()
        return iter(())

    def close(self) -> None:
        self._closed.set()


class _StandInClient:
    def events(self, **_: Any) -> _NoEvents:
        return _NoEvents()

    def close(self) -> None:
        pass


class StandInRunner:
    """DockerRunner's interface with an in-memory table instead of containers."""

    def __init__(self, docker_client: Any, cluster: str, node: str, address: str = "0.0.0.0", **_: Any) -> None:
        self.client = _StandInClient()
        self.cluster = cluster
        self.node = node
        self.address = address
        self._lock = threading.Lock()
        self._states: dict[str, dict[str, Any]] = {}  # container id -> state

    def container_name(self, task_id: str, index: int, attempt: int) -> str:
        return f"tk-{self.cluster}-{self.node}-{task_id}-{index}-a{attempt}"

    def start(self, order: Mapping[str, Any]) -> dict[str, Any]:
        from taskorg.slave.runner import _check_order

        order = _check_order(order)
        name = self.container_name(order["task_id"], order["index"], order["attempt"])
        with self._lock:
            for state in self._states.values():
                if state["name"] == name:
                    return dict(state)
            state = {"task_id": order["task_id"], "index": order["index"], "attempt": order["attempt"],
                     "epoch": order["epoch"], "job": order.get("job"), "container_id": uuid.uuid4().hex * 2,
                     "name": name, "status": "running", "exit_code": None, "started_at": _now(),
                     "finished_at": None, "image": order["spec"]["image"], "error": None}
            self._states[state["container_id"]] = state
            return dict(state)

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(s) for s in self._states.values()]

    def stop(self, container_ids: Iterable[str]) -> list[str]:
        ids = [str(c) for c in container_ids if c]
        with self._lock:
            for cid in ids:
                self._states.pop(cid, None)
        return ids

    def stop_task(self, task_id: str) -> list[str]:
        with self._lock:
            ids = [cid for cid, s in self._states.items() if s["task_id"] == task_id]
        return self.stop(ids)

    def logs(self, task_id: str, index: int, tail: int = 200) -> str:
        with self._lock:
            if not any(s["task_id"] == task_id and s["index"] == index for s in self._states.values()):
                raise LookupError(f"no container for {task_id}/{index} on {self.node}")
        return "(stand-in runner: no container, no logs)\n"


def install() -> None:
    if os.environ.get("BENCH_STANDBYS"):
        _stream_only_to(set(os.environ["BENCH_STANDBYS"].split(",")))
    if os.environ.get("BENCH_RUNNER") == "standin":
        from taskorg.slave import service as service_module

        service_module.DockerRunner = StandInRunner  # type: ignore[misc,assignment]
    cpus = os.environ.get("BENCH_NODE_CPUS")
    if cpus:
        _declare_cpus(float(cpus))


def _stream_only_to(addresses: set[str]) -> None:
    """The replicator's standbys: living members at these addresses (its own filter still applies)."""
    from taskorg.master.replication import Replicator

    every_member = Replicator.standbys

    @functools.wraps(every_member)
    def standbys(self: Replicator) -> dict[str, str]:
        return {node: address for node, address in every_member(self).items() if address in addresses}

    Replicator.standbys = standbys  # type: ignore[method-assign]


def _declare_cpus(cpus: float) -> None:
    from taskorg.slave import reporter as reporter_module
    from taskorg.slave import service as service_module
    from taskorg.slave import telemetry

    original = telemetry.collect

    @functools.wraps(original)
    def collect(node: str) -> dict[str, Any]:
        return {**original(node), "cpu_count": cpus}

    telemetry.collect = collect  # the /v1/telemetry endpoint looks it up at call time
    # The reporter took telemetry.collect as a default argument at import time.
    service_module.Reporter = functools.partial(reporter_module.Reporter, collect=collect)  # type: ignore


def main() -> int:
    if sys.argv[1:2] == ["light"]:
        from bench.lightnode import main as light_node

        return light_node(sys.argv[2:])
    install()
    from taskorg.cli.main import main as taskorg_main

    return taskorg_main(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())

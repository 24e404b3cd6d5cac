"""Bounded chaos on a real local cluster, with submissions in flight.

Each round does one of: power loss of the master node (SIGKILL of its
processes and its containers), power loss of another node, a hang of the
master node (SIGSTOP for longer than the lease, then SIGCONT), a restart
of the DNS node's DNS service, a power loss of the DNS node (its DNS service
and dnsmasq, for a second or two), or a hang of the DNS node (the arbiter
while it lives: it is cut off from the others, then comes back). After each round settles it checks what the user was
promised: every acknowledged task runs (or finished) exactly as many times
as it should, none is missing, `master.<suffix>` names a living node; and at
the end, from the nodes' lease log, that no two masters ever held a valid
lease at the same moment. Partitions are rounds of the testbed's chaos test
(tests/testbed/test_partition_chaos.py): on loopback no rule can tell one
node's packets from another's.
"""

from __future__ import annotations

import os
import random
import signal
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import docker
import pytest

from taskorg.devtools.localcluster import LocalCluster
from taskorg.net.resolve import resolve_all
from tests.helpers import wait_until
from tests.leases import check_leases

pytestmark = pytest.mark.cluster

ROUNDS = 32
TIME_CAP = 600.0  # seconds for the whole loop; it stops by itself
SETTLE = 30.0
ACTIONS = ("kill_master", "kill_other", "hang_master", "restart_dns", "power_off_dns_node", "hang_dns_node")


class Submitter(threading.Thread):
    """Submits tasks until told to stop (bounded); remembers what was acknowledged."""

    def __init__(self, cluster: LocalCluster, limit: int) -> None:
        super().__init__(daemon=True)
        self.client = cluster.client(failover_wait=15)
        self.limit = limit
        self.stop = threading.Event()
        # Held by the test while it checks a settled round: no new submission then.
        self.hold = threading.Lock()
        self.acked: dict[str, dict[str, Any]] = {}
        self.errors: list[str] = []
        self.random = random.Random(7)

    def run(self) -> None:
        for number in range(self.limit):
            if self.stop.wait(0.5):
                return
            long_running = number % 5 == 0
            replicas = 2 if number % 10 == 0 else 1
            spec = (f"name: svc-{number}\nimage: taskorg/busybox:latest\ncommand: sleep 3600\n"
                    f"restart: always\nreplicas: {replicas}\nresources: {{cpus: 0.05, memory: 8M}}\n"
                    if long_running else
                    f"name: batch-{number}\nimage: taskorg/busybox:latest\ncommand: sh -c 'sleep 0.5'\n"
                    f"restart: on-failure\nresources: {{cpus: 0.05, memory: 8M}}\n")
            with self.hold:
                try:
                    answer = self.client.submit(spec, source=f"chaos-{number}.yaml")
                except Exception as exc:  # not acknowledged: nothing was promised
                    self.errors.append(f"{number}: {exc}")
                    continue
                for task in answer["tasks"]:
                    self.acked[task["id"]] = {"long": long_running, "replicas": replicas}


def running_containers(cluster: LocalCluster) -> dict[str, int]:
    client = docker.from_env()
    counts: dict[str, int] = defaultdict(int)
    # sparse: no per-container inspect, which races with containers being removed.
    for container in client.containers.list(sparse=True, filters={"label": f"taskorg.cluster={cluster.name}"}):
        counts[container.attrs["Labels"]["taskorg.task"]] += 1
    client.close()
    return counts


def story(cluster: LocalCluster, task_id: str) -> str:
    """A task's instances and history, for a failure message."""
    detail = cluster.client(failover_wait=2).task(task_id)
    instances = ", ".join(f"[{i['index']}] {i['status']}@{i['node']} a{i['attempt']}" for i in detail["instances"])
    history = "; ".join(f"{h['index']}:{h['event']}@{h['node']}: {h['detail']}" for h in detail["history"])
    return f"{instances} | {history}"


class Verdict(str):
    """A reason in words that is truthy only when everything is fine ("ok")."""

    def __bool__(self) -> bool:
        return self == "ok"


def settled(cluster: LocalCluster, acked: dict[str, dict[str, Any]]) -> Verdict:
    """Every acknowledged task is where it should be; else what is not, in words."""
    tasks = {t["id"]: t for t in cluster.client(failover_wait=2).tasks()}
    containers = running_containers(cluster)
    for task_id, promise in list(acked.items()):
        task = tasks.get(task_id)
        if task is None:
            return Verdict(f"acknowledged task {task_id} is missing from the master state")
        if promise["long"]:
            if task["status"] != "running" or containers.get(task_id, 0) != promise["replicas"]:
                return Verdict(f"{task_id} should run {promise['replicas']}x: status {task['status']}, "
                               f"{containers.get(task_id, 0)} containers running ({story(cluster, task_id)})")
        elif task["status"] not in ("succeeded",):
            return Verdict(f"{task_id} should have finished: {task['status']} ({story(cluster, task_id)})")
    return Verdict("ok")


def log_tails(cluster: LocalCluster, lines: int = 15) -> str:
    """The last lines of every service's log, for a round that did not settle."""
    parts = []
    for path in sorted((cluster.workdir / "logs").glob("*.log")):
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {path.name}\n" + "\n".join(tail))
    return "\n".join(parts)


def test_chaos_rounds_lose_nothing_and_never_split_the_brain(cluster_factory: Any) -> None:
    # A name of its own: another session's chaos test (same tmp_path name) must not write into it.
    handle, name = tempfile.mkstemp(prefix="taskorg-leases-", suffix=".log", dir="/tmp")
    os.close(handle)
    lease_log = Path(name)
    cluster: LocalCluster = cluster_factory(3, settings={"lease_log": str(lease_log), "log_level": "info"})
    config = cluster.config
    submitter = Submitter(cluster, limit=250)
    submitter.start()
    rng = random.Random(2026)
    started = time.monotonic()
    done = []
    try:
        for round_number in range(ROUNDS):
            if time.monotonic() - started > TIME_CAP:
                break
            action = ACTIONS[round_number % len(ACTIONS)]
            master = cluster.wait_master(timeout=20)
            master_index = cluster.index_of(master)
            if action == "kill_master":
                cluster.kill_node(master_index)
                time.sleep(rng.uniform(1.0, 2.5))
                cluster.start_node(master_index)
            elif action == "kill_other":
                other = rng.choice([i for i in (1, 2, 3) if i != master_index])
                cluster.kill_node(other)
                time.sleep(rng.uniform(2.0, 3.0))
                cluster.start_node(other)
            elif action == "hang_master":
                cluster.pause_node(master_index)
                time.sleep(config.lease_timeout * 3 + rng.uniform(0, 1.5))
                cluster.resume_node(master_index)
            elif action == "restart_dns":
                cluster.restart_dns()
            elif action == "power_off_dns_node":
                cluster.kill_dns_node()
                time.sleep(rng.uniform(1.0, 2.5))
                cluster.start_dns()
            else:
                cluster.kill_dns_node(signal.SIGSTOP)
                time.sleep(config.lease_timeout * 3 + rng.uniform(0, 1.5))
                cluster.kill_dns_node(signal.SIGCONT)
            # Submissions ran during the action; hold them while the round settles.
            with submitter.hold:
                try:
                    wait_until(lambda: settled(cluster, dict(submitter.acked)), SETTLE,
                               f"round {round_number} ({action}) to settle", interval=0.3)
                except AssertionError as stuck:
                    raise AssertionError(f"{stuck}\n{log_tails(cluster)}") from None
                living = {cluster.node_address(i) for i in (1, 2, 3)}
                assert resolve_all(config, config.master_name)[0] in living
            done.append(action)
    finally:
        submitter.stop.set()
        submitter.join(20)
    wait_until(lambda: settled(cluster, dict(submitter.acked)), SETTLE, "the last submissions to settle")
    epochs, problems = check_leases(lease_log)
    print(f"\nchaos: {len(done)} rounds ({', '.join(f'{a}={done.count(a)}' for a in ACTIONS)}) in "
          f"{time.monotonic() - started:.0f} s; {len(submitter.acked)} acknowledged tasks; "
          f"{len(submitter.errors)} submissions not acknowledged; {epochs} epochs")
    assert len(done) >= 30
    assert not problems, problems
    assert len(submitter.acked) >= 30

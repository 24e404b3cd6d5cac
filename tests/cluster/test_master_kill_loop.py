"""SIGKILL the master mid-submission, round after round (bounded): nothing acknowledged is lost.

A client thread submits small jobs all along. Each round kills the active
master's whole machine (SIGKILL of its processes, its containers swept),
waits a moment and starts it again; the next round begins once that machine
is back as a caught-up standby (one failure at a time, which three machines
survive). Once the round settles, the new master
must hold every task it acknowledged, each once (one task per submission,
however often the client had to retry it across the failover). At the end
every node and the DNS node lose power once more, and `PRAGMA
integrity_check` is `ok` on every SQLite database any of them keeps.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from taskorg.devtools.localcluster import LocalCluster
from tests.cluster.test_chaos import Verdict
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster

ROUNDS = 8
TIME_CAP = 110.0  # seconds for the whole loop; it stops by itself
SETTLE = 25.0
SUBMISSIONS = 400


class Submitter(threading.Thread):
    """Submits one small job every ~0.25 s until told to stop; remembers what was acknowledged."""

    def __init__(self, cluster: LocalCluster) -> None:
        super().__init__(daemon=True)
        self.client = cluster.client(failover_wait=10)
        self.stop = threading.Event()
        self.hold = threading.Lock()  # held by the test while it checks a settled round
        self.acked: dict[str, str] = {}  # task id -> job name
        self.refused = 0

    def run(self) -> None:
        for number in range(SUBMISSIONS):
            if self.stop.wait(0.25):
                return
            name = f"kill-{number}"
            spec = (f"name: {name}\nimage: taskorg/busybox:latest\ncommand: ['true']\n"
                    "resources: {cpus: 0.01, memory: 8M}\n")
            with self.hold:
                try:
                    answer = self.client.submit(spec, source=f"{name}.yaml")
                except Exception:  # not acknowledged: nothing was promised
                    self.refused += 1
                    continue
                for task in answer["tasks"]:
                    self.acked[task["id"]] = name


def lost_or_doubled(cluster: LocalCluster, acked: dict[str, str]) -> str:
    """'' when the master holds every acknowledged task, each submission once; else what is wrong."""
    tasks = cluster.client(failover_wait=2).tasks()
    ids_by_name: dict[str, set[str]] = defaultdict(set)
    for task in tasks:
        ids_by_name[task["name"]].add(task["id"])
    doubled = {name: ids for name, ids in ids_by_name.items() if name.startswith("kill-") and len(ids) > 1}
    if doubled:
        return f"submitted once, stored twice: {doubled}"
    missing = [task_id for task_id, name in acked.items() if task_id not in ids_by_name.get(name, ())]
    return f"acknowledged but missing: {missing[:10]} ({len(missing)})" if missing else ""


def whole(cluster: LocalCluster) -> bool:
    """Every other node is a standby the master replicates to, at least as far as the master's
    position when first asked (submissions go on meanwhile)."""
    first = cluster.client(failover_wait=2).status()
    if len(first.get("replicas") or {}) < cluster.nodes - 1:
        return False
    return bool(wait_until(lambda: min(cluster.client(failover_wait=2).status()["replicas"].values()) >= first["seq"],
                           5, "the standbys to catch up", interval=0.1))


def integrity(path: Path) -> str:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        return "; ".join(row[0] for row in db.execute("PRAGMA integrity_check"))


def test_sigkill_of_the_master_mid_submission_loses_nothing(cluster_factory: Any) -> None:
    cluster: LocalCluster = cluster_factory(3)
    submitter = Submitter(cluster)
    submitter.start()
    rng = random.Random(15)
    started, rounds, failovers = time.monotonic(), 0, []
    try:
        for _ in range(ROUNDS):
            if time.monotonic() - started > TIME_CAP:
                break
            master = cluster.index_of(cluster.wait_master(timeout=20))
            # One failure at a time (what three machines survive): the machine killed last round is
            # back and a caught-up standby before this one is killed.
            wait_until(lambda: whole(cluster), SETTLE, f"round {rounds}: every standby replicating", interval=0.2)
            time.sleep(rng.uniform(0.3, 1.2))  # submissions in flight when the kill lands
            killed_at = time.monotonic()
            cluster.kill_node(master)
            new_master = cluster.index_of(cluster.wait_master(timeout=20))
            failovers.append(time.monotonic() - killed_at)
            assert new_master != master
            cluster.start_node(master)
            with submitter.hold:
                wait_until(lambda: Verdict(lost_or_doubled(cluster, dict(submitter.acked)) or "ok"), SETTLE,
                           f"round {rounds}: every acknowledged task on the new master, once", interval=0.3)
            rounds += 1
    finally:
        submitter.stop.set()
        submitter.join(20)
    assert not lost_or_doubled(cluster, dict(submitter.acked))

    # Power loss of every machine, then every database must be whole.
    for index in range(1, cluster.nodes + 1):
        cluster.kill_node(index, sig=signal.SIGKILL)
    cluster.kill_dns_node()
    databases = sorted(p for p in cluster.workdir.rglob("*.db") if p.is_file())
    verdicts = {str(p.relative_to(cluster.workdir)): integrity(p) for p in databases}
    print(f"\n{rounds} master kills in {time.monotonic() - started:.0f} s, failover "
          f"{min(failovers):.1f}-{max(failovers):.1f} s; {len(submitter.acked)} tasks acknowledged, "
          f"{submitter.refused} submissions not acknowledged; integrity_check: {verdicts}")
    assert rounds >= 6
    assert len(submitter.acked) >= 50
    assert databases and all(v == "ok" for v in verdicts.values()), verdicts

"""Failover times on a local cluster, at default settings.

Two figures, each over N rounds, as p50 / p99 / max:
  master: from SIGKILL of every process of the master node (and its
          containers) to the new master acknowledging a submission;
  tasks:  from SIGKILL of a node (not the master) to every task that ran
          there running again elsewhere.
Prints a table and writes JSON (`--json PATH`).

    .venv/bin/python bench/failover.py --rounds 20
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import docker

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from taskorg.localcluster import LocalCluster  # noqa: E402
from tests.helpers import free_loopback_block  # noqa: E402

PROBE = b"name: probe\nimage: taskorg/busybox:latest\ncommand: 'true'\nrestart: never\n"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": round(percentile(values, 50), 3), "p99": round(percentile(values, 99), 3),
            "max": round(max(values), 3), "mean": round(statistics.fmean(values), 3)}


def running_by_node(cluster: LocalCluster) -> dict[str, set[str]]:
    client = docker.from_env()
    found: dict[str, set[str]] = {}
    for c in client.containers.list(sparse=True, filters={"label": f"taskorg.cluster={cluster.name}"}):
        labels = c.attrs["Labels"]
        found.setdefault(labels["taskorg.task"], set()).add(labels["taskorg.node"])
    client.close()
    return found


def master_round(cluster: LocalCluster) -> float:
    client = cluster.client(failover_wait=0)
    index = cluster.index_of(cluster.wait_master())
    started = time.monotonic()
    cluster.kill_node(index)
    while time.monotonic() - started < 30:
        try:
            client.call("POST", "/v1/jobs", retry=False, params={"source": "bench"}, data=PROBE,
                        headers={"Content-Type": "application/yaml", "Idempotency-Key": f"bench-{started}"})
            break
        except Exception:
            time.sleep(0.01)
    elapsed = time.monotonic() - started
    cluster.start_node(index)
    cluster.wait_ready(30)
    return elapsed


def tasks_round(cluster: LocalCluster, task_ids: list[str]) -> float:
    master = cluster.index_of(cluster.wait_master())
    placed = running_by_node(cluster)
    victims = [i for i in range(1, cluster.nodes + 1) if i != master]
    # The node with the most of our tasks.
    victim = max(victims, key=lambda i: sum(1 for t in task_ids if f"node{i}" in placed.get(t, set())))
    name = cluster.node_name(victim)
    moved = [t for t in task_ids if name in placed.get(t, set())]
    started = time.monotonic()
    cluster.kill_node(victim)
    while time.monotonic() - started < 60:
        now = running_by_node(cluster)
        if all(now.get(t) and name not in now[t] for t in moved):
            break
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    cluster.start_node(victim)
    cluster.wait_ready(30)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=6, help="long-running tasks spread over the nodes")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    if args.rounds < 1 or args.nodes < 2:
        parser.error("--rounds must be at least 1 and --nodes at least 2")

    workdir = Path(tempfile.mkdtemp(prefix="taskorg-bench-", dir="/tmp"))
    cluster = LocalCluster(workdir, nodes=args.nodes, dns_address=free_loopback_block(start=200),
                           name=f"bench-{workdir.name[-6:]}", webview=False)
    results: dict[str, Any] = {}
    try:
        cluster.start()
        client = cluster.client()
        # Separate one-replica tasks: "running again" is then a per-task fact.
        spec = (f"name: steady\nimage: taskorg/busybox:latest\ncommand: sleep 3600\nrestart: always\n"
                f"resources: {{cpus: 0.05, memory: 8M}}\n")
        task_ids = [client.submit(spec, source="bench")["tasks"][0]["id"] for _ in range(args.tasks)]
        cluster._wait(lambda: len(running_by_node(cluster)) == args.tasks, 30, "the bench tasks to run")
        master_times, task_times = [], []
        for number in range(args.rounds):
            master_times.append(master_round(cluster))
            task_times.append(tasks_round(cluster, task_ids))
            print(f"round {number + 1}/{args.rounds}: master back {master_times[-1]:.3f} s, "
                  f"tasks back {task_times[-1]:.3f} s", file=sys.stderr, flush=True)
        results = {"master_api_back": summary(master_times), "tasks_running_again": summary(task_times),
                   "settings": {k: getattr(cluster.config, k) for k in
                                ("heartbeat_interval", "lease_timeout", "lease_margin", "node_dead_after")},
                   "raw": {"master": master_times, "tasks": task_times}}
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{'figure':<28}{'p50':>8}{'p99':>8}{'max':>8}   target")
    for key, target in (("master_api_back", "p50<=1s p99<=2s"), ("tasks_running_again", "p99<=3s")):
        s = results[key]
        print(f"{key:<28}{s['p50']:>8.3f}{s['p99']:>8.3f}{s['max']:>8.3f}   {target}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

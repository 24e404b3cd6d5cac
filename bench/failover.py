"""Failover times on a local cluster, at default settings.

Three figures, each over N rounds, as p50 / p99 / max:
  master: from SIGKILL of every process of the master node (and its
          containers) to the new master acknowledging a submission;
  tasks:  from SIGKILL of a node (not the master) to every task that ran
          there running again elsewhere;
  DNS node (local only): from SIGKILL of the DNS node's DNS service and
          dnsmasq to a submission acknowledged.
Each round also records a timeline (when DNS named the new master, when the
DNS service declared the node dead, when the first task ran again), so a
slow round can be explained. Prints a table and writes JSON (`--json PATH`).

    .venv/bin/python bench/failover.py --rounds 20
    .venv/bin/python bench/failover.py --rounds 20 --testbed   # the same on the multi-host testbed
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import docker

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (CpuWatch, bench_cluster, docker_time, figure, log, percentile,  # noqa: E402,F401 (re-exported)
                          print_figures, probe_spec, running_by_node, summary, wait_until)
from taskorg.devtools.localcluster import LocalCluster  # noqa: E402
from taskorg.net.client import ServiceClient  # noqa: E402
from taskorg.net.resolve import resolve_master  # noqa: E402

# Issue 13: master killed -> submission acknowledged p50 <= 0.8 s, p99 <= 1 s (local and testbed);
# issue 14 keeps them, and a killed node's tasks back p99 <= 2.5 s.
TARGETS = {"master_api_back": (("p50", 0.8), ("p99", 1.0)), "tasks_running_again": (("p99", 2.5),)}
DNS_NODE_TARGET = 3.0  # issue 13: DNS node killed -> submission acknowledged, p99


def _dns_members(cluster: LocalCluster) -> dict[str, dict[str, Any]]:
    client = ServiceClient(cluster.config.dns_api_url, cluster.secret, timeout=0.5)
    try:
        return {m["node"]: m for m in client.get("/v1/members")["members"]}
    finally:
        client.close()


def _probe_until_acknowledged(cluster: LocalCluster, started: float, old_master: str | None = None) -> dict[str, Any]:
    """Submit the probe until one is acknowledged (30 s at most); seconds since `started`, and when
    `master.<suffix>` stopped naming `old_master`."""
    client = cluster.client(failover_wait=0)
    config = cluster.config
    dns_moved: float | None = None
    acked = None
    while time.monotonic() - started < 30:
        if dns_moved is None and old_master is not None:
            try:
                if resolve_master(config, timeout=0.2) != old_master:
                    dns_moved = time.monotonic() - started
            except Exception:
                pass
        try:
            client.call("POST", "/v1/jobs", retry=False, params={"source": "bench"}, data=probe_spec(f"{started * 1e6:.0f}"),
                        headers={"Content-Type": "application/yaml", "Idempotency-Key": f"bench-{started}"})
            acked = time.monotonic() - started
            break
        except Exception:
            time.sleep(0.01)
    return {"seconds": acked, "dns_moved": dns_moved}


def master_round(cluster: LocalCluster) -> dict[str, float | None]:
    """Kill the master node; time until a submission is acknowledged, and when DNS moved."""
    old = cluster.wait_master()
    index = cluster.index_of(old)
    started = time.monotonic()
    cluster.kill_node(index)
    result = _probe_until_acknowledged(cluster, started, old)
    cluster.start_node(index)
    cluster.wait_ready(30)
    return result


def dns_node_round(cluster: LocalCluster) -> dict[str, float | None]:
    """Power off the DNS node (its DNS service and dnsmasq); time until a submission is acknowledged."""
    cluster.wait_master()
    started = time.monotonic()
    cluster.kill_dns_node()
    result = _probe_until_acknowledged(cluster, started)
    cluster.start_dns()
    cluster.wait_ready(30)
    # The next master round starts as the cluster normally is: the witness arbiter again (it is
    # offered the role back every 2 s), so killing the master does not also kill the arbiter.
    dns = ServiceClient(cluster.config.dns_api_url, cluster.secret, timeout=0.5)
    try:
        wait_until(lambda: dns.get("/v1/consensus")["leader"] == cluster.dns_address, 15,
                   "the DNS node to be the arbiter again")
    finally:
        dns.close()
    return result


def _task_timeline(cluster: LocalCluster, task_ids: list[str], node: str, killed_at: float) -> dict[str, Any]:
    """After a tasks round: when the master rescheduled and placed the moved tasks (its history), and
    when dockerd created and started their new containers; seconds after the kill."""
    client = cluster.client()
    rescheduled, placed = [], []
    for task_id in task_ids:
        for event in client.task(task_id)["history"]:
            if event["time"] < killed_at:
                continue
            if event["event"] == "rescheduled" and event["node"] == node:
                rescheduled.append(event["time"] - killed_at)
            elif event["event"] == "placed":
                placed.append(event["time"] - killed_at)
    created, started = [], []
    engine = docker.from_env()
    try:
        for c in engine.containers.list(filters={"label": f"taskorg.cluster={cluster.name}"}, ignore_removed=True):
            if c.labels.get("taskorg.task") in task_ids:
                made = docker_time(c.attrs.get("Created"))
                began = docker_time((c.attrs.get("State") or {}).get("StartedAt"))
                if made and made >= killed_at:
                    created.append(made - killed_at)
                    if began:
                        started.append(began - killed_at)
    finally:
        engine.close()

    def span(values: list[float]) -> list[float] | None:
        return [round(min(values), 3), round(max(values), 3)] if values else None

    return {"rescheduled": span(rescheduled), "placed": span(placed), "created": span(created),
            "started": span(started)}



def tasks_round(cluster: LocalCluster, task_ids: list[str]) -> dict[str, Any]:
    """Kill a standby node holding tasks; time until all its tasks run elsewhere."""
    master = cluster.index_of(cluster.wait_master())
    # Tasks of a node killed in the master round may still be on their way: start from all running.
    placed = wait_until(lambda: (lambda p: p if all(len(p.get(t, ())) == 1 for t in task_ids) else None)(
        running_by_node(cluster)), 30, "every bench task to run exactly once")
    victims = [i for i in range(1, cluster.nodes + 1) if i != master]
    # The node with the most of our tasks.
    victim = max(victims, key=lambda i: sum(1 for t in task_ids if cluster.node_name(i) in placed.get(t, set())))
    name = cluster.node_name(victim)
    moved = [t for t in task_ids if name in placed.get(t, set())]
    if not moved:
        return {"seconds": None, "skipped": "every task ran on the master node", "tasks": 0}
    declared_dead = first_back = done = None
    killed_at = time.time()
    started = time.monotonic()
    cluster.kill_node(victim)
    while time.monotonic() - started < 60:
        now = running_by_node(cluster)
        back = [t for t in moved if now.get(t) and name not in now[t]]
        elapsed = time.monotonic() - started
        if back and first_back is None:
            first_back = elapsed
        if len(back) == len(moved):
            done = elapsed
            break
        if declared_dead is None:
            try:
                if not _dns_members(cluster)[name]["alive"]:
                    declared_dead = time.monotonic() - started
            except Exception:
                pass
        time.sleep(0.02)
    timeline = _task_timeline(cluster, moved, name, killed_at)
    cluster.start_node(victim)
    cluster.wait_ready(30)
    return {"seconds": done, "declared_dead": declared_dead, "first_task_back": first_back, "tasks": len(moved),
            "timeline": timeline}


def measure(cluster: LocalCluster, rounds: int, tasks: int) -> dict[str, Any]:
    client = cluster.client()
    # Separate one-replica tasks: "running again" is then a per-task fact. Each reserves 30% of the
    # machine's CPUs, so a node holds at most 3 and the two nodes that are not the master always
    # hold some: with small reservations placement (ties to the lowest node number) often stacked
    # every task on the master node, and 12 of 20 rounds had nothing to move. The tasks themselves
    # only sleep; the reservation is bookkeeping.
    cpus = round(0.3 * (os.cpu_count() or 1), 2)
    spec = ("name: steady-{n}\nimage: taskorg/busybox:latest\ncommand: sleep 3600\nrestart: always\n"
            f"resources: {{{{cpus: {cpus}, memory: 8M}}}}\n")
    # A name each: a running job's name submitted again is an update of it, not a second job.
    task_ids = [client.submit(spec.format(n=n), source="bench")["tasks"][0]["id"] for n in range(tasks)]
    cluster._wait(lambda: len(running_by_node(cluster)) == tasks, 30, "the bench tasks to run")
    master_rounds, task_rounds, dns_rounds = [], [], []
    with CpuWatch(cluster.pids.values()) as watch:
        for number in range(rounds):
            master_rounds.append(master_round(cluster))
            task_rounds.append(tasks_round(cluster, task_ids))
            dns_rounds.append(dns_node_round(cluster))
            m, t = master_rounds[-1], task_rounds[-1]
            log(f"failover round {number + 1}/{rounds}: master back {_r(m['seconds'])} s (DNS moved "
                f"{_r(m['dns_moved'])} s); tasks back {_r(t['seconds'])} s ({t['tasks']} tasks; node declared dead "
                f"{_r(t.get('declared_dead'))} s, first task back {_r(t.get('first_task_back'))} s; "
                f"{t.get('timeline') or t.get('skipped')}); DNS node killed: acknowledged "
                f"{_r(dns_rounds[-1]['seconds'])} s")
    master_times = [r["seconds"] for r in master_rounds if r["seconds"] is not None]
    task_times = [r["seconds"] for r in task_rounds if r["seconds"] is not None]
    dns_times = [r["seconds"] for r in dns_rounds if r["seconds"] is not None]
    skipped = sum(1 for r in task_rounds if r.get("skipped"))
    failed = (rounds - len(master_times)) + (rounds - skipped - len(task_times)) + (rounds - len(dns_times))
    results: dict[str, Any] = {
        "master_api_back": summary(master_times) if master_times else None,
        "tasks_running_again": summary(task_times) if task_times else None,
        "dns_node_killed_api": summary(dns_times) if dns_times else None,
        "timeline": {
            "dns_moved": summary([r["dns_moved"] for r in master_rounds if r["dns_moved"] is not None] or [0.0]),
            "api_after_dns": summary([r["seconds"] - r["dns_moved"] for r in master_rounds
                                      if r["seconds"] is not None and r["dns_moved"] is not None] or [0.0]),
            "node_declared_dead": summary([r["declared_dead"] for r in task_rounds
                                           if r.get("declared_dead") is not None] or [0.0]),
            "tasks_after_declared_dead": summary([r["seconds"] - r["declared_dead"] for r in task_rounds
                                                  if r["seconds"] is not None and r.get("declared_dead") is not None]
                                                 or [0.0]),
        },
        "settings": {k: getattr(cluster.config, k) for k in
                     ("heartbeat_interval", "lease_timeout", "lease_margin", "node_dead_after",
                      "report_resync_interval", "report_interval")},
        "raw": {"master": master_rounds, "tasks": task_rounds, "dns_node": dns_rounds},
        "rounds_without_answer": failed,
        "task_rounds_skipped": skipped,
        **watch.as_dict(),
    }
    results["figures"] = figures(results, rounds)
    return results


def _r(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def figures(results: dict[str, Any], rounds: int, variant: str = "local") -> list[dict[str, Any]]:
    out = []
    timeline = results["timeline"]
    details = {
        "master_api_back": f"n={rounds}; DNS named the new master after p50 {timeline['dns_moved']['p50']} s, "
                           f"API answered p50 {timeline['api_after_dns']['p50']} s later",
        "tasks_running_again": f"n={rounds}; node declared dead after p50 {timeline['node_declared_dead']['p50']} s "
                               f"(node_dead_after {results['settings']['node_dead_after']} s), tasks running "
                               f"p50 {timeline['tasks_after_declared_dead']['p50']} s later",
    }
    names = {"master_api_back": "master killed -> submission acknowledged",
             "tasks_running_again": "node killed -> its tasks running again"}
    for key, targets in TARGETS.items():
        stats = results[key]
        for stat, limit in targets:
            value = stats[stat] if stats else None
            out.append(figure(f"failover ({variant}) {names[key]}: {stat}", value, "s", f"<= {limit:g} s",
                              value is not None and value <= limit, details[key]))
        out.append(figure(f"failover ({variant}) {names[key]}: max", stats["max"] if stats else None, "s"))
    dns = results.get("dns_node_killed_api")
    if "dns_node_killed_api" in results:  # (local rounds only)
        value = dns["p99"] if dns else None
        out.append(figure(f"failover ({variant}) DNS node killed -> submission acknowledged: p99", value, "s",
                          f"<= {DNS_NODE_TARGET:g} s", value is not None and value <= DNS_NODE_TARGET,
                          f"n={rounds}; p50 {dns['p50'] if dns else '-'} s; its DNS service and dnsmasq SIGKILLed"))
    out.append(figure(f"failover ({variant}) rounds without an answer in time", results["rounds_without_answer"],
                      "rounds", "0", results["rounds_without_answer"] == 0))
    return out


def run(quick: bool = False, rounds: int | None = None, nodes: int = 3, tasks: int = 6) -> dict[str, Any]:
    rounds = rounds or (5 if quick else 20)
    with bench_cluster(nodes=nodes) as cluster:
        return measure(cluster, rounds, tasks)


def run_testbed(bed: Any, rounds: int) -> dict[str, Any]:
    """The same two figures on the multi-host testbed (`docker kill` of a host), playbook defaults."""
    from bench import tbcluster

    tbcluster.wait_healthy(bed)
    tbcluster.submit_replicas(bed)
    master_rounds, node_rounds = [], []
    with CpuWatch() as watch:
        for number in range(rounds):
            master_rounds.append(tbcluster.taskorg_master_round(bed))
            node_rounds.append(tbcluster.taskorg_node_round(bed))
            log(f"testbed failover round {number + 1}/{rounds}: master back {_r(master_rounds[-1]['seconds'])} s, "
                f"its replicas {_r(master_rounds[-1]['replicas_back'])} s; node's tasks back "
                f"{_r(node_rounds[-1]['seconds'])} s")
    tbcluster.cancel_replicas(bed)
    timings = tbcluster.playbook_timings(bed)
    master_times = [r["seconds"] for r in master_rounds if r["seconds"] is not None]
    replica_times = [r["replicas_back"] for r in master_rounds if r["replicas_back"] is not None]
    task_times = [r["seconds"] for r in node_rounds if r["seconds"] is not None]
    skipped = sum(1 for r in node_rounds if r.get("skipped"))
    failed = (rounds - len(master_times)) + (rounds - skipped - len(task_times))
    stats = {"master_api_back": summary(master_times) if master_times else None,
             "master_host_replicas_back": summary(replica_times) if replica_times else None,
             "tasks_running_again": summary(task_times) if task_times else None}
    dns = [r["dns_moved"] for r in master_rounds if r["dns_moved"] is not None]
    out = []
    for key, targets in TARGETS.items():
        s = stats[key]
        name = ("master host killed -> submission acknowledged" if key == "master_api_back"
                else "host killed -> its tasks running again")
        for stat, limit in targets:
            value = s[stat] if s else None
            out.append(figure(f"failover (testbed) {name}: {stat}", value, "s", f"<= {limit:g} s",
                              value is not None and value <= limit,
                              f"n={len(master_times if key == 'master_api_back' else task_times)}; playbook timings "
                              f"{timings}" + (f"; DNS moved p50 {summary(dns)['p50']} s" if dns and
                                              key == "master_api_back" else "")))
        out.append(figure(f"failover (testbed) {name}: max", s["max"] if s else None, "s"))
    if stats["master_host_replicas_back"]:
        out.append(figure("failover (testbed) master host killed -> its replicas running again: p99",
                          stats["master_host_replicas_back"]["p99"], "s", "<= 3 s",
                          stats["master_host_replicas_back"]["p99"] <= 3.0,
                          f"p50 {stats['master_host_replicas_back']['p50']} s"))
    out.append(figure("failover (testbed) rounds without an answer in time", failed, "rounds", "0", failed == 0))
    return {"figures": out, **stats, "raw": {"master": master_rounds, "node": node_rounds},
            "playbook_timings": timings, "rounds": rounds, **watch.as_dict(),
            "notes": ["testbed: Debian hosts (systemd + dockerd in containers) on a docker network of their own, "
                      f"provisioned by the real playbook with timings {timings}; a failure is `docker kill` "
                      "of a host container",
                      f"the timings {timings} put a floor under these figures: no election before lease + margin "
                      "after the last renewal, no rescheduling before node_dead_after"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=6, help="long-running tasks spread over the nodes")
    parser.add_argument("--testbed", action="store_true",
                        help="on the multi-host testbed (hosts provisioned by the playbook) instead")
    parser.add_argument("--slow-timings", action="store_true",
                        help="with --testbed: provision the slower profile for Wi-Fi or stalling machines "
                             "(ansible/group_vars/all.yml) instead of the defaults")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    if args.rounds < 1 or args.nodes < 2:
        parser.error("--rounds must be at least 1 and --nodes at least 2")
    if not args.testbed and not 1 <= args.tasks <= 3 * (args.nodes - 1):
        parser.error(f"--tasks must be 1..{3 * (args.nodes - 1)} with {args.nodes} nodes: a node holds at most 3 "
                     "bench tasks, and the survivors of a kill must hold them all")
    if args.testbed:
        from bench import tbcluster

        with tbcluster.provisioned_testbed(tbcluster.SLOW_TIMINGS if args.slow_timings else None) as bed:
            results = run_testbed(bed, args.rounds)
        print_figures(f"failover (multi-host testbed, {'slow' if args.slow_timings else 'default'} timings)",
                      results["figures"])
    else:
        results = run(rounds=args.rounds, nodes=args.nodes, tasks=args.tasks)
        print_figures(f"failover (local cluster, {args.nodes} nodes, default settings)", results["figures"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

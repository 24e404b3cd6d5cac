"""Memory and idle CPU of one regular node's services and of the DNS node.

From an idle 3-node local cluster (default settings, webview on, no tasks):
the pids come from the cluster's `cluster.json` (and dnsmasq's pid file),
read with psutil. Memory: RSS, and PSS/USS from /proc/PID/smaps_rollup
(PSS splits shared pages, such as the Python binary and shared libraries,
between the processes that map them, so PSS sums are what the node really
uses). Idle CPU: CPU seconds (user + system) each process used over a
window (30 s; 15 s in quick mode), as a percentage of one core.

Three regular nodes are reported: the active master's (it sends reports,
replication and ticks), a standby's, and one whose DNS service keeps a
read-only replica of the consensus group instead of voting (in a cluster of
more than five machines, most nodes are that one). Then the same cluster takes 1,000
tasks that fit no node (a label constraint nobody meets) and the idle
master's CPU is measured again: its tick must not look at every one of them
five times a second. Last, the DNS node's idle CPU with 20 nodes
heartbeating it (3 full nodes and 17 light ones, as in the scale bench).

    .venv/bin/python bench/footprint.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import psutil

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import BenchCluster, CpuWatch, bench_cluster, figure, log, print_figures  # noqa: E402
from taskorg.devtools.localcluster import NODE_SERVICES  # noqa: E402
from taskorg.net.client import ServiceClient  # noqa: E402

MiB = 2**20
# The lean control plane's targets (issue 14): a Raspberry Pi is 3-4 times slower per core than
# this machine, so 1 % of a core here is a few percent of a Pi's; k3s's agent takes 3 % on a Xeon.
NODE_PSS_TARGET_MIB = 80
NODE_CPU_TARGET_PCT = 1.0
DNS_PSS_TARGET_MIB = 128
PENDING_TASKS = 1000
PENDING_CPU_TARGET_PCT = 2.0
DNS_WIDE_NODES = 20  # the second DNS figure: the DNS node of a 20-node cluster
DNS_WIDE_CPU_TARGET_PCT = 3.0


def dnsmasq_pid(cluster: BenchCluster) -> int | None:
    try:
        pid = int((cluster.workdir / "dns" / "dns" / "dnsmasq.pid").read_text().strip())
        return pid if "dnsmasq" in " ".join(psutil.Process(pid).cmdline()) else None
    except (OSError, ValueError, psutil.Error):
        return None


def votes(cluster: BenchCluster, index: int) -> bool:
    """Whether node `index`'s DNS service is a voter of the consensus group (else a read-only replica)."""
    config = cluster.config
    api = ServiceClient(config.url(cluster.node_address(index), config.dns_api_port), cluster.secret, timeout=2)
    try:
        return bool(api.get("/v1/consensus")["voting"])
    finally:
        api.close()


def groups(cluster: BenchCluster, master: int) -> dict[str, dict[str, int]]:
    others = [i for i in range(1, cluster.nodes + 1) if i != master]
    replica = next((i for i in reversed(others) if not votes(cluster, i)), None)
    standby = next(i for i in others if i != replica)
    found = {
        f"regular node, active master (node{master})": {s: cluster.pids[f"node{master}/{s}"] for s in NODE_SERVICES},
        f"regular node, standby (node{standby})": {s: cluster.pids[f"node{standby}/{s}"] for s in NODE_SERVICES},
    }
    if replica is not None:
        found[f"regular node, standby, non-voting (node{replica})"] = {
            s: cluster.pids[f"node{replica}/{s}"] for s in NODE_SERVICES}
    found["DNS node"] = {"dns service": cluster.pids["dns"]}
    pid = dnsmasq_pid(cluster)
    if pid:
        found["DNS node"]["dnsmasq"] = pid
    return found


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def memory(pid: int) -> dict[str, float | None]:
    proc = psutil.Process(pid)
    try:
        full = proc.memory_full_info()
        return {"rss_mib": round(full.rss / MiB, 1), "pss_mib": round(full.pss / MiB, 1),
                "uss_mib": round(full.uss / MiB, 1)}
    except (psutil.AccessDenied, AttributeError):
        return {"rss_mib": round(proc.memory_info().rss / MiB, 1), "pss_mib": None, "uss_mib": None}


def measure(cluster: BenchCluster, window: float, settle: float) -> dict[str, Any]:
    master = cluster.index_of(cluster.wait_master())
    time.sleep(settle)  # start-up work (imports, first reports, speed probe) is not idle
    watched = groups(cluster, master)
    before = {pid: cpu_seconds(pid) for g in watched.values() for pid in g.values()}
    with CpuWatch(cluster.pids.values()) as watch:
        started = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - started
    after = {pid: cpu_seconds(pid) for pid in before}
    processes: dict[str, dict[str, Any]] = {}
    totals: dict[str, dict[str, float]] = {}
    for group, services in watched.items():
        total = {"rss_mib": 0.0, "pss_mib": 0.0, "uss_mib": 0.0, "cpu_pct": 0.0}
        for service, pid in services.items():
            row = {"pid": pid, **memory(pid), "cpu_pct": round(100 * (after[pid] - before[pid]) / elapsed, 2),
                   "threads": psutil.Process(pid).num_threads()}
            processes[f"{group} / {service}"] = row
            for key in total:
                total[key] += row[key] or 0.0
        totals[group] = {k: round(v, 1 if k != "cpu_pct" else 2) for k, v in total.items()}
        log(f"footprint: {group}: RSS {totals[group]['rss_mib']} MiB, PSS {totals[group]['pss_mib']} MiB, "
            f"idle CPU {totals[group]['cpu_pct']}% of a core")
    figures = []
    for group, total in totals.items():
        dns = group == "DNS node"
        parts = ", ".join(f"{name.split(' / ')[1]} {row['pss_mib']}" for name, row in processes.items()
                          if name.startswith(group + " /"))
        pss_target = DNS_PSS_TARGET_MIB if dns else NODE_PSS_TARGET_MIB
        figures.append(figure(f"footprint {group}: memory PSS", total["pss_mib"], "MiB", f"<= {pss_target} MiB",
                              total["pss_mib"] <= pss_target, f"RSS {total['rss_mib']} MiB; PSS by process: {parts}"))
        cpu_parts = ", ".join(f"{name.split(' / ')[1]} {row['cpu_pct']}" for name, row in processes.items()
                              if name.startswith(group + " /"))
        figures.append(figure(f"footprint {group}: idle CPU", total["cpu_pct"], "% core",
                              f"<= {NODE_CPU_TARGET_PCT:g}% of a core", total["cpu_pct"] <= NODE_CPU_TARGET_PCT,
                              f"over {elapsed:.0f} s; by process: {cpu_parts}"))
    return {"figures": figures, "processes": processes, "totals": totals, "window_s": round(elapsed, 1),
            **watch.as_dict(),
            "settings": {k: getattr(cluster.config, k) for k in
                         ("heartbeat_interval", "role_check_interval", "report_resync_interval", "report_interval",
                          "lease_timeout")},
            "notes": ["targets of issue 14: a regular node's services under 80 MiB and about 1 % of a core "
                      "idle; an idle master holding 1,000 tasks that fit nowhere under 2 %",
                      f"idle CPU comes from the default timings: heartbeats every {cluster.config.heartbeat_interval:g} s, "
                      f"role checks every {cluster.config.role_check_interval:g} s, reports on change and every "
                      f"{cluster.config.report_resync_interval:g} s"]}


def unplaceable_job(number: int, tasks: int) -> str:
    lines = [f"job: pending-{number}", "tasks:"]
    for n in range(tasks):
        lines += [f"  - name: t{n}", "    image: taskorg/busybox:latest", "    command: 'true'", "    restart: never",
                  "    constraints: {labels: {bench: never}}"]
    return "\n".join(lines) + "\n"


def measure_pending(cluster: BenchCluster, window: float, settle: float) -> dict[str, Any]:
    """The idle master's CPU while it holds PENDING_TASKS tasks that fit no node."""
    client = cluster.client()
    per_job = 50
    for number in range(PENDING_TASKS // per_job):
        client.submit(unplaceable_job(number, per_job), source=f"pending-{number}.yaml")
    time.sleep(settle)
    pid = cluster.pids[f"node{cluster.index_of(cluster.wait_master())}/master"]
    before = cpu_seconds(pid)
    started = time.monotonic()
    time.sleep(window)
    elapsed = time.monotonic() - started
    pct = round(100 * (cpu_seconds(pid) - before) / elapsed, 2)
    log(f"footprint: idle master holding {PENDING_TASKS} pending tasks: {pct}% of a core")
    return {"figures": [figure(f"idle master holding {PENDING_TASKS:,} pending tasks that fit nowhere", pct,
                               "% core", f"<= {PENDING_CPU_TARGET_PCT:g}% of a core", pct <= PENDING_CPU_TARGET_PCT,
                               f"over {elapsed:.0f} s; the master process alone")],
            "pending_master_cpu_pct": pct}


def measure_dns_wide(window: float, settle: float) -> dict[str, Any]:
    """The DNS node's idle CPU with DNS_WIDE_NODES nodes heartbeating it at the default timings: 3 full
    nodes and light ones (the scale bench's: the real node and slave services in one process each)."""
    from bench import scale

    light = {index: scale.LIGHT for index in range(scale.FULL_NODES + 1, DNS_WIDE_NODES + 1)}
    with bench_cluster(nodes=DNS_WIDE_NODES, settings=dict(scale.RUNNER), node_settings=light,
                       start_timeout=200, cluster_cls=scale.ScaleCluster) as cluster:
        time.sleep(settle)
        pid = cluster.pids["dns"]
        before, started = cpu_seconds(pid), time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - started
        pct = round(100 * (cpu_seconds(pid) - before) / elapsed, 2)
    log(f"footprint: DNS node of {DNS_WIDE_NODES} nodes: {pct}% of a core")
    return {"figures": [figure(f"footprint DNS node, {DNS_WIDE_NODES} nodes: idle CPU", pct, "% core",
                               f"<= {DNS_WIDE_CPU_TARGET_PCT:g}% of a core", pct <= DNS_WIDE_CPU_TARGET_PCT,
                               f"over {elapsed:.0f} s; the DNS service alone, {DNS_WIDE_NODES} nodes' heartbeats "
                               "at the default timings (light nodes as in the scale bench)")],
            "dns_wide_cpu_pct": pct}


def run(quick: bool = False) -> dict[str, Any]:
    window, settle = (15.0, 3.0) if quick else (30.0, 10.0)
    with bench_cluster(nodes=3, webview=True) as cluster:
        result = measure(cluster, window=window, settle=settle)
        pending = measure_pending(cluster, window=window, settle=settle)
    wide = measure_dns_wide(window, settle)
    result["figures"] += pending.pop("figures") + wide.pop("figures")
    result.update(pending)
    result.update(wide)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 15 s window instead of 30 s")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    result = run(args.quick)
    print_figures("footprint (idle 3-node local cluster)", result["figures"])
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

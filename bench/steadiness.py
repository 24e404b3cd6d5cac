"""No false failover: an idle cluster, then the same cluster with both cores busy, elects nobody.

Issue 14's check on the default timings (heartbeat 0.1 s, lease 0.5 s +
0.15 s, node dead after 1 s): a 3-node local cluster with a few sleeping
tasks is left alone for a window, then for another window a bounded CPU hog
runs beside it (one busy-looping process per core, at the same priority as
the cluster, stopped by its own pid at the window's end). Counted in each
window, from the DNS service: elections (the epoch's rise) and nodes
declared dead (its `node_dead` events). Both targets are 0. It also prints
the worst lease renewal the master's node saw (its Prometheus histogram).

    .venv/bin/python bench/steadiness.py [--minutes 10] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402

from bench.common import BUSYBOX, BenchCluster, CpuWatch, bench_cluster, figure, log, print_figures  # noqa: E402
from taskorg.net.client import ServiceClient  # noqa: E402
from taskorg.security import tls  # noqa: E402

JOB = f"""job: steady
tasks:
  - name: sleeper
    image: {BUSYBOX}
    command: ['sleep', '3600']
    replicas: 3
    resources: {{cpus: 0.05, memory: 8M}}
"""
HOG_SECONDS_CAP = 1800.0  # a hog never outlives this, whatever happens to the bench


def _spin(until: float) -> None:
    """Burn one core until `until` (a wall-clock deadline), then exit."""
    while time.time() < until:
        pass


def dns_state(cluster: BenchCluster, since: int) -> tuple[int, list[dict[str, Any]], int]:
    """(epoch, node_dead events after id `since`, the last event id)."""
    client = ServiceClient(cluster.config.dns_api_url, cluster.secret, timeout=5)
    epoch = int(client.get("/v1/master")["epoch"])
    events = client.get("/v1/events", params={"since": str(since)})["events"]
    last = max([since] + [int(e["id"]) for e in events])
    return epoch, [e for e in events if e.get("kind") == "node_dead"], last


def worst_renewal(cluster: BenchCluster) -> float | None:
    """The largest bucket bound that holds a lease renewal on the master's node (seconds), or None."""
    master = cluster.wait_master()
    session = requests.Session()
    session.trust_env = False
    tls.mount(session, master)
    text = session.get(f"{cluster.config.url(master, cluster.config.node_port)}/metrics", timeout=5).text
    buckets = [(float(le), float(count)) for le, count in
               re.findall(r'^taskorg_node_lease_renewal_seconds_bucket\{le="([0-9.e+-]+)"\} (\S+)$', text, re.M)]
    total = max((count for _, count in buckets), default=0.0)
    below = [le for le, count in sorted(buckets) if count >= total]
    return below[0] if below and total else None


def window(cluster: BenchCluster, name: str, seconds: float, since: int, hog: bool) -> tuple[dict[str, Any], int]:
    epoch_before, _, since = dns_state(cluster, since)
    spinners: list[multiprocessing.Process] = []
    began = time.monotonic()
    with CpuWatch(cluster.pids.values()) as watch:
        if hog:
            until = time.time() + min(seconds, HOG_SECONDS_CAP)
            spinners = [multiprocessing.Process(target=_spin, args=(until,), daemon=True)
                        for _ in range(os.cpu_count() or 2)]
            for spinner in spinners:
                spinner.start()
        try:
            while time.monotonic() - began < seconds:
                time.sleep(min(30.0, seconds - (time.monotonic() - began)))
                log(f"steadiness: {name}: {time.monotonic() - began:.0f} of {seconds:.0f} s")
        finally:
            for spinner in spinners:
                spinner.terminate()
                spinner.join(5)
    epoch_after, deaths, since = dns_state(cluster, since)
    result = {"window": name, "seconds": round(time.monotonic() - began), "elections": epoch_after - epoch_before,
              "nodes_declared_dead": len(deaths), "deaths": [e.get("node") for e in deaths][:10],
              "machine_cpu_busy_pct": watch.busy_pct}
    log(f"steadiness: {name}: {result['elections']} elections, {result['nodes_declared_dead']} nodes declared "
        f"dead, machine CPU busy {watch.busy_pct}%")
    return result, since


def measure(minutes: float) -> dict[str, Any]:
    seconds = minutes * 60
    with bench_cluster(nodes=3) as cluster:
        cluster.client().submit(JOB, source="bench-steady.yaml")
        time.sleep(5)
        idle, since = window(cluster, "idle", seconds, 0, hog=False)
        busy, _ = window(cluster, "both cores busy", seconds, since, hog=True)
        worst = worst_renewal(cluster)
    figures = []
    for result in (idle, busy):
        detail = f"{result['seconds']} s; machine CPU busy {result['machine_cpu_busy_pct']}%"
        figures.append(figure(f"no false failover, {result['window']}: elections", result["elections"], "elections",
                              "0", result["elections"] == 0, detail))
        figures.append(figure(f"no false failover, {result['window']}: nodes declared dead",
                              result["nodes_declared_dead"], "nodes", "0", result["nodes_declared_dead"] == 0,
                              detail + (f"; {', '.join(map(str, result['deaths']))}" if result["deaths"] else "")))
    figures.append(figure("slowest lease renewal on the master's node (histogram bucket)", worst, "s", None, None,
                          "lease 0.5 s: a renewal slower than that would have cost the master its role"))
    return {"figures": figures, "windows": [idle, busy],
            "notes": ["default timings: heartbeat 0.1 s, lease 0.5 s + 0.15 s margin, node dead after 1 s",
                      "the hog: one busy-looping process per core at the cluster's priority"]}


def run(quick: bool = False) -> dict[str, Any]:
    return measure(2.0 if quick else 10.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=None, help="each window's length (default 10)")
    parser.add_argument("--quick", action="store_true", help="2-minute windows")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    if args.minutes is not None and not 0.1 <= args.minutes <= 60:
        parser.error(f"--minutes: expected 0.1 to 60, got {args.minutes:g}")
    result = measure(args.minutes) if args.minutes is not None else run(args.quick)
    print_figures("no false failover (3-node local cluster, default timings)", result["figures"])
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

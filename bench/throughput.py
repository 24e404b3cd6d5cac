"""Acknowledged submissions per second through the master API.

An acknowledged submission is a `201` from `POST /v1/jobs`: the job is
durable in the master's SQLite (synchronous=FULL) and held by at least one
standby (`replication_acks: 1`, the default). Submissions go through the
product's own `taskorg.client.Client` (it resolves `master.<suffix>` at the
cluster DNS for every call and keeps its connection to the master alive).

Targets are issue 14's: 1 task per request ≥ 200/s with one client and
≥ 500/s with four, 50 tasks per request ≥ 2,000 tasks/s. The physical limits
are printed beside them: a `synchronous=FULL` SQLite commit on this disk
(an acknowledgement waits for one on the master and one on a standby, shared
by every submission of a group commit) and a loopback TCP round trip.

Three request shapes, each with 1 and 4 concurrent clients (threads):
one task per request, a job of 10 tasks, a job of 50 tasks. Reported per
shape: tasks/s, requests/s and request latency p50 / p99.

Every request submits a job of a name of its own: a name that still runs would be
taken as an update of that job, `unchanged`, with nothing committed or replicated
(the figures before 2026-12-03 measured exactly that). An `update` answer counts as
a failure.

The submitted tasks ask for a node label no node has, so they stay pending
and start no container: the figure is the API's, not dockerd's. Pending
tasks stay in the master's scheduling tick (every tick looks at each one),
so each configuration runs on a fresh 3-node cluster, with a bounded number
of requests: a backlog left by the previous configuration would slow the
next one (that effect is the scale bench's business).

    .venv/bin/python bench/throughput.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (BUSYBOX, BenchCluster, CpuWatch, bench_cluster, figure, log, percentile,  # noqa: E402
                          print_figures)

SHAPES = (1, 10, 50)
TARGETS = {(1, 1): 200.0, (1, 4): 500.0, (50, 1): 2000.0}  # (tasks/request, clients) -> tasks/s (issue 14)
CLIENTS = (1, 4)
# Requests per configuration (split over the clients), and a time bound.
COUNTS = {"quick": {1: 200, 10: 60, 50: 16}, "full": {1: 1000, 10: 200, 50: 50}}
TIME_BOUND = 60.0


def job_text(tasks: int, tag: str) -> str:
    lines = [f"job: tp-{tag}", "tasks:"]
    for n in range(tasks):
        lines += [f"  - name: t{n}", f"    image: {BUSYBOX}", "    command: 'true'", "    restart: never",
                  "    constraints: {labels: {bench: never}}"]
    return "\n".join(lines) + "\n"


def run_config(cluster: BenchCluster, shape: int, clients: int, requests: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    per_client = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]
    deadline = time.monotonic() + TIME_BOUND
    start_gate = threading.Barrier(clients + 1)

    def worker(count: int) -> None:
        client = cluster.client(failover_wait=0)
        tag = uuid.uuid4().hex[:6]
        # A job name of its own per request: a name that still runs would be taken as an update of that
        # job (issue 16), "unchanged", with nothing to commit or replicate.
        texts = [job_text(shape, f"{tag}-{n}") for n in range(count)]
        start_gate.wait()
        for text in texts:
            if time.monotonic() > deadline:
                break
            began = time.perf_counter()
            try:
                answer = client.submit(text, source="bench")
                ok = (answer.get("replicated") is True and len(answer["tasks"]) == shape
                      and "update" not in answer)
            except Exception as exc:  # counted and reported, never retried silently
                ok, answer = False, {"error": str(exc)}
            elapsed = time.perf_counter() - began
            with lock:
                if ok:
                    latencies.append(elapsed)
                else:
                    errors.append(str(answer.get("error"))[:200])

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in per_client]
    for thread in threads:
        thread.start()
    start_gate.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join(TIME_BOUND + 30)
    wall = time.perf_counter() - began
    done = len(latencies)
    return {"shape": shape, "clients": clients, "requests": done, "errors": len(errors),
            "first_errors": errors[:3], "seconds": round(wall, 3),
            "requests_per_s": round(done / wall, 1) if wall else 0.0,
            "tasks_per_s": round(done * shape / wall, 1) if wall else 0.0,
            "p50_ms": round(percentile(latencies, 50) * 1000, 1) if latencies else None,
            "p99_ms": round(percentile(latencies, 99) * 1000, 1) if latencies else None}


def fsync_commit_ms(commits: int = 50) -> float:
    """The median time of one small committed SQLite transaction with synchronous=FULL, in /tmp's disk."""
    import sqlite3
    import tempfile

    with tempfile.TemporaryDirectory(prefix="taskorg-fsync-") as where:
        db = sqlite3.connect(str(Path(where) / "probe.db"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE t (v BLOB)")
        times = []
        for n in range(commits):
            began = time.perf_counter()
            db.execute("BEGIN")
            db.execute("INSERT INTO t VALUES (?)", (b"x" * 512,))
            db.execute("COMMIT")
            times.append(time.perf_counter() - began)
        db.close()
    return round(percentile(times, 50) * 1000, 3)


def loopback_round_trip_ms(rounds: int = 200) -> float:
    """The median round trip of 64 bytes over a kept TCP connection on loopback."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
    for sock in (client, peer):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def echo() -> None:
        for _ in range(rounds):
            peer.sendall(peer.recv(64))

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        client.sendall(b"x" * 64)
        client.recv(64)
        times.append(time.perf_counter() - began)
    thread.join(5)
    for sock in (client, peer, server):
        sock.close()
    return round(percentile(times, 50) * 1000, 3)


def measure(quick: bool) -> dict[str, Any]:
    counts = COUNTS["quick" if quick else "full"]
    configs = []
    for shape in SHAPES:
        for clients in CLIENTS:
            with bench_cluster(nodes=3) as cluster:
                cluster.client().submit(job_text(1, "warm-up"), source="bench")  # first-request costs
                with CpuWatch(cluster.pids.values()) as watch:
                    result = run_config(cluster, shape, clients, counts[shape])
            result.update(watch.as_dict())
            configs.append(result)
            log(f"throughput: {shape} task(s)/request, {clients} client(s): {result['tasks_per_s']} tasks/s, "
                f"{result['requests_per_s']} req/s, p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
                f"{result['errors']} errors (machine CPU busy {watch.busy_pct}%, load {watch.load_before})")
    figures = []
    for c in configs:
        label = f"{c['shape']} task{'s' if c['shape'] > 1 else ''}/request, {c['clients']} client{'s' if c['clients'] > 1 else ''}"
        target = TARGETS.get((c["shape"], c["clients"]))
        figures.append(figure(f"throughput, {label}", c["tasks_per_s"], "tasks/s",
                              f">= {target:,.0f} tasks/s" if target else None,
                              c["tasks_per_s"] >= target if target else None,
                              f"{c['requests_per_s']} req/s, latency p50 {c['p50_ms']} ms p99 {c['p99_ms']} ms "
                              f"(n={c['requests']}); machine CPU {c['machine_cpu_busy_pct']}% busy, of which "
                              f"cluster + client {c['our_processes_cpu_s']} CPU-s, others {c['rest_cpu_s']} CPU-s "
                              f"in {c['watched_s']} s"))
    fsync_ms, rtt_ms = fsync_commit_ms(), loopback_round_trip_ms()
    figures.append(figure("physical limit: one synchronous=FULL SQLite commit", fsync_ms, "ms", None, None,
                          "an acknowledgement waits for one on the master and one on a standby (shared by a group)"))
    figures.append(figure("physical limit: one loopback TCP round trip", rtt_ms, "ms", None, None,
                          "an acknowledgement takes two hops: client -> master -> standby"))
    errors = sum(c["errors"] for c in configs)
    figures.append(figure("throughput: submissions not acknowledged", errors, "requests", "0", errors == 0,
                          "; ".join(e for c in configs for e in c["first_errors"])[:300]))
    return {"figures": figures, "configs": configs,
            "notes": ["tasks carry a label constraint no node meets: they stay pending, no container starts",
                      "client: taskorg.client.Client (DNS lookup per request, kept-alive connection)",
                      "each configuration on a fresh 3-node cluster; p99 is nearest-rank (= max below 100 samples)"]}


def run(quick: bool = False) -> dict[str, Any]:
    return measure(quick)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer requests per configuration")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    result = run(args.quick)
    print_figures("throughput (3-node local cluster)", result["figures"])
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

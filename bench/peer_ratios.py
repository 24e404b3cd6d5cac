"""Swarm beside taskorg, past failover: how fast each takes work, and what each costs when idle.

Called by `bench/peer_swarm.py` on the same testbed hosts, in the same run
(issue 14). Two measurements:

Creation rate. N services/submissions one at a time, each answered before
the next is sent.
  Swarm:   a python3 script run inside a manager host posts /services/create
           to its dockerd over /var/run/docker.sock (http.client, one kept
           connection): no `docker exec` and no network hop is timed. Each
           service has 1 replica of the busybox image already loaded in the
           host, with a placement constraint no node meets, so the task stays
           pending and no container starts. Removed afterwards (not timed).
  taskorg: the product's Client from the runner to the master over the testbed
           network (TLS, kept-alive connection, a DNS lookup of master.<suffix>
           per call, as users get it); one task per request, each with a node
           label constraint no node meets (pending, no container), each a 201
           (durable and held by a standby). Cancelled afterwards (not timed).
  One untimed warm-up request on each side first. taskorg carries the
  network hop; Swarm does not.

Idle cost. A window of W seconds, in every host at once, reading
/proc/PID/stat (utime+stime, the host's clock ticks) at both ends and PSS
from /proc/PID/smaps_rollup at the end:
  taskorg: every process of the taskorg-* units (MainPID and descendants),
           and dnsmasq, on an idle empty cluster before Swarm exists.
  Swarm:   dockerd with the swarm active (3 managers, no service) minus
           dockerd after every node left the swarm. taskorg's services run
           through both windows (its slave asks dockerd the same in both),
           so the difference is Swarm's control plane.
The compared host is the taskorg master's host; the swarm is initialised on
that host so it is also the raft leader in the active window: the same
host, in charge on both sides. The other hosts are in the detail.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any, Callable

from bench import tbcluster
from bench.common import BUSYBOX, figure, log

RATE_PREFIX = "bench-rate"

# Run inside a host: `python3 - N IMAGE PREFIX`; prints one JSON line.
SWARM_CREATE = r"""
import http.client, json, socket, sys, time
n, image, prefix = int(sys.argv[1]), sys.argv[2], sys.argv[3]

class Unix(http.client.HTTPConnection):
    def __init__(self):
        super().__init__("localhost", timeout=60)
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect("/var/run/docker.sock")

conn = Unix()
def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
    answer = conn.getresponse()
    return answer.status, answer.read()

def spec(name):
    return {"Name": name, "Mode": {"Replicated": {"Replicas": 1}},
            "TaskTemplate": {"ContainerSpec": {"Image": image, "Command": ["sleep", "3600"]},
                             "Placement": {"Constraints": ["node.labels.bench==never"]}}}

ids, errors, latencies = [], [], []
status, body = call("POST", "/services/create", spec(prefix + "-warm"))
if status == 201:
    ids.append(json.loads(body)["ID"])
began = time.perf_counter()
for i in range(n):
    start = time.perf_counter()
    status, body = call("POST", "/services/create", spec("%s-%d" % (prefix, i)))
    latencies.append(time.perf_counter() - start)
    if status == 201:
        ids.append(json.loads(body)["ID"])
    else:
        errors.append("%d %s" % (status, body[:200].decode(errors="replace")))
wall = time.perf_counter() - began
removed = sum(1 for sid in ids if call("DELETE", "/services/" + sid)[0] == 200)
print(json.dumps({"created": n - len(errors), "errors": errors[:3], "seconds": wall, "latencies": latencies,
                  "removed": removed}))
"""

# Run inside a host: `python3 - WINDOW`; prints one JSON line: group -> cpu % of one core, PSS/RSS MiB.
IDLE_WINDOW = r"""
import json, os, subprocess, sys, time
window = float(sys.argv[1])
hz = os.sysconf("SC_CLK_TCK")

def sh(cmd):
    return subprocess.run(cmd, capture_output=True, text=True).stdout

def children():
    kids = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(open("/proc/%s/stat" % entry).read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    return kids

def tree(pid, kids):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out

def main_pid(unit):
    value = sh(["systemctl", "show", "-p", "MainPID", "--value", unit]).strip()
    return int(value) if value.isdigit() and int(value) > 0 else None

kids = children()
groups = {}
units = [line.split()[0] for line in sh(["systemctl", "list-units", "taskorg-*", "--type=service", "--no-legend",
                                         "--plain"]).splitlines() if line.strip()]
for unit in units:
    pid = main_pid(unit)
    if pid:
        groups[unit] = tree(pid, kids)
for unit in ("dnsmasq.service", "docker.service"):
    pid = main_pid(unit)
    if pid:
        groups["dockerd" if unit == "docker.service" else "dnsmasq"] = [pid]

def ticks(pid):
    try:
        fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None

def memory(pid):
    found = {}
    try:
        for line in open("/proc/%d/smaps_rollup" % pid):
            key, _, rest = line.partition(":")
            if key in ("Pss", "Rss"):
                found[key] = int(rest.split()[0]) / 1024.0
    except OSError:
        pass
    return found

start = {p: ticks(p) for pids in groups.values() for p in pids}
began = time.monotonic()
time.sleep(window)
wall = time.monotonic() - began
result = {}
for name, pids in groups.items():
    used, gone, pss, rss = 0, 0, 0.0, 0.0
    for p in pids:
        end = ticks(p)
        if end is None or start.get(p) is None:
            gone += 1
            continue
        used += end - start[p]
        mem = memory(p)
        pss += mem.get("Pss", 0.0)
        rss += mem.get("Rss", 0.0)
    result[name] = {"cpu_pct": round(100.0 * used / hz / wall, 3), "pss_mib": round(pss, 1),
                    "rss_mib": round(rss, 1), "processes": len(pids), "gone": gone}
print(json.dumps({"window": round(wall, 2), "groups": result}))
"""


# ---- in the hosts -----------------------------------------------------------------------------
def _script(bed: Any, host: str, script: str, args: str, timeout: float) -> dict[str, Any]:
    out = bed.exec(host, f"python3 - {args}", input=script.encode(), timeout=timeout)
    return json.loads(out.strip().splitlines()[-1])


def idle_window(bed: Any, seconds: float) -> dict[str, dict[str, Any]]:
    """host name -> {window, groups}: the same window in every host at once (one thread each)."""
    found: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}

    def one(name: str) -> None:
        try:
            found[name] = _script(bed, name, IDLE_WINDOW, f"{seconds:g}", seconds + 60)
        except Exception as exc:  # reported with the figures
            errors[name] = f"{type(exc).__name__}: {exc}"[:200]

    threads = [threading.Thread(target=one, args=(h,), daemon=True) for h in bed.hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 90)
    if errors:
        log(f"peer idle window: {errors}")
    return found


def taskorg_total(groups: dict[str, Any], key: str) -> float:
    """Sum over a host's taskorg services (and dnsmasq on the DNS host), without dockerd."""
    return round(sum(g[key] for name, g in groups.items() if name != "dockerd"), 3)


def wait_master(bed: Any, timeout: float = 120) -> dict[str, Any]:
    """An active master answering, and which host it is: the cluster may have elected during a window
    (seen once on the loaded shared machine, with the playbook's 0.5 s lease), and the next step needs one."""
    started = time.monotonic()
    tbcluster.wait("an active taskorg master", lambda: tbcluster.client(bed, failover_wait=0).tasks() is not None,
                   timeout, 0.5)
    return {"waited_s": round(time.monotonic() - started, 2), "master": tbcluster.master_host(bed).name}


def swarm_create_rate(bed: Any, via: str, count: int) -> dict[str, Any]:
    result = _script(bed, via, SWARM_CREATE, f"{count} {BUSYBOX} {RATE_PREFIX}", 300)
    latencies = sorted(result.pop("latencies"))
    result["per_s"] = round(result["created"] / result["seconds"], 1) if result["seconds"] else None
    result["p50_ms"] = round(latencies[len(latencies) // 2] * 1000, 1) if latencies else None
    result["via"] = via
    return result


def _pending_spec(name: str) -> str:
    return (f"name: {name}\nimage: {BUSYBOX}\ncommand: 'true'\nrestart: never\n"
            "constraints: {labels: {bench: never}}\n")


def taskorg_submit_rate(bed: Any, count: int) -> dict[str, Any]:
    api = tbcluster.client(bed, failover_wait=0)
    tag = uuid.uuid4().hex[:6]
    api.submit(_pending_spec(f"{RATE_PREFIX}-{tag}-warm"), source="bench")
    errors: list[str] = []
    latencies: list[float] = []
    began = time.perf_counter()
    for i in range(count):
        start = time.perf_counter()
        try:
            answer = api.submit(_pending_spec(f"{RATE_PREFIX}-{tag}-{i}"), source="bench")
            if answer.get("replicated") is not True:
                errors.append(f"not replicated: {str(answer)[:150]}")
        except Exception as exc:  # counted, never retried
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
        latencies.append(time.perf_counter() - start)
    wall = time.perf_counter() - began
    cancelled = 0
    for task in api.tasks():
        if task["name"].startswith(f"{RATE_PREFIX}-{tag}") and task["desired"] != "cancelled":
            api.cancel(task["id"])
            cancelled += 1
    latencies.sort()
    done = count - len(errors)
    return {"acknowledged": done, "errors": errors[:3], "seconds": wall, "per_s": round(done / wall, 1),
            "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1), "cancelled": cancelled}


# ---- figures ------------------------------------------------------------------------------------
def _ratio(ahead: float | None, behind: float | None) -> float | None:
    return round(ahead / behind, 2) if ahead and behind and ahead > 0 and behind > 0 else None


def _met(ratio: float | None) -> bool | None:
    return None if ratio is None else ratio > 1


TARGET = "> 1: taskorg ahead"


def rate_figures(swarm: dict[str, Any], ours: dict[str, Any], count: int) -> list[dict[str, Any]]:
    ratio = _ratio(ours.get("per_s"), swarm.get("per_s"))
    return [
        figure("peer: Swarm, services created one at a time", swarm.get("per_s"), "/s", None, None,
               f"{swarm.get('created')} of {count} via the Engine API on the unix socket of {swarm.get('via')} "
               f"(timed in the host, no network hop), p50 {swarm.get('p50_ms')} ms; 1 pending replica each"
               + (f"; {swarm['error']}" if swarm.get("error") else "")),
        figure("peer: taskorg, submissions one at a time", ours.get("per_s"), "/s", None, None,
               f"{ours.get('acknowledged')} of {count} acknowledged (201, replicated) through taskorg.client "
               f"from the runner over the testbed network (network hop + DNS lookup), p50 {ours.get('p50_ms')} ms; "
               "1 pending task each" + (f"; {ours['error']}" if ours.get("error") else "")),
        figure("peer: creation rate, taskorg / Swarm", ratio, "x", TARGET, _met(ratio)),
    ]


def idle_figures(host: str, before: dict[str, Any], active: dict[str, Any], inactive: dict[str, Any],
                 dns_host: str, leader: str | None, window: float) -> list[dict[str, Any]]:
    """Swarm's cost = dockerd (active) - dockerd (inactive); taskorg's = its services, all on `host`."""
    def dockerd(run: dict[str, Any], key: str) -> float | None:
        try:
            return run[host]["groups"]["dockerd"][key]
        except KeyError:
            return None

    ours = before.get(host, {}).get("groups", {})
    dns = before.get(dns_host, {}).get("groups", {})
    role = "raft leader" if leader == host else f"manager, leader {leader}"
    rows: list[dict[str, Any]] = []
    for key, unit, what in (("cpu_pct", "% core", "CPU"), ("pss_mib", "MiB", "PSS")):
        on, off = dockerd(active, key), dockerd(inactive, key)
        swarm = round(on - off, 3) if on is not None and off is not None else None
        mine = taskorg_total(ours, key) if ours else None
        ratio = _ratio(swarm, mine)
        if ratio is None and swarm is not None and swarm <= 0 and mine:
            ratio = 0.0  # Swarm's control plane costs nothing measurable here: taskorg cannot be ahead
        rows += [
            figure(f"peer: Swarm control plane idle {what} ({host})", swarm, unit, None, None,
                   f"dockerd with the swarm active ({on}; {host} {role}, 3 managers, no service) "
                   f"minus after every node left ({off}); "
                   f"dockerd before the swarm existed: {dockerd(before, key)}; {window:g} s windows"),
            figure(f"peer: taskorg idle {what} ({host}, master)", mine, unit, None, None,
                   "all its taskorg-* services, idle empty cluster: "
                   + ", ".join(f"{n.replace('taskorg-', '').replace('.service', '')} {g[key]}"
                               for n, g in sorted(ours.items()) if n != "dockerd")),
            figure(f"peer: idle {what}, Swarm / taskorg", ratio, "x", TARGET, _met(ratio),
                   "Swarm's control plane beside taskorg's services on the same host"
                   + ("" if swarm is None or swarm > 0 else "; Swarm's difference is not positive: ratio 0")
                   + _other_baseline(on, dockerd(before, key), mine)),
            figure(f"peer: taskorg DNS host idle {what} ({dns_host})", taskorg_total(dns, key) if dns else None,
                   unit, None, None,
                   ", ".join(f"{n.replace('.service', '')} {g[key]}" for n, g in sorted(dns.items())
                             if n != "dockerd") + "; Swarm has no such host (its raft runs in the managers)"),
        ]
    return rows


def _other_baseline(active: float | None, before: float | None, ours: float | None) -> str:
    """The same ratio with dockerd before the swarm existed as the baseline (an upper bound for Swarm's
    cost: leaving the swarm need not give memory back, and may take more)."""
    if active is None or before is None or not ours:
        return ""
    return f"; against dockerd before the swarm: {active - before:.3g}, ratio {(active - before) / ours:.2g}"


def per_host(run: dict[str, Any]) -> dict[str, Any]:
    """The detail kept in the JSON: host -> group -> figures."""
    return {host: data.get("groups") for host, data in run.items()}


def timed(what: str, fn: Callable[[], Any]) -> Any:
    started = time.monotonic()
    value = fn()
    log(f"peer: {what} in {time.monotonic() - started:.1f} s")
    return value

"""Consensus engines side by side: etcd (Debian) and PySyncObj (PyPI), same scenarios.

Issue 13 puts the arbiter's state on a consensus engine and asks us to choose
by measurement. This starts a group of 3 voters per engine on 127.0.X.1-3
(loopback only), with the same Raft timings (heartbeat 100 ms, election
timeout 500 ms; etcd randomises it over [500, 1000) ms, PySyncObj is given
the same range), and measures:

  - write commit latency (sequential writes, through the leader and through
    a follower), p50 / p99;
  - leader SIGKILLed -> the group accepts a write again (per round);
  - a non-leader (the witness, 127.0.X.1, when it is not the leader) killed
    -> a write accepted;
  - idle CPU (% of one core over a window) and RSS / PSS per member;
  - partitions by SIGSTOP (a stopped process hangs, as a partitioned host
    looks to its peers): leader stopped -> majority writes again; two
    members stopped -> the lone member must refuse writes.

Writes go over HTTP for both: etcd's v3 JSON gateway, and for PySyncObj a
tiny HTTP front in the member process (`--member`), so both pay one HTTP
round trip per write. Every wait is bounded; everything started is stopped
and its directory removed at the end.

    .venv/bin/python bench/consensus.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import requests

HEARTBEAT_S = 0.1
ELECTION_S = 0.5
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
RAFT_PORT = 24401
FRONT_PORT = 24402
MiB = 2**20


REPO = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    """bench/common.py's rule, imported late: a member process must not pay for docker's imports."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from bench.common import percentile as nearest_rank

    return nearest_rank(values, q)


def log(message: str) -> None:
    print(f"[consensus {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def memory_of(pid: int) -> dict[str, float]:
    """RSS and PSS in MiB (PSS shares common pages between processes: what a member really costs)."""
    rss = psutil.Process(pid).memory_info().rss / MiB
    pss = None
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1]) / 1024
    except OSError:
        pass
    return {"rss_mib": round(rss, 1), "pss_mib": round(pss, 1) if pss is not None else None}


def free_block() -> str:
    """A 127.0.X prefix whose .1-.3 have our ports free (loopback test clusters use their own)."""
    for third in range(200, 250):
        ok = True
        for host in (1, 2, 3, 4):
            for port in (ETCD_CLIENT_PORT, ETCD_PEER_PORT, RAFT_PORT, FRONT_PORT):
                probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    probe.bind((f"127.0.{third}.{host}", port))
                except OSError:
                    ok = False
                finally:
                    probe.close()
        if ok:
            return f"127.0.{third}"
    raise RuntimeError("no free 127.0.X block for the consensus benchmark")


# ---- the PySyncObj member (a process of its own, like an etcd member) -----------------------------
def run_pysyncobj_member(me: str, peers: list[str], workdir: str, baseline: bool) -> None:
    """A PySyncObj voter with a replicated dict and an HTTP front: PUT /kv, GET /status.

    `baseline` starts only the HTTP front: the same interpreter and imports
    without Raft, so its footprint is what PySyncObj adds inside a process.
    """
    from pysyncobj import SyncObj, SyncObjConf, SyncObjException, replicated

    class Store(SyncObj):
        def __init__(self) -> None:
            conf = SyncObjConf(appendEntriesPeriod=HEARTBEAT_S, raftMinTimeout=ELECTION_S,
                               raftMaxTimeout=2 * ELECTION_S, leaderFallbackTimeout=2 * ELECTION_S,
                               # followers send each other nothing: their idle link is dropped after
                               # connectionTimeout and, by default, redialled only 5 s later, which
                               # stalled elections for ~4 s in our first runs. Redial at once.
                               connectionTimeout=3.5, connectionRetryTime=0.2, appendEntriesUseBatch=False,
                               journalFile=os.path.join(workdir, "journal"),
                               fullDumpFile=os.path.join(workdir, "dump"),
                               bindAddress=f"{me}:{RAFT_PORT}")  # (its default is 0.0.0.0)
            super().__init__(f"{me}:{RAFT_PORT}", [f"{p}:{RAFT_PORT}" for p in peers], conf)
            self.data: dict[str, str] = {}

        @replicated
        def put(self, key: str, value: str) -> None:
            self.data[key] = value

    store = None if baseline else Store()

    class Front(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _answer(self, code: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            if store is None:
                return self._answer(200, {"baseline": True})
            status = store.getStatus()
            self._answer(200, {"leader": str(status["leader"]) if status["leader"] else None,
                               "self": str(status["self"]), "state": status["state"],
                               "has_quorum": status["has_quorum"], "commit_idx": status["commit_idx"],
                               "term": status["raft_term"]})

        def do_PUT(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if store is None:
                return self._answer(503, {"error": "baseline member holds no store"})
            try:
                store.put(body["key"], body["value"], sync=True, timeout=float(body.get("timeout", 2.0)))
            except SyncObjException as exc:
                return self._answer(503, {"error": f"not committed: {exc.errorCode}"})
            self._answer(200, {"ok": True})

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer((me, FRONT_PORT), Front).serve_forever()


# ---- engines --------------------------------------------------------------------------------------
class Group:
    """Three voters of one engine on 127.0.X.1-3; member 0 plays the witness (the DNS node)."""

    name = ""

    def __init__(self, block: str, root: Path) -> None:
        self.addresses = [f"{block}.{i}" for i in (1, 2, 3)]
        self.root = root
        self.procs: list[subprocess.Popen | None] = [None, None, None]
        self.session = requests.Session()

    # engine specifics
    def command(self, index: int) -> list[str]:
        raise NotImplementedError

    def write(self, index: int, key: str, value: str, timeout: float, fresh: bool = False) -> tuple[bool, str]:
        """Put key=value through member `index`; (committed, why not). `fresh`: own connection (threads)."""
        raise NotImplementedError

    def is_leader(self, index: int) -> bool:
        raise NotImplementedError

    # shared
    def start(self, index: int) -> None:
        (self.root / f"m{index}").mkdir(parents=True, exist_ok=True)
        out = open(self.root / f"m{index}.log", "ab")
        self.procs[index] = subprocess.Popen(self.command(index), stdout=out, stderr=subprocess.STDOUT,
                                             start_new_session=True)
        out.close()

    def pid(self, index: int) -> int:
        proc = self.procs[index]
        assert proc is not None
        return proc.pid

    def signal(self, index: int, sig: int) -> None:
        proc = self.procs[index]
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, sig)
        if sig == signal.SIGKILL and proc is not None:
            proc.wait(5)
            self.procs[index] = None

    def stop_all(self) -> None:
        for index, proc in enumerate(self.procs):
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            self.procs[index] = None

    def leader(self, among: list[int] | None = None, timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index in among if among is not None else range(3):
                try:
                    if self.procs[index] is not None and self.is_leader(index):
                        return index
                except (requests.RequestException, ValueError, KeyError):
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: no leader within {timeout} s")

    def wait_writable(self, index: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.write(index, "ready", str(time.time()), 1.0)[0]:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: member {index} accepts no write within {timeout} s")

    def time_until_write(self, members: list[int], limit: float = 10.0) -> float | None:
        """From now: writes go to `members` in turn every 50 ms, each waiting up to 1 s; the first commit ends it."""
        started = time.monotonic()
        done = threading.Event()
        first: list[float] = []

        def attempt(index: int, n: int) -> None:
            try:
                ok, _ = self.write(index, f"probe-{n}", str(n), 1.0, fresh=True)
            except requests.RequestException:
                ok = False
            if ok and not done.is_set():
                first.append(time.monotonic() - started)
                done.set()

        with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
            n = 0
            while not done.is_set() and time.monotonic() - started < limit:
                pool.submit(attempt, members[n % len(members)], n)
                n += 1
                done.wait(0.05)
        return round(min(first), 3) if first else None


class EtcdGroup(Group):
    name = "etcd"

    def url(self, index: int) -> str:
        return f"http://{self.addresses[index]}:{ETCD_CLIENT_PORT}"

    def command(self, index: int) -> list[str]:
        peers = ",".join(f"m{i}=http://{a}:{ETCD_PEER_PORT}" for i, a in enumerate(self.addresses))
        address = self.addresses[index]
        return ["etcd", "--name", f"m{index}", "--data-dir", str(self.root / f"m{index}" / "data"),
                "--listen-client-urls", self.url(index), "--advertise-client-urls", self.url(index),
                "--listen-peer-urls", f"http://{address}:{ETCD_PEER_PORT}",
                "--initial-advertise-peer-urls", f"http://{address}:{ETCD_PEER_PORT}",
                "--initial-cluster", peers, "--initial-cluster-state", "new",
                "--initial-cluster-token", "taskorg-bench",
                "--heartbeat-interval", str(int(HEARTBEAT_S * 1000)),
                "--election-timeout", str(int(ELECTION_S * 1000)),
                "--logger", "zap", "--log-level", "error"]

    def write(self, index: int, key: str, value: str, timeout: float, fresh: bool = False) -> tuple[bool, str]:
        body = {"key": base64.b64encode(key.encode()).decode(), "value": base64.b64encode(value.encode()).decode()}
        post = requests.post if fresh else self.session.post
        try:
            answer = post(f"{self.url(index)}/v3/kv/put", json=body, timeout=timeout)
        except requests.Timeout:
            return False, f"no answer within {timeout} s"
        if answer.status_code == 200 and "error" not in answer.json():
            return True, ""
        return False, f"{answer.status_code} {answer.text.strip()[:120]}"

    def is_leader(self, index: int) -> bool:
        status = requests.post(f"{self.url(index)}/v3/maintenance/status", json={}, timeout=0.5).json()
        return status.get("leader") == status["header"]["member_id"]


class PySyncObjGroup(Group):
    name = "PySyncObj"

    def url(self, index: int) -> str:
        return f"http://{self.addresses[index]}:{FRONT_PORT}"

    def command(self, index: int) -> list[str]:
        peers = ",".join(a for i, a in enumerate(self.addresses) if i != index)
        return [sys.executable, str(Path(__file__).resolve()), "--member", self.addresses[index], "--peers", peers,
                "--workdir", str(self.root / f"m{index}")]

    def baseline_command(self) -> list[str]:
        """The same process without Raft, on 127.0.X.4: what PySyncObj adds is the difference."""
        spare = self.addresses[0].rsplit(".", 1)[0] + ".4"
        return [sys.executable, str(Path(__file__).resolve()), "--member", spare, "--peers", "",
                "--workdir", str(self.root), "--baseline"]

    def write(self, index: int, key: str, value: str, timeout: float, fresh: bool = False) -> tuple[bool, str]:
        put = requests.put if fresh else self.session.put
        try:
            answer = put(f"{self.url(index)}/kv", json={"key": key, "value": value, "timeout": timeout},
                         timeout=timeout + 0.5)
        except requests.Timeout:
            return False, f"no answer within {timeout + 0.5} s"
        return (answer.status_code == 200), answer.text.strip()[:120]

    def is_leader(self, index: int) -> bool:
        return requests.get(f"{self.url(index)}/status", timeout=0.5).json()["state"] == 2


# ---- scenarios --------------------------------------------------------------------------------------
def wait_up(group: Group) -> None:
    for index in range(3):
        group.wait_writable(index)


def commit_latency(group: Group, count: int) -> dict[str, Any]:
    leader = group.leader()
    follower = next(i for i in range(3) if i != leader)
    figures: dict[str, Any] = {}
    for label, index in (("via leader", leader), ("via follower", follower)):
        samples = []
        for n in range(count):
            started = time.perf_counter()
            ok, why = group.write(index, f"k{n % 50}", "v" * 64, 2.0)
            if not ok:
                raise RuntimeError(f"{group.name}: write {n} {label} failed: {why}")
            samples.append(time.perf_counter() - started)
        figures[label] = {"p50_ms": round(1000 * percentile(samples, 50), 2),
                          "p99_ms": round(1000 * percentile(samples, 99), 2)}
    return figures


def idle_footprint(group: Group, window: float, extra: dict[str, int]) -> dict[str, Any]:
    pids = {f"member {i} ({group.addresses[i]})": group.pid(i) for i in range(3)} | extra
    procs = {name: psutil.Process(pid) for name, pid in pids.items()}
    before = {name: p.cpu_times() for name, p in procs.items()}
    started = time.monotonic()
    time.sleep(window)
    elapsed = time.monotonic() - started
    result = {}
    for name, p in procs.items():
        after = p.cpu_times()
        used = (after.user + after.system) - (before[name].user + before[name].system)
        result[name] = {"cpu_pct": round(100 * used / elapsed, 2), **memory_of(p.pid)}
    return result


def restore(group: Group, index: int) -> None:
    group.start(index)
    group.wait_writable(index)
    time.sleep(1.0)  # let the group settle (the restarted member catches up)


def leader_kill_rounds(group: Group, rounds: int) -> list[float | None]:
    times = []
    for _ in range(rounds):
        leader = group.leader()
        survivors = [i for i in range(3) if i != leader]
        group.signal(leader, signal.SIGKILL)
        times.append(group.time_until_write(survivors))
        restore(group, leader)
    return times


def witness_kill_rounds(group: Group, rounds: int) -> list[float | None]:
    times = []
    for _ in range(rounds):
        leader = group.leader()
        victim = 0 if leader != 0 else 1
        group.signal(victim, signal.SIGKILL)
        times.append(group.time_until_write([i for i in range(3) if i != victim]))
        restore(group, victim)
    return times


def partitions(group: Group) -> dict[str, Any]:
    """SIGSTOP = a hung or cut-off host: its peers see silence, not a closed connection."""
    found: dict[str, Any] = {}
    leader = group.leader()
    majority = [i for i in range(3) if i != leader]
    group.signal(leader, signal.SIGSTOP)
    found["leader stopped: majority writes again after s"] = group.time_until_write(majority)
    group.signal(leader, signal.SIGCONT)
    deadline = time.monotonic() + 10
    stepped_down = None
    while time.monotonic() < deadline:
        try:
            if not group.is_leader(leader):
                stepped_down = True
                break
        except (requests.RequestException, ValueError, KeyError):
            pass
        time.sleep(0.05)
    found["old leader resumed: follower again"] = bool(stepped_down)
    group.wait_writable(leader)
    time.sleep(1.0)
    # the lone member: the other two hang
    lone = group.leader()
    others = [i for i in range(3) if i != lone]
    for i in others:
        group.signal(i, signal.SIGSTOP)
    time.sleep(0.2)
    started = time.monotonic()
    ok, why = group.write(lone, "minority", "must-refuse", 2.0)
    found["minority (lone leader): write refused"] = not ok
    found["minority: refusal after s"] = round(time.monotonic() - started, 3)
    found["minority: answer"] = why
    time.sleep(1.5)  # past the lone member's leader-fallback / check-quorum time
    follower_ok, follower_why = group.write(lone, "minority2", "must-refuse", 2.0)
    found["minority after 1.5 s: write refused"] = not follower_ok
    found["minority after 1.5 s: answer"] = follower_why
    for i in others:
        group.signal(i, signal.SIGCONT)
    found["healed: writes again after s"] = group.time_until_write([0, 1, 2])
    return found


def measure(group: Group, quick: bool) -> dict[str, Any]:
    for index in range(3):
        group.start(index)
    extra: dict[str, int] = {}
    baseline = None
    if isinstance(group, PySyncObjGroup):
        out = open(group.root / "baseline.log", "ab")
        baseline = subprocess.Popen(group.baseline_command(), stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
    try:
        wait_up(group)
        log(f"{group.name}: group up, leader is member {group.leader()}")
        result: dict[str, Any] = {"latency": commit_latency(group, 100 if quick else 300)}
        time.sleep(2.0)
        if baseline is not None:
            extra["python + HTTP front without Raft (baseline)"] = baseline.pid
        result["idle"] = idle_footprint(group, 10.0 if quick else 30.0, extra)
        rounds = 3 if quick else 8
        result["leader_kill"] = leader_kill_rounds(group, rounds)
        log(f"{group.name}: leader kill -> writes again: {result['leader_kill']}")
        result["witness_kill"] = witness_kill_rounds(group, rounds)
        log(f"{group.name}: witness kill -> writes again: {result['witness_kill']}")
        result["partitions"] = partitions(group)
        log(f"{group.name}: partitions: {result['partitions']}")
        return result
    finally:
        group.stop_all()
        if baseline is not None:
            baseline.terminate()
            baseline.wait(5)


# ---- report ------------------------------------------------------------------------------------------
def rows(results: dict[str, dict[str, Any]]) -> list[tuple[str, list[str]]]:
    def spread(values: list[float | None]) -> str:
        got = [v for v in values if v is not None]
        if not got:
            return "never"
        missing = f", {len(values) - len(got)} never" if len(got) < len(values) else ""
        return f"p50 {percentile(got, 50):.2f} / max {max(got):.2f} s{missing}"

    def member_figure(result: dict[str, Any], key: str, fmt: str) -> str:
        members = [v for k, v in result["idle"].items() if k.startswith("member")]
        values = [m[key] for m in members if m[key] is not None]
        return fmt.format(min(values), max(values))

    table = []
    engines = list(results)
    for label in ("via leader", "via follower"):
        table.append((f"write commit latency {label}, p50 / p99",
                      [f"{results[e]['latency'][label]['p50_ms']:.1f} / {results[e]['latency'][label]['p99_ms']:.1f} ms"
                       for e in engines]))
    table.append(("leader SIGKILLed -> writes again", [spread(results[e]["leader_kill"]) for e in engines]))
    table.append(("witness (non-leader) SIGKILLed -> writes", [spread(results[e]["witness_kill"]) for e in engines]))
    table.append(("idle CPU per member (% of a core)", [member_figure(results[e], "cpu_pct", "{:.2f}-{:.2f} %")
                                                        for e in engines]))
    table.append(("RSS per member", [member_figure(results[e], "rss_mib", "{:.0f}-{:.0f} MiB") for e in engines]))
    table.append(("PSS per member", [member_figure(results[e], "pss_mib", "{:.0f}-{:.0f} MiB") for e in engines]))
    for key in ("leader stopped: majority writes again after s", "old leader resumed: follower again",
                "minority (lone leader): write refused", "minority: refusal after s",
                "minority after 1.5 s: write refused", "healed: writes again after s"):
        table.append((key, [str(results[e]["partitions"][key]) for e in engines]))
    return table


def print_table(results: dict[str, dict[str, Any]]) -> None:
    engines = list(results)
    table = rows(results)
    width = max(len(r[0]) for r in table) + 2
    cols = [max(len(e), *(len(r[1][i]) for r in table)) + 2 for i, e in enumerate(engines)]
    print(f"\n{'3 voters on loopback, heartbeat 100 ms, election 500 ms':<{width}}"
          + "".join(f"{e:<{c}}" for e, c in zip(engines, cols)))
    for name, values in table:
        print(f"{name:<{width}}" + "".join(f"{v:<{c}}" for v, c in zip(values, cols)))
    for engine in engines:
        for name, data in results[engine]["idle"].items():
            if not name.startswith("member"):
                print(f"  {engine}: {name}: {data}")
        for key in ("minority: answer", "minority after 1.5 s: answer"):
            print(f"  {engine}: {key}: {results[engine]['partitions'][key]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 s idle window, 3 rounds per scenario")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--engine", choices=("etcd", "pysyncobj"), action="append", help="only these engines")
    parser.add_argument("--member", help=argparse.SUPPRESS)  # a PySyncObj member process: its address
    parser.add_argument("--peers", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.member:
        run_pysyncobj_member(args.member, args.peers.split(","), args.workdir, args.baseline)
        return 0
    if shutil.which("etcd") is None and (not args.engine or "etcd" in args.engine):
        print("etcd is not installed: apt-get install etcd-server etcd-client", file=sys.stderr)
        return 2
    engines = {"etcd": EtcdGroup, "pysyncobj": PySyncObjGroup}
    results: dict[str, dict[str, Any]] = {}
    for key in args.engine or list(engines):
        root = Path(tempfile.mkdtemp(prefix=f"taskorg-consensus-{key}-"))
        try:
            group = engines[key](free_block(), root)
            results[group.name] = measure(group, args.quick)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

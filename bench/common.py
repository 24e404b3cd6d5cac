"""Pieces every benchmark shares: statistics, the machine, bench clusters, figures.

A *figure* is one number the suite reports: what it is, its value and unit,
the target it is held to (or None where the issue sets none) and whether it
met it. Every benchmark module returns `{"figures": [...], "notes": [...],
...raw data}` so `bench/run.py` can print one table and write RESULTS.md.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import docker  # noqa: E402
import psutil  # noqa: E402
import yaml  # noqa: E402

from taskorg.devtools.localcluster import ClusterError, LocalCluster  # noqa: E402
from taskorg.devtools.processes import spawn  # noqa: E402
from tests.helpers import free_loopback_block  # noqa: E402

BUSYBOX = "taskorg/busybox:latest"


# ---- statistics ------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (with 20 samples p99 is the maximum: say so, do not interpolate)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": round(percentile(values, 50), 3), "p99": round(percentile(values, 99), 3),
            "max": round(max(values), 3), "mean": round(statistics.fmean(values), 3)}


# ---- figures ---------------------------------------------------------------------------------
def figure(name: str, value: float | None, unit: str, target: str | None = None,
           met: bool | None = None, detail: str = "") -> dict[str, Any]:
    """One reported number. `target` None means the issue sets none (informational)."""
    return {"name": name, "value": value, "unit": unit, "target": target, "met": met, "detail": detail}


def verdict(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "-"}[met]


def fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e6:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"


def print_figures(title: str, figures: list[dict[str, Any]], file: Any = None) -> None:
    file = file or sys.stdout
    width = max([len(f["name"]) for f in figures] + [20]) + 2
    print(f"\n{title}", file=file)
    print(f"  {'figure':<{width}}{'value':>10}  {'unit':<9}{'target':<22}{'result':<8}detail", file=file)
    for f in figures:
        print(f"  {f['name']:<{width}}{fmt(f['value']):>10}  {f['unit']:<9}{(f['target'] or 'none set'):<22}"
              f"{verdict(f['met']):<8}{f['detail']}", file=file)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---- the machine -----------------------------------------------------------------------------
def docker_time(value: str | None) -> float | None:
    """Docker's nanosecond RFC 3339 time as epoch seconds (None for its zero time)."""
    if not value or value.startswith("0001-"):
        return None
    stamp, _, rest = value.partition(".")
    digits = "".join(ch for ch in rest if ch.isdigit())[:6].ljust(6, "0")
    zone = rest.lstrip("0123456789") or "Z"
    return datetime.fromisoformat(f"{stamp}.{digits}{zone.replace('Z', '+00:00')}").timestamp()


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class CpuWatch:
    """Where the machine's CPU went while a figure was measured.

    Others' tests share this machine, so every figure carries the machine's
    busy share, its load, the CPU seconds our own cluster's processes used
    (`pids`, plus this process) and those of dockerd/containerd (shared by
    everyone's containers); what is left of the busy time is everyone else.
    """

    def __init__(self, pids: Iterable[int] = ()) -> None:
        self.pids = [os.getpid(), *pids]

    @staticmethod
    def _cpu(pids: Iterable[int]) -> float:
        total = 0.0
        for pid in pids:
            try:
                times = psutil.Process(pid).cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
        return total

    @staticmethod
    def _docker_pids() -> list[int]:
        return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] in ("dockerd", "containerd")]

    def __enter__(self) -> "CpuWatch":
        self.load_before = load_average()[0]
        self._docker = self._docker_pids()
        self._start = psutil.cpu_times()
        self._ours = self._cpu(self.pids)
        self._docker_cpu = self._cpu(self._docker)
        self._wall = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        end = psutil.cpu_times()
        self.seconds = time.monotonic() - self._wall
        busy = sum(getattr(end, f) - getattr(self._start, f) for f in ("user", "nice", "system", "irq", "softirq",
                                                                       "steal") if hasattr(end, f))
        total = busy + (end.idle - self._start.idle) + (getattr(end, "iowait", 0) - getattr(self._start, "iowait", 0))
        self.busy_pct = round(100 * busy / total, 1) if total > 0 else None
        self.busy_cpu_s = round(busy, 2)
        self.ours_cpu_s = round(self._cpu(self.pids) - self._ours, 2)
        self.docker_cpu_s = round(self._cpu(self._docker) - self._docker_cpu, 2)
        self.load_after = load_average()[0]

    def as_dict(self) -> dict[str, Any]:
        return {"machine_cpu_busy_pct": self.busy_pct, "load1_before": self.load_before,
                "load1_after": self.load_after, "machine_busy_cpu_s": self.busy_cpu_s,
                "our_processes_cpu_s": self.ours_cpu_s, "docker_daemons_cpu_s": self.docker_cpu_s,
                "rest_cpu_s": round(self.busy_cpu_s - self.ours_cpu_s - self.docker_cpu_s, 2),
                "watched_s": round(self.seconds, 2)}


def machine() -> dict[str, Any]:
    memory = psutil.virtual_memory()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        commit, dirty = "unknown", False
    cpu = ""
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    except OSError:
        pass
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(memory.total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "docker": _docker_version(),
        "commit": commit,
        "uncommitted_changes": dirty,
        "load_average": load_average(),
        "taskorg_processes_of_others": other_taskorg_processes(),
    }


def _docker_version() -> str:
    try:
        client = docker.from_env()
        try:
            return str(client.version().get("Version"))
        finally:
            client.close()
    except Exception as exc:  # the suite still reports the machine
        return f"unreachable: {exc}"


def other_taskorg_processes() -> int:
    """taskorg service processes on this machine (called before a run starts any: others' test clusters)."""
    mine = os.getpid()
    count = 0
    for proc in psutil.process_iter(["pid", "cmdline", "ppid"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if ("-m taskorg" in cmdline or "-m bench.lightnode" in cmdline) and proc.info["pid"] != mine:
            count += 1
    return count


# ---- clusters ----------------------------------------------------------------------------------
class BenchCluster(LocalCluster):
    """A LocalCluster that may hold more than 50 nodes, and light nodes (bench/lightnode.py).

    What a benchmark changes in taskorg it changes through settings (`settings`
    for every node, `node_settings` for some): the stand-in runner
    (`runner: standin`), a node's advertised CPUs (`advertise_cpus`), a node
    without a master service (`master_service: false`). Every process runs
    taskorg's own code as `taskorg cluster up` does; a light node runs two of
    its services in one process.
    """

    def __init__(self, *args: Any, node_settings: dict[int, dict[str, Any]] | None = None, **kwargs: Any) -> None:
        nodes = kwargs.pop("nodes", 3)
        # LocalCluster caps nodes at 50 for users; the scale bench asks for more on purpose.
        super().__init__(*args, nodes=min(nodes, 50), **kwargs)
        self.nodes = nodes
        self.node_settings = {int(k): dict(v) for k, v in (node_settings or {}).items()}
        self.skip_services: dict[int, set[str]] = {}

    def _write_configs(self) -> None:
        super()._write_configs()
        for index, extra in self.node_settings.items():
            path = self._node_config(index)
            self._write_yaml(path, {**yaml.safe_load(path.read_text()), **extra})

    def _spawn(self, key: str, service: str, config_path: Path) -> None:
        index = int(key.split("/")[0][4:]) if key.startswith("node") else 0
        if service in self.skip_services.get(index, set()):
            return
        command = ["-m", "bench.lightnode"] if service == "light" else ["-m", "taskorg", "agent", service]
        env = {**os.environ, "TASKORG_SECRET": "", "PYTHONPATH": str(REPO)}
        self.pids[key] = spawn(self.workdir, key, [sys.executable, *command, "--config", str(config_path)],
                               env=env, cwd=REPO)
        self._save()

    def service_pid(self, index: int, service: str) -> int | None:
        return self.pids.get(f"node{index}/{service}")


@contextlib.contextmanager
def bench_cluster(nodes: int = 3, webview: bool = False, settings: dict[str, Any] | None = None,
                  node_settings: dict[int, dict[str, Any]] | None = None, workdir_base: str = "/tmp",
                  prepare: Callable[[BenchCluster], None] | None = None,
                  start_timeout: float = 90.0, cluster_cls: type[BenchCluster] | None = None) -> Iterator[BenchCluster]:
    """A started local cluster on a free 127.0.X.0/24, stopped (by pid and label) and removed after.

    Another test cluster may grab the same free block between our probe and
    dnsmasq's bind: then we try the next one (three times at most).
    """
    last: Exception | None = None
    for attempt in range(3):
        workdir = Path(tempfile.mkdtemp(prefix="taskorg-bench-", dir=workdir_base))
        cluster = (cluster_cls or BenchCluster)(workdir, nodes=nodes, dns_address=free_loopback_block(start=200 + 7 * attempt),
                               name=f"bench-{workdir.name[-6:]}", webview=webview, settings=settings,
                               node_settings=node_settings)
        if prepare:
            prepare(cluster)
        try:
            started = time.monotonic()
            cluster.start(timeout=start_timeout)
            log(f"cluster {cluster.name}: {nodes} nodes at {cluster.dns_address} up in "
                f"{time.monotonic() - started:.1f} s")
        except ClusterError as exc:
            last = exc
            log(f"cluster start failed ({exc}); trying another address block")
            _stop_quietly(cluster)
            _remove_workdir(workdir)
            continue
        except BaseException:
            _stop_quietly(cluster)
            _remove_workdir(workdir)
            raise
        try:
            yield cluster
        finally:
            _stop_quietly(cluster)
            _remove_workdir(workdir)
        return
    raise ClusterError(f"no bench cluster could start: {last}")


def _remove_workdir(workdir: Path) -> None:
    if os.environ.get("BENCH_KEEP_LOGS"):
        log(f"BENCH_KEEP_LOGS: logs and state left in {workdir}")
        return
    shutil.rmtree(workdir, ignore_errors=True)


def _stop_quietly(cluster: LocalCluster) -> None:
    # Ctrl-C during the stop would leave processes behind: finish it first.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        cluster.stop()
    except Exception as exc:
        log(f"stopping cluster {cluster.name}: {exc}")
    finally:
        signal.signal(signal.SIGINT, previous)


def running_by_node(cluster: LocalCluster) -> dict[str, set[str]]:
    """task id -> nodes where one of its containers is running (asked of dockerd directly)."""
    client = docker.from_env()
    found: dict[str, set[str]] = {}
    try:
        for c in client.containers.list(sparse=True, filters={"label": f"taskorg.cluster={cluster.name}"}):
            labels = c.attrs["Labels"]
            found.setdefault(labels["taskorg.task"], set()).add(labels["taskorg.node"])
    finally:
        client.close()
    return found


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll `check` until truthy; bounded by `timeout`. Exceptions count as 'not yet'."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def probe_spec(tag: str) -> bytes:
    """A one-shot probe task named after `tag`: a name of its own each round, since a submission of a
    job name that still runs updates that job (issue 16) rather than storing a new one."""
    return f"name: probe-{tag}\nimage: taskorg/busybox:latest\ncommand: 'true'\nrestart: never\n".encode()

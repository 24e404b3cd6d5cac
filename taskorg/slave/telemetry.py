"""What the master needs to place tasks well: load, memory, disks, sensors, GPUs, speed.

`speed` is measured, not configured: a short single-core hashing benchmark run
once per process (about 50 ms of CPU), normalised so the development machine
scores about 1.0. A
Raspberry Pi scores lower, a fast desktop higher; placement prefers higher.

Disks: the filesystem of taskorg's state directory and, when it is another
one and readable, that of docker's data root. A filling SD card is how a
small node dies, and these two are what fills it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import psutil

from taskorg.logs import get_logger

log = get_logger("slave.telemetry")

# Chained sha256 rounds per second on the reference (development) machine.
REFERENCE_RATE = 4.8e6
GPU_CACHE_SECONDS = 5.0
_GPU_QUERY = ["--query-gpu=name,memory.total,memory.used,utilization.gpu", "--format=csv,noheader,nounits"]
_gpu_cache: tuple[float, list[dict[str, Any]]] | None = None
_gpu_lock = threading.Lock()


def collect(node: str, cpus: float = 0.0, state_dir: str = "", docker_root: str = "") -> dict[str, Any]:
    """One telemetry sample (cheap: safe to call on every report).

    `cpus` > 0 is reported as the node's CPU count instead of the machine's
    (the setting `advertise_cpus`): placement then treats the node as that big.
    """
    memory = psutil.virtual_memory()
    return {
        "node": node,
        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "cpu_count": cpus if cpus > 0 else psutil.cpu_count() or os.cpu_count() or 1,
        # Non-blocking: the usage since the previous call (prime() starts the clock).
        "cpu_percent": psutil.cpu_percent(interval=None),
        "load1": _load1(),
        "memory_total": memory.total,
        "memory_available": memory.available,
        "temperatures": temperatures(),
        "gpus": gpus(),
        "speed": measure_speed(),
        "disk": state_disk(state_dir) if state_dir else None,
        "docker_disk": docker_disk(docker_root, state_dir) if docker_root else None,
    }


def collector(cpus: float, state_dir: str = "", docker_root: str = "") -> Callable[[str], dict[str, Any]]:
    """`collect` with this node's `advertise_cpus` and `state_dir` settings and docker's data root bound."""
    return functools.partial(collect, cpus=cpus, state_dir=state_dir, docker_root=docker_root)


def prime() -> None:
    """Start the cpu_percent clock and run the benchmark before the first report."""
    psutil.cpu_percent(interval=None)
    measure_speed()


@functools.cache
def measure_speed(duration: float = 0.05) -> float:
    """A CPU score: the best of a few short bursts of chained sha256.

    Rates are per second of this thread's CPU time, not wall time, so a node
    that happens to be busy when the slave starts does not look slow forever.
    """
    bursts = 5
    best = max(_hash_rate(duration / bursts) for _ in range(bursts))
    return round(best / REFERENCE_RATE, 3)


def _hash_rate(cpu_seconds: float, wall_cap: float = 0.5) -> float:
    digest = b"taskorg"
    rounds = 0
    cpu_start = time.thread_time()
    wall_deadline = time.perf_counter() + wall_cap  # a starved thread still finishes
    while True:
        for _ in range(64):
            digest = hashlib.sha256(digest).digest()
        rounds += 64
        used = time.thread_time() - cpu_start
        if used >= cpu_seconds or time.perf_counter() >= wall_deadline:
            return rounds / used if used > 0 else 0.0


def _load1() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return 0.0


def temperatures() -> dict[str, float]:
    """`{"coretemp/Package id 0": 47.0, ...}`; empty where the machine has no sensors."""
    reader = getattr(psutil, "sensors_temperatures", None)
    if reader is None:
        return {}
    try:
        chips = reader()
    except (OSError, RuntimeError) as exc:
        log.debug("no temperature sensors", extra={"error": str(exc)})
        return {}
    return flatten_temperatures(chips)


def flatten_temperatures(chips: dict[str, list[Any]]) -> dict[str, float]:
    result: dict[str, float] = {}
    for chip, readings in chips.items():
        for number, reading in enumerate(readings):
            if reading.current is None:
                continue
            key = f"{chip}/{reading.label}" if reading.label else chip
            if key in result:
                key = f"{key}#{number}"
            result[key] = round(float(reading.current), 1)
    return result


def gpus() -> list[dict[str, Any]]:
    """NVIDIA GPUs via nvidia-smi when installed (cached a few seconds: it is slow)."""
    global _gpu_cache
    binary = shutil.which("nvidia-smi")
    if not binary:
        return []
    with _gpu_lock:
        if _gpu_cache and time.monotonic() - _gpu_cache[0] < GPU_CACHE_SECONDS:
            return _gpu_cache[1]
        try:
            result = subprocess.run([binary, *_GPU_QUERY], capture_output=True, text=True, timeout=3, check=False)
            found = parse_nvidia_smi(result.stdout) if result.returncode == 0 else []
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.debug("nvidia-smi failed", extra={"error": str(exc)})
            found = []
        _gpu_cache = (time.monotonic(), found)
        return found


def parse_nvidia_smi(text: str) -> list[dict[str, Any]]:
    """Parse `name, memory.total [MiB], memory.used [MiB], utilization.gpu [%]` CSV lines.

    Memory is in bytes (like the node's memory_total); "[N/A]" is None.
    """
    found = []
    for line in text.splitlines():
        parts = [part.strip() for part in line.rsplit(",", 3)]  # a name may hold a comma
        if len(parts) != 4 or not parts[0]:
            continue
        name, total, used, utilization = parts
        found.append({"name": name, "memory_total": _mib(total), "memory_used": _mib(used),
                      "utilization": _number(utilization)})
    return found


def _mib(text: str) -> int | None:
    mib = _number(text)
    return int(mib * 1024 * 1024) if mib is not None else None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def mount_of(path: str) -> str:
    """The mount point holding `path` (its nearest existing ancestor's)."""
    current = Path(path).resolve()
    while not current.exists():
        current = current.parent
    while not os.path.ismount(current):
        current = current.parent
    return str(current)


def state_disk(state_dir: str) -> dict[str, Any] | None:
    """Usage of the filesystem holding `state_dir` (the slave's telemetry, for the disk alert);
    None when it cannot be read."""
    mount = mount_of(state_dir)
    try:
        usage = psutil.disk_usage(mount)
    except OSError:
        return None
    return {"mount": mount, "total": usage.total, "used": usage.used, "percent": usage.percent}


def docker_disk(docker_root: str, state_dir: str = "") -> dict[str, Any] | None:
    """Usage of the filesystem holding docker's data root, measured as the state directory's is; None
    when it is that same filesystem (`disk` says it) or cannot be read (the root is often root-only)."""
    try:
        if state_dir and mount_of(docker_root) == mount_of(state_dir):
            return None
        return state_disk(docker_root)
    except OSError as exc:
        log.debug("docker data root not readable", extra={"path": docker_root, "error": str(exc)})
        return None


def docker_root_of(runner: Any) -> str:
    """Docker's data root (`docker info`'s DockerRootDir) for a runner with a docker client; "" otherwise."""
    client = getattr(runner, "client", None)
    try:
        root = client.info().get("DockerRootDir") if client is not None else None
    except Exception as exc:  # any docker or transport error: that disk is simply not reported
        log.debug("docker data root unknown", extra={"error": str(exc)})
        return ""
    return str(root or "")

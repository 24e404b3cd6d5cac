"""A start order -> the keyword arguments of docker's `containers.create`.

Pure: no docker call, no file created (the runner makes the job's shared
directory and writes secret and config files where `file_mounts` says). So
the stand-in runner builds the same arguments the Docker runner does, and
the mapping is testable without dockerd. Every `TaskSpec` field that means
something to Docker is mapped here (docs/spec.md, "What the runner honours").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from docker.types import DeviceRequest, LogConfig, Mount

from taskorg import labels
from taskorg.protocol import StartOrder
from taskorg.slave.runner.order import OrderError
from taskorg.slave.runner.policy import DROPPED_BY_DEFAULT
from taskorg.spec import FileMount, HealthCheck, Port, TaskSpec, Volume

RESULT_FILE = "/tmp/taskorg-result.json"  # where a task writes its JSON result, unless its spec says
SHARED_TARGET = "/shared"  # the job's directory on the cluster's shared storage
DEFAULT_MEMORY_LIMIT = 512 * 1024**2
DEFAULT_PIDS_LIMIT = 512
NS = 1_000_000_000  # Docker counts health check times in nanoseconds


@dataclass(frozen=True)
class Site:
    """Where containers run: `address` is the node's own (published ports bind to it only);
    `shared_dir` the cluster-wide shared storage here, each job's `<shared_dir>/<job>` at /shared;
    `files_dir` where each container's secret and config files are written (under the state dir);
    `memory_limit` and `pids_limit` what a container gets when its spec sets no limit."""

    cluster: str
    node: str
    address: str = "0.0.0.0"
    shared_dir: str = ""
    files_dir: str = "/var/lib/taskorg/slave/files"
    memory_limit: int = DEFAULT_MEMORY_LIMIT
    pids_limit: int = DEFAULT_PIDS_LIMIT


def create_args(order: StartOrder, name: str, site: Site) -> dict[str, Any]:
    """The container's create arguments; OrderError when the spec cannot be used."""
    try:
        return _create_args(order, name, site)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, OrderError):
            raise
        raise OrderError(f"order field 'spec': cannot use it: {type(exc).__name__}: {exc}") from None


def is_job_dir_name(job: str) -> bool:
    """Whether a job id may name its directory on the shared storage (letters, digits and '-' only)."""
    return job.replace("-", "").isalnum()


def shared_job_dir(site: Site, order: StartOrder) -> Path | None:
    """The job's directory on the shared storage, or None when there is none to mount."""
    if not site.shared_dir or not order.job:
        return None
    if not is_job_dir_name(order.job):
        raise OrderError(f"order field 'job': job id {order.job!r} cannot name a directory")
    return Path(site.shared_dir) / order.job


def container_files_dir(site: Site, name: str) -> Path:
    """The directory of one container's secret and config files (removed with the container)."""
    return Path(site.files_dir) / name


def file_mounts(site: Site, name: str, spec: TaskSpec) -> list[tuple[Path, FileMount]]:
    """(host file, what goes in it) for each secret and config; the runner writes them."""
    folder = container_files_dir(site, name)
    return [(folder / f"{kind}-{index}", item)
            for kind, items in (("secret", spec.secrets), ("config", spec.configs))
            for index, item in enumerate(items)]


def _create_args(order: StartOrder, name: str, site: Site) -> dict[str, Any]:
    spec = order.spec
    mounts = [_mount(volume, site.cluster) for volume in spec.volumes if volume.type != "tmpfs"]
    mounts += [Mount(target=item.target, source=str(path), type="bind", read_only=True)
               for path, item in file_mounts(site, name, spec)]
    env = _environment(order, site)
    job_dir = shared_job_dir(site, order)
    if job_dir is not None:
        mounts.append(Mount(target=SHARED_TARGET, source=str(job_dir), type="bind"))
        env["TASKORG_SHARED"] = SHARED_TARGET
    args: dict[str, Any] = {
        "image": spec.image,
        "name": name,
        "command": _list(spec.command),
        "entrypoint": _list(spec.entrypoint),
        "environment": env,
        # The task's own labels first: taskorg's labels are the slave's state and always win.
        "labels": {**{k: v for k, v in spec.labels.items() if not k.startswith("taskorg.")},
                   **own_labels(order, site)},
        "network_mode": spec.network,
        "privileged": spec.privileged,
        "working_dir": spec.workdir,
        "user": spec.user,
        "mounts": mounts,
        # Defaults for every container: no privilege gained through setuid binaries, a bounded
        # number of processes (a fork bomb stops at it), no raw sockets unless the spec adds them.
        "security_opt": ["no-new-privileges"],
        "pids_limit": site.pids_limit,
        "cap_drop": sorted({*spec.cap_drop, *(c for c in DROPPED_BY_DEFAULT if c not in spec.cap_add)}),
        # A limit is what Docker enforces; reservations are for placement only.
        "mem_limit": spec.resources.memory or site.memory_limit,
        # Small machines: keep container logs bounded.
        "log_config": LogConfig(type="json-file", config={"max-size": "10m", "max-file": "3"}),
        # A tiny init forwards SIGTERM and reaps zombies, so stops are quick.
        "init": True,
        "detach": True,
    }
    optional = {
        "nano_cpus": int(spec.resources.cpus * NS) if spec.resources.cpus else None,
        "healthcheck": healthcheck(spec.healthcheck),
        "stop_signal": spec.stop_signal,
        "cap_add": list(spec.cap_add) or None,
        "devices": [f"{d.source}:{d.target}:{d.permissions}" for d in spec.devices] or None,
        "device_requests": gpu_requests(spec),
        "tmpfs": tmpfs_mounts(spec.volumes),
        "platform": spec.platform,
        "ports": port_bindings(spec.ports, site.address) if spec.network == "bridge" and spec.ports else None,
    }
    args.update({key: value for key, value in optional.items() if value is not None})
    return args


def _environment(order: StartOrder, site: Site) -> dict[str, str]:
    """The spec's env, the order's over it, taskorg's own last."""
    env = {**order.spec.env, **order.env}
    env.update(TASKORG_TASK_ID=order.task_id, TASKORG_INDEX=str(order.index), TASKORG_NODE=site.node,
               TASKORG_ATTEMPT=str(order.attempt), TASKORG_RESULT=order.spec.result_file or RESULT_FILE)
    return env


def own_labels(order: StartOrder, site: Site) -> dict[str, str]:
    """The labels that are the slave's only state: whose container this is."""
    return {
        labels.CLUSTER: site.cluster,
        labels.NODE: site.node,
        labels.TASK: order.task_id,
        labels.INSTANCE: f"{order.task_id}/{order.index}",
        labels.EPOCH: str(order.epoch),
        labels.ATTEMPT: str(order.attempt),
        labels.JOB: order.job or "",
        # docker-py's create takes no stop timeout: the runner's stop reads it here.
        labels.STOP_GRACE: str(max(0, math.ceil(order.spec.stop_grace_period))),
    }


def healthcheck(check: HealthCheck | None) -> dict[str, Any] | None:
    """Docker's HealthConfig (times in nanoseconds); ["NONE"] turns off the image's own check."""
    if check is None:
        return None
    if check.disabled:
        return {"Test": ["NONE"]}
    return {"Test": list(check.test), "Interval": int(check.interval * NS), "Timeout": int(check.timeout * NS),
            "Retries": check.retries, "StartPeriod": int(check.start_period * NS),
            "StartInterval": int(check.start_interval * NS)}


def gpu_requests(spec: TaskSpec) -> list[DeviceRequest] | None:
    if spec.gpus is None:
        return None
    gpus = spec.gpus
    count = None if gpus.device_ids else gpus.count
    return [DeviceRequest(driver=gpus.driver or "", count=count, device_ids=list(gpus.device_ids) or None,
                          capabilities=[list(gpus.capabilities)])]


def tmpfs_mounts(volumes: Iterable[Volume]) -> dict[str, str] | None:
    """`{"/run": "size=65536"}`: memory file systems, with their size when the spec gives one."""
    found = {v.target: ",".join(([f"size={v.size}"] if v.size else []) + (["ro"] if v.read_only else []))
             for v in volumes if v.type == "tmpfs"}
    return found or None


def port_bindings(ports: Iterable[Port], address: str) -> dict[str, Any]:
    """`{"80/tcp": ("127.0.1.3", 8080)}`: bound to the port's host_ip, else the node's own address."""
    bindings: dict[str, list[tuple[Any, ...]]] = {}
    for port in ports:
        key = f"{port.container}/{port.protocol}"
        where = port.host_ip or address
        binding = (where, port.host) if port.host else (where,)  # no host port: ephemeral
        bindings.setdefault(key, []).append(binding)
    return {key: value[0] if len(value) == 1 else value for key, value in bindings.items()}


def _mount(volume: Volume, cluster: str) -> Mount:
    # Named volumes created here carry the cluster label so `cluster down` can find them.
    extra = {"labels": {labels.CLUSTER: cluster}} if volume.type == "volume" else {}
    return Mount(target=volume.target, source=volume.source, type=volume.type,
                 read_only=volume.read_only, **extra)


def _list(words: tuple[str, ...] | None) -> list[str] | None:
    return None if words is None else list(words)

"""A start order -> the keyword arguments of docker's `containers.create`.

Pure: no docker call, no file created (the runner makes the job's shared
directory). So the stand-in runner can refuse the orders the Docker runner
refuses, and the mapping is testable without dockerd.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from docker.types import LogConfig, Mount

from taskorg import labels
from taskorg.slave.runner.order import OrderError

RESULT_FILE = "/tmp/taskorg-result.json"  # where a task writes its JSON result, unless its spec says
SHARED_TARGET = "/shared"  # the job's directory on the cluster's shared storage


@dataclass(frozen=True)
class Site:
    """Where containers run: `address` is the node's own (published ports bind to it only);
    `shared_dir` the cluster-wide shared storage here, each job's `<shared_dir>/<job>` at /shared."""

    cluster: str
    node: str
    address: str = "0.0.0.0"
    shared_dir: str = ""


def create_args(order: Mapping[str, Any], name: str, site: Site) -> dict[str, Any]:
    """The container's create arguments; OrderError when the spec cannot be used."""
    try:
        return _create_args(order, name, site)
    except (KeyError, TypeError, ValueError) as exc:
        raise OrderError(f"order field 'spec': cannot use it: {type(exc).__name__}: {exc}") from None


def shared_job_dir(site: Site, order: Mapping[str, Any]) -> Path | None:
    """The job's directory on the shared storage, or None when there is none to mount."""
    if not site.shared_dir or not order.get("job"):
        return None
    job = str(order["job"])
    if not job.replace("-", "").isalnum():
        raise ValueError(f"job id {job!r} cannot name a directory")
    return Path(site.shared_dir) / job


def _create_args(order: Mapping[str, Any], name: str, site: Site) -> dict[str, Any]:
    spec = order["spec"]
    task_id, index, attempt = order["task_id"], order["index"], order["attempt"]
    env = {str(k): env_value(v) for k, v in (spec.get("env") or {}).items()}
    env.update({str(k): env_value(v) for k, v in (order.get("env") or {}).items()})
    env.update(TASKORG_TASK_ID=task_id, TASKORG_INDEX=str(index), TASKORG_NODE=site.node,
               TASKORG_ATTEMPT=str(attempt), TASKORG_RESULT=spec.get("result_file") or RESULT_FILE)
    mounts = [_mount(volume, site.cluster) for volume in spec.get("volumes") or []]
    job_dir = shared_job_dir(site, order)
    if job_dir is not None:
        mounts.append(Mount(target=SHARED_TARGET, source=str(job_dir), type="bind"))
        env["TASKORG_SHARED"] = SHARED_TARGET
    network = spec.get("network") or "bridge"
    args: dict[str, Any] = {
        "image": spec["image"],
        "name": name,
        "command": spec.get("command"),
        "entrypoint": spec.get("entrypoint"),
        "environment": env,
        "labels": {
            labels.CLUSTER: site.cluster,
            labels.NODE: site.node,
            labels.TASK: task_id,
            labels.INSTANCE: f"{task_id}/{index}",
            labels.EPOCH: str(order["epoch"]),
            labels.ATTEMPT: str(attempt),
            labels.JOB: str(order.get("job") or ""),
        },
        "network_mode": network,
        "privileged": bool(spec.get("privileged")),
        "working_dir": spec.get("workdir") or None,
        "user": spec.get("user") or None,
        "mounts": mounts,
        # Small machines: keep container logs bounded.
        "log_config": LogConfig(type="json-file", config={"max-size": "10m", "max-file": "3"}),
        # A tiny init forwards SIGTERM and reaps zombies, so stops are quick.
        "init": True,
        "detach": True,
    }
    resources = spec.get("resources") or {}
    if resources.get("cpus"):
        args["nano_cpus"] = int(float(resources["cpus"]) * 1e9)
    if resources.get("memory"):
        args["mem_limit"] = int(resources["memory"])
    if network not in ("host", "none") and spec.get("ports"):
        args["ports"] = port_bindings(spec["ports"], site.address)
    return args


def port_bindings(ports: Iterable[Mapping[str, Any]], address: str) -> dict[str, Any]:
    """`{"80/tcp": ("127.0.1.3", 8080)}`, bound to the node's own address only."""
    bindings: dict[str, list[tuple[Any, ...]]] = {}
    for port in ports:
        key = f"{int(port['container'])}/{port.get('protocol') or 'tcp'}"
        host = port.get("host")
        binding = (address, int(host)) if host else (address,)  # no host port: ephemeral
        bindings.setdefault(key, []).append(binding)
    return {key: value[0] if len(value) == 1 else value for key, value in bindings.items()}


def _mount(volume: Mapping[str, Any], cluster: str) -> Mount:
    kind = volume.get("type") or "volume"
    # Named volumes created here carry the cluster label so `cluster down` can find them.
    extra = {"labels": {labels.CLUSTER: cluster}} if kind == "volume" else {}
    return Mount(target=volume["target"], source=volume["source"], type=kind,
                 read_only=bool(volume.get("read_only")), **extra)


def env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)

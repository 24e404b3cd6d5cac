"""The cluster policy, enforced where containers start.

The master's spec parser checks the policy too, but the slave's
`POST /v1/containers` is reachable by anyone holding a credential, so the
slave decides again on its own copy of the policy (its config): every start
order's spec is re-validated with the spec package's task checks, then held
to the rules only a node can judge (its own ports, its own paths). Pure but
for resolving a bind's source path (injected), so it is testable without
dockerd.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from typing import Any, Callable

from taskorg.slave.runner.order import OrderError
from taskorg.spec import SpecPolicy, TaskSpec
from taskorg.spec.model import NETWORKS
from taskorg.spec.report import Reporter
from taskorg.spec.task import check_task

DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")
# Host paths that give a container the node itself: refused unless allow_host_paths.
SYSTEM_PATHS = ("/etc", "/proc", "/sys", "/dev", "/boot", "/root")
# Capabilities a container keeps only when its spec adds them back (and the policy lets it).
DROPPED_BY_DEFAULT = ("NET_RAW",)
DEFAULT_SERVICE_PORTS = frozenset(range(23333, 23381))


@dataclass(frozen=True)
class NodePolicy:
    """What this node lets a container ask for (from its config, not from the order)."""

    spec: SpecPolicy = field(default_factory=SpecPolicy)
    allow_low_ports: bool = False
    service_ports: frozenset[int] = DEFAULT_SERVICE_PORTS
    state_dir: str = "/var/lib/taskorg"

    @classmethod
    def from_config(cls, config: Any) -> "NodePolicy":
        return cls(spec=SpecPolicy.from_config(config), allow_low_ports=bool(config.allow_low_ports),
                   service_ports=config.service_ports, state_dir=str(config.state_dir))


def check_start(spec: TaskSpec, policy: NodePolicy,
                resolve: Callable[[str], str] = os.path.realpath) -> None:
    """Refuse (OrderError naming the field) a spec this node must not run; None when it may.

    `resolve` turns a bind's source into the path dockerd will mount (symlinks followed).
    """
    for index, volume in enumerate(spec.volumes):  # first: no setting makes these safe, say so
        if volume.type == "bind":
            _check_never_mounted(volume.source, f"volumes[{index}]", policy, resolve)
    _recheck_task(spec, policy.spec)
    if spec.privileged and not policy.spec.allow_privileged:
        raise OrderError(_refused("privileged", "privileged containers", "allow_privileged"))
    if spec.network not in NETWORKS:
        raise OrderError(f"order field 'spec.network': {spec.network!r} is refused: only bridge, none "
                         "or host (if the cluster allows it) networks; a task never joins another "
                         "container's network")
    if spec.network == "host" and not policy.spec.allow_host_network:
        raise OrderError(_refused("network", "host networking", "allow_host_network"))
    for index, volume in enumerate(spec.volumes):
        _check_volume(volume.type, volume.source, f"volumes[{index}]", policy, resolve)
    for index, device in enumerate(spec.devices):
        _check_host_path(device.source, f"devices[{index}]", policy, resolve)
    for index, port in enumerate(spec.ports):
        _check_port(port.host, f"ports[{index}]", policy)
    for name in spec.cap_add:
        if name in DROPPED_BY_DEFAULT and not policy.spec.allow_privileged:
            raise OrderError(_refused("cap_add", f"adding {name}", "allow_privileged"))


def _recheck_task(spec: TaskSpec, policy: SpecPolicy) -> None:
    """The spec package's own task checks, on the order's spec as if it were submitted."""
    rep = Reporter("start order", path=("spec",))
    check_task(spec.to_dict(), rep, policy)
    if rep.problems:
        first = rep.problems[0]
        more = f" (and {len(rep.problems) - 1} more)" if len(rep.problems) > 1 else ""
        raise OrderError(f"order field '{first.path}': {first.message}{more}")


def _check_volume(kind: str, source: str, where: str, policy: NodePolicy,
                  resolve: Callable[[str], str]) -> None:
    if kind in ("volume", "tmpfs"):
        return
    if kind != "bind":
        raise OrderError(f"order field 'spec.{where}.type': {kind!r} is refused: only named volumes, "
                         "tmpfs and allowed host paths")
    _check_host_path(source, where, policy, resolve)


def _check_host_path(source: str, where: str, policy: NodePolicy, resolve: Callable[[str], str]) -> None:
    """A host path reaches into the node: never its docker socket (or a directory holding it) or
    taskorg's own state; system paths and any other host path only under allow_host_paths."""
    path = _check_never_mounted(source, where, policy, resolve)
    if not policy.spec.allow_host_paths:
        system = next((p for p in SYSTEM_PATHS if _within(path, p)), None)
        what = f"the node's {system}" if system else f"host path {source}"
        raise OrderError(_refused(where, what, "allow_host_paths"))


def _check_never_mounted(source: str, where: str, policy: NodePolicy, resolve: Callable[[str], str]) -> str:
    """The resolved host path, unless it is the docker socket, holds it, or is taskorg's state."""
    field_name = f"spec.{where}.source"
    if not posixpath.isabs(source):
        raise OrderError(f"order field '{field_name}': host path {source!r} is not absolute")
    path = posixpath.normpath(resolve(source))
    for socket in DOCKER_SOCKETS:
        if _within(socket, path):
            raise OrderError(f"order field '{field_name}': host path {source} is refused: it gives the "
                             "container the node's docker engine (never allowed)")
    state = posixpath.normpath(resolve(policy.state_dir))
    if _within(path, state) or _within(state, path):
        raise OrderError(f"order field '{field_name}': host path {source} is refused: it holds "
                         "taskorg's own state on this node (never allowed)")
    return path


def _check_port(host: int | None, where: str, policy: NodePolicy) -> None:
    if host is None:
        return
    if host in policy.service_ports:
        raise OrderError(f"order field 'spec.{where}.host': port {host} is refused: it is one of the "
                         "cluster's own service ports (23333-23380 and those configured)")
    if host < 1024 and not policy.allow_low_ports:
        raise OrderError(_refused(f"{where}.host", f"port {host} (below 1024)", "allow_low_ports"))


def _within(path: str, parent: str) -> bool:
    """True when `path` is `parent` or lies below it."""
    return path == parent or parent == "/" or path.startswith(parent.rstrip("/") + "/")


def _refused(where: str, what: str, setting: str) -> str:
    return (f"order field 'spec.{where}': {what} refused by this node's policy "
            f"(the setting {setting}: true allows it)")

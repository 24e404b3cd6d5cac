"""The validated task spec: frozen dataclasses and their canonical dict form.

Everything downstream (master state, replication, the slave's container
creation) works from these objects or from their canonical dict, never from
the user's YAML. The canonical dict is plain JSON: the master stores it and
streams it to standbys, the slave runs it. `from_dict` trusts its input (it
is our own output); untrusted input goes through `job_from_dict`, which
validates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

DEFAULT_IMAGE_EXAMPLE = "taskorg/busybox:latest"
RESTART_POLICIES = ("always", "never", "on-failure")
NETWORKS = ("bridge", "host", "none")
PROTOCOLS = ("tcp", "udp")
DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class SpecPolicy:
    """What the cluster lets a spec ask for; mirrors the Config settings of the same names."""

    allow_privileged: bool = False
    allow_host_network: bool = False
    allow_host_paths: bool = False

    @classmethod
    def from_config(cls, config: Any) -> "SpecPolicy":
        """Take the three `allow_*` settings from a taskorg Config (or anything alike)."""
        return cls(
            allow_privileged=bool(getattr(config, "allow_privileged", False)),
            allow_host_network=bool(getattr(config, "allow_host_network", False)),
            allow_host_paths=bool(getattr(config, "allow_host_paths", False)),
        )


@dataclass(frozen=True)
class Port:
    """A published port; `host` None lets Docker choose the host port."""

    container: int
    host: int | None = None
    protocol: str = "tcp"

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "container": self.container, "protocol": self.protocol}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Port":
        return cls(container=data["container"], host=data.get("host"),
                   protocol=data.get("protocol", "tcp"))


@dataclass(frozen=True)
class Volume:
    """A mount: a named Docker volume (`type` volume) or a host path (`type` bind)."""

    source: str
    target: str
    read_only: bool = False
    type: str = "volume"

    @property
    def is_bind(self) -> bool:
        return self.type == "bind"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target,
                "read_only": self.read_only, "type": self.type}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Volume":
        return cls(source=data["source"], target=data["target"],
                   read_only=bool(data.get("read_only", False)),
                   type=data.get("type", "volume"))


@dataclass(frozen=True)
class Resources:
    """Limits for one instance; None means no limit."""

    cpus: float | None = None
    memory: int | None = None  # bytes

    def to_dict(self) -> dict[str, Any]:
        return {"cpus": self.cpus, "memory": self.memory}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "Resources":
        data = data or {}
        cpus = data.get("cpus")
        return cls(cpus=None if cpus is None else float(cpus), memory=data.get("memory"))


@dataclass(frozen=True)
class Constraints:
    """Where instances may run: nodes carrying all `labels`, and (if any) one of `nodes`."""

    labels: Mapping[str, str] = field(default_factory=dict)
    nodes: tuple[str, ...] = ()

    def __hash__(self) -> int:  # labels is a dict; hash its items
        return hash((tuple(sorted(self.labels.items())), self.nodes))

    def to_dict(self) -> dict[str, Any]:
        return {"labels": dict(self.labels), "nodes": list(self.nodes)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "Constraints":
        data = data or {}
        return cls(labels=dict(data.get("labels") or {}), nodes=tuple(data.get("nodes") or ()))


@dataclass(frozen=True)
class RestartPolicy:
    """When a finished instance starts again.

    `max_attempts` (on-failure only) is how many times a failed instance is
    restarted, as in Docker's on-failure:N: with 3, an instance that keeps
    failing runs 4 times in all, then it is failed for good.
    """

    policy: str = "on-failure"
    max_attempts: int | None = DEFAULT_MAX_ATTEMPTS

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "max_attempts": self.max_attempts}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "RestartPolicy":
        if not data:
            return cls()
        return cls(policy=data.get("policy", "on-failure"), max_attempts=data.get("max_attempts"))


@dataclass(frozen=True)
class TaskSpec:
    """One task of a job, validated and in canonical form."""

    name: str
    image: str
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[Port, ...] = ()
    volumes: tuple[Volume, ...] = ()
    resources: Resources = field(default_factory=Resources)
    constraints: Constraints = field(default_factory=Constraints)
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    replicas: int = 1
    parallel: int = 1
    after: tuple[str, ...] = ()
    privileged: bool = False
    network: str = "bridge"
    workdir: str | None = None
    user: str | None = None
    result_file: str | None = None

    def __hash__(self) -> int:  # env is a dict; hash the canonical form
        return hash((self.name, self.image, self.command, self.entrypoint,
                     tuple(sorted(self.env.items())), self.ports, self.volumes,
                     self.resources, self.constraints, self.restart, self.replicas,
                     self.parallel, self.after, self.privileged, self.network,
                     self.workdir, self.user, self.result_file))

    @property
    def instance_count(self) -> int:
        """How many containers the task runs: its replicas or its parallel parts."""
        return max(self.replicas, self.parallel)

    def to_dict(self) -> dict[str, Any]:
        """The canonical, JSON-serialisable form (a fresh dict each call)."""
        return {
            "name": self.name,
            "image": self.image,
            "command": _list_or_none(self.command),
            "entrypoint": _list_or_none(self.entrypoint),
            "env": dict(self.env),
            "ports": [port.to_dict() for port in self.ports],
            "volumes": [volume.to_dict() for volume in self.volumes],
            "resources": self.resources.to_dict(),
            "constraints": self.constraints.to_dict(),
            "restart": self.restart.to_dict(),
            "replicas": self.replicas,
            "parallel": self.parallel,
            "after": list(self.after),
            "privileged": self.privileged,
            "network": self.network,
            "workdir": self.workdir,
            "user": self.user,
            "result_file": self.result_file,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TaskSpec":
        """Rebuild from `to_dict` output. Trusted input: no validation.

        Missing keys take their defaults, so specs stored by an older
        version (with fewer fields) still load.
        """
        return cls(
            name=data["name"],
            image=data["image"],
            command=_tuple_or_none(data.get("command")),
            entrypoint=_tuple_or_none(data.get("entrypoint")),
            env=dict(data.get("env") or {}),
            ports=tuple(Port.from_dict(p) for p in data.get("ports") or ()),
            volumes=tuple(Volume.from_dict(v) for v in data.get("volumes") or ()),
            resources=Resources.from_dict(data.get("resources")),
            constraints=Constraints.from_dict(data.get("constraints")),
            restart=RestartPolicy.from_dict(data.get("restart")),
            replicas=data.get("replicas", 1),
            parallel=data.get("parallel", 1),
            after=tuple(data.get("after") or ()),
            privileged=bool(data.get("privileged", False)),
            network=data.get("network", "bridge"),
            workdir=data.get("workdir"),
            user=data.get("user"),
            result_file=data.get("result_file"),
        )


@dataclass(frozen=True)
class JobSpec:
    """A validated job: its tasks ordered so that every task comes after its dependencies."""

    name: str
    tasks: tuple[TaskSpec, ...]
    seed: int | None = None

    def task(self, name: str) -> TaskSpec:
        """The task called `name` (KeyError if there is none)."""
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.name, "seed": self.seed, "tasks": [t.to_dict() for t in self.tasks]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "JobSpec":
        """Rebuild from `to_dict` output. Trusted input: no validation."""
        return cls(name=data["job"], seed=data.get("seed"),
                   tasks=tuple(TaskSpec.from_dict(t) for t in data["tasks"]))


def _list_or_none(words: tuple[str, ...] | None) -> list[str] | None:
    return None if words is None else list(words)


def _tuple_or_none(words: Any) -> tuple[str, ...] | None:
    return None if words is None else tuple(words)

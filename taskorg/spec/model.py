"""The validated task spec: frozen dataclasses and their canonical dict form.

Everything downstream (master state, replication, the slave's container
creation) works from these objects or from their canonical dict, never from
the user's YAML. The canonical dict is plain JSON: the master stores it and
streams it to standbys, the slave runs it. `from_dict` trusts its input (it
is our own output); untrusted input goes through `job_from_dict`, which
validates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

DEFAULT_IMAGE_EXAMPLE = "taskorg/busybox:latest"
RESTART_POLICIES = ("always", "never", "on-failure")
NETWORKS = ("bridge", "host", "none")
PROTOCOLS = ("tcp", "udp")
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_STOP_GRACE_S = 10.0  # Docker's own default
DEPENDENCY_CONDITIONS = ("started", "healthy")
FAILURE_ACTIONS = ("pause", "continue", "rollback")
UPDATE_ORDERS = ("stop-first", "start-first")
CONSTRAINT_OPS = ("==", "!=")


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
    host_ip: str | None = None  # the node address to bind; None: all of them

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "container": self.container, "protocol": self.protocol,
                "host_ip": self.host_ip}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Port":
        return cls(container=data["container"], host=data.get("host"),
                   protocol=data.get("protocol", "tcp"), host_ip=data.get("host_ip"))


@dataclass(frozen=True)
class Volume:
    """A mount: a named Docker volume (`type` volume), a host path (`type` bind), or
    a memory file system (`type` tmpfs, no source, `size` in bytes or None)."""

    source: str
    target: str
    read_only: bool = False
    type: str = "volume"
    size: int | None = None

    @property
    def is_bind(self) -> bool:
        return self.type == "bind"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target,
                "read_only": self.read_only, "type": self.type, "size": self.size}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Volume":
        return cls(source=data["source"], target=data["target"],
                   read_only=bool(data.get("read_only", False)),
                   type=data.get("type", "volume"), size=data.get("size"))


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
    """Where instances may run: nodes carrying all `labels`, (if any) one of `nodes`, and
    meeting every rule (Swarm's `node.hostname != pi3`, `node.labels.zone != a`)."""

    labels: Mapping[str, str] = field(default_factory=dict)
    nodes: tuple[str, ...] = ()
    rules: tuple["Rule", ...] = ()

    def __hash__(self) -> int:  # labels is a dict; hash its items
        return hash((tuple(sorted(self.labels.items())), self.nodes, self.rules))

    def to_dict(self) -> dict[str, Any]:
        return {"labels": dict(self.labels), "nodes": list(self.nodes),
                "rules": [rule.to_dict() for rule in self.rules]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "Constraints":
        data = data or {}
        return cls(labels=dict(data.get("labels") or {}), nodes=tuple(data.get("nodes") or ()),
                   rules=tuple(Rule.from_dict(rule) for rule in data.get("rules") or ()))


@dataclass(frozen=True)
class Rule:
    """One placement rule: a node `attribute` (`node.hostname`, `node.labels.zone`,
    `node.platform.arch`) compared with `value` by `op` (== or !=)."""

    attribute: str
    op: str
    value: str

    def __str__(self) -> str:
        return f"{self.attribute} {self.op} {self.value}"

    def to_dict(self) -> dict[str, Any]:
        return {"attribute": self.attribute, "op": self.op, "value": self.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Rule":
        return cls(attribute=data["attribute"], op=data["op"], value=data["value"])


@dataclass(frozen=True)
class RestartPolicy:
    """When a finished instance starts again.

    `max_attempts` (on-failure only) is how many times a failed instance is
    restarted, as in Docker's on-failure:N: with 3, an instance that keeps
    failing runs 4 times in all, then it is failed for good.
    """

    policy: str = "on-failure"
    max_attempts: int | None = DEFAULT_MAX_ATTEMPTS
    delay: float | None = None  # seconds between a stop and the restart; None: right away
    window: float | None = None  # seconds a restart must run to count as a success; None: at once

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "max_attempts": self.max_attempts,
                "delay": self.delay, "window": self.window}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "RestartPolicy":
        if not data:
            return cls()
        return cls(policy=data.get("policy", "on-failure"), max_attempts=data.get("max_attempts"),
                   delay=data.get("delay"), window=data.get("window"))


@dataclass(frozen=True)
class HealthCheck:
    """Docker's health check. `test` is Docker's form: ["CMD", argv...] or ["CMD-SHELL", text];
    ["NONE"] turns off a check the image defines. Times are seconds."""

    test: tuple[str, ...]
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0
    start_interval: float = 5.0

    @property
    def disabled(self) -> bool:
        return self.test == ("NONE",)

    def to_dict(self) -> dict[str, Any]:
        return {"test": list(self.test), "interval": self.interval, "timeout": self.timeout,
                "retries": self.retries, "start_period": self.start_period,
                "start_interval": self.start_interval}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "HealthCheck | None":
        if not data:
            return None
        return cls(test=tuple(data["test"]), interval=data.get("interval", 30.0),
                   timeout=data.get("timeout", 30.0), retries=data.get("retries", 3),
                   start_period=data.get("start_period", 0.0),
                   start_interval=data.get("start_interval", 5.0))


@dataclass(frozen=True)
class Device:
    """A host device node given to the container (`/dev/ttyUSB0:/dev/ttyUSB0:rwm`)."""

    source: str
    target: str
    permissions: str = "rwm"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "permissions": self.permissions}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Device":
        return cls(source=data["source"], target=data["target"],
                   permissions=data.get("permissions", "rwm"))


@dataclass(frozen=True)
class GpuRequest:
    """GPUs for an instance, as Docker's DeviceRequest: `count` of them (-1: all), or the
    listed `device_ids`; placement counts `count` (or the ids) against a node's free GPUs."""

    count: int | None = None
    device_ids: tuple[str, ...] = ()
    driver: str | None = None
    capabilities: tuple[str, ...] = ("gpu",)

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "device_ids": list(self.device_ids), "driver": self.driver,
                "capabilities": list(self.capabilities)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "GpuRequest | None":
        if not data:
            return None
        return cls(count=data.get("count"), device_ids=tuple(data.get("device_ids") or ()),
                   driver=data.get("driver"), capabilities=tuple(data.get("capabilities") or ("gpu",)))


@dataclass(frozen=True)
class FileMount:
    """A secret or config: `content` (text) mounted read-only as a file at `target`."""

    name: str
    target: str
    content: str
    mode: int | None = None  # e.g. 0o440; None: Docker's 0444
    uid: str | None = None
    gid: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, "content": self.content,
                "mode": self.mode, "uid": self.uid, "gid": self.gid}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FileMount":
        return cls(name=data["name"], target=data["target"], content=data["content"],
                   mode=data.get("mode"), uid=data.get("uid"), gid=data.get("gid"))


@dataclass(frozen=True)
class UpdateConfig:
    """How a running task is replaced by a new spec (or rolled back): Swarm's update_config.

    `parallelism` instances at a time (0: all), `delay` seconds between batches,
    `monitor` seconds a new batch is watched, `max_failure_ratio` of failures
    tolerated, then `failure_action`; `order` stop-first or start-first.
    """

    parallelism: int = 1
    delay: float = 0.0
    failure_action: str = "pause"
    monitor: float = 5.0
    max_failure_ratio: float = 0.0
    order: str = "stop-first"

    def to_dict(self) -> dict[str, Any]:
        return {"parallelism": self.parallelism, "delay": self.delay,
                "failure_action": self.failure_action, "monitor": self.monitor,
                "max_failure_ratio": self.max_failure_ratio, "order": self.order}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "UpdateConfig":
        return cls(**{key: value for key, value in (data or {}).items()
                      if key in cls.__dataclass_fields__})


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
    # Service fields (compose's names), issue 16.
    reservations: Resources = field(default_factory=Resources)  # what placement counts
    healthcheck: HealthCheck | None = None
    depends_on: Mapping[str, str] = field(default_factory=dict)  # task -> started | healthy
    labels: Mapping[str, str] = field(default_factory=dict)  # container labels
    stop_grace_period: float = DEFAULT_STOP_GRACE_S
    stop_signal: str | None = None
    devices: tuple[Device, ...] = ()
    gpus: GpuRequest | None = None
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    secrets: tuple[FileMount, ...] = ()
    configs: tuple[FileMount, ...] = ()
    update_config: UpdateConfig = field(default_factory=UpdateConfig)
    rollback_config: UpdateConfig = field(default_factory=UpdateConfig)
    platform: str | None = None

    def __hash__(self) -> int:  # mappings inside; hash the canonical form
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    @property
    def waits_for(self) -> tuple[str, ...]:
        """Every task this one waits for: `after` (succeeded) and `depends_on` (started, healthy)."""
        return self.after + tuple(name for name in self.depends_on if name not in self.after)

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
            "reservations": self.reservations.to_dict(),
            "healthcheck": None if self.healthcheck is None else self.healthcheck.to_dict(),
            "depends_on": dict(self.depends_on),
            "labels": dict(self.labels),
            "stop_grace_period": self.stop_grace_period,
            "stop_signal": self.stop_signal,
            "devices": [device.to_dict() for device in self.devices],
            "gpus": None if self.gpus is None else self.gpus.to_dict(),
            "cap_add": list(self.cap_add),
            "cap_drop": list(self.cap_drop),
            "secrets": [secret.to_dict() for secret in self.secrets],
            "configs": [config.to_dict() for config in self.configs],
            "update_config": self.update_config.to_dict(),
            "rollback_config": self.rollback_config.to_dict(),
            "platform": self.platform,
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
            reservations=Resources.from_dict(data.get("reservations")),
            healthcheck=HealthCheck.from_dict(data.get("healthcheck")),
            depends_on=dict(data.get("depends_on") or {}),
            labels=dict(data.get("labels") or {}),
            stop_grace_period=data.get("stop_grace_period", DEFAULT_STOP_GRACE_S),
            stop_signal=data.get("stop_signal"),
            devices=tuple(Device.from_dict(d) for d in data.get("devices") or ()),
            gpus=GpuRequest.from_dict(data.get("gpus")),
            cap_add=tuple(data.get("cap_add") or ()),
            cap_drop=tuple(data.get("cap_drop") or ()),
            secrets=tuple(FileMount.from_dict(s) for s in data.get("secrets") or ()),
            configs=tuple(FileMount.from_dict(c) for c in data.get("configs") or ()),
            update_config=UpdateConfig.from_dict(data.get("update_config")),
            rollback_config=UpdateConfig.from_dict(data.get("rollback_config")),
            platform=data.get("platform"),
        )


@dataclass(frozen=True)
class JobSpec:
    """A validated job: its tasks ordered so that every task comes after its dependencies."""

    name: str
    tasks: tuple[TaskSpec, ...]
    seed: int | None = None
    # What was accepted but not honoured (compose keys without meaning here); not stored.
    warnings: tuple[str, ...] = field(default=(), compare=False)

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

"""Validation of one task mapping into a TaskSpec.

Fields are checked one by one (see fields.py), then the rules that involve
several fields, then the cluster policy. Whether `after` names exist is a
question about the whole job and is answered in parse.py.
"""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from typing import Any

from .errors import describe
from .checks import check_keys, optional, required, to_bool
from .devices import check_capability_policy, to_capabilities, to_devices, to_gpus
from .fields import (NAME_RULE, to_absolute_path, to_after, to_argv, to_constraints, to_count,
                     to_depends_on, to_env, to_image, to_labels, to_name, to_network, to_platform,
                     to_resources, to_restart, to_result_file, to_user)
from .files import to_file_mounts
from .health import (to_duration, to_healthcheck, to_rollback_config, to_stop_signal,
                     to_update_config)
from .ports import to_ports
from .volumes import to_volumes
from .model import (DEFAULT_STOP_GRACE_S, Constraints, Resources, RestartPolicy, SpecPolicy, TaskSpec,
                    UpdateConfig)
from .report import Reporter

TASK_FIELDS = tuple(f.name for f in dataclass_fields(TaskSpec))

# Names users bring from docker-compose (and elsewhere), with what to write instead.
TASK_HINTS = {
    "environment": "did you mean 'env'?",
    "working_dir": "did you mean 'workdir'?",
    "network_mode": "did you mean 'network'?",
    "networks": "did you mean 'network'?",
    "container_name": "did you mean 'name'?",
    "restart_policy": "did you mean 'restart'?",
    "mem_limit": "write resources: {memory: ...}",
    "memory": "write resources: {memory: ...}",
    "cpus": "write resources: {cpus: ...}",
    "deploy": "write resources and replicas directly in the task",
    "reservation": "did you mean 'reservations'?",
    "nodes": "write constraints: {nodes: [...]}",
    "seed": "a seed belongs to a job: write job, seed and tasks",
    "job": "a job holds its tasks in a tasks list",
    "services": "a compose file has only services and its other keys at the top, no image",
}

NAME_EXAMPLE = f"a name like web: {NAME_RULE}"
IMAGE_EXAMPLE = "the container image, like taskorg/busybox:latest"


def check_task(data: Any, rep: Reporter, policy: SpecPolicy) -> TaskSpec | None:
    """The TaskSpec for `data`, with its problems reported to `rep`; None if not a mapping."""
    if not isinstance(data, dict):
        rep.add(f"a task must be a mapping with a name and an image, got {describe(data)}")
        return None
    check_keys(data, TASK_FIELDS, rep, TASK_HINTS)
    task = TaskSpec(
        name=required(data, "name", rep, to_name, "", NAME_EXAMPLE),
        image=required(data, "image", rep, to_image, "", IMAGE_EXAMPLE),
        command=optional(data, "command", rep, to_argv, None),
        entrypoint=optional(data, "entrypoint", rep, to_argv, None),
        env=optional(data, "env", rep, to_env, {}),
        ports=optional(data, "ports", rep, to_ports, ()),
        volumes=optional(data, "volumes", rep,
                         lambda v, r: to_volumes(v, r, policy.allow_host_paths), ()),
        resources=optional(data, "resources", rep, to_resources, Resources()),
        constraints=optional(data, "constraints", rep, to_constraints, Constraints()),
        restart=optional(data, "restart", rep, to_restart, RestartPolicy()),
        replicas=optional(data, "replicas", rep, to_count, 1),
        parallel=optional(data, "parallel", rep, to_count, 1),
        after=optional(data, "after", rep, to_after, ()),
        privileged=optional(data, "privileged", rep, to_bool, False),
        network=optional(data, "network", rep, to_network, "bridge"),
        workdir=optional(data, "workdir", rep, to_absolute_path, None),
        user=optional(data, "user", rep, to_user, None),
        result_file=optional(data, "result_file", rep, to_result_file, None),
        reservations=optional(data, "reservations", rep, to_resources, Resources()),
        healthcheck=optional(data, "healthcheck", rep, to_healthcheck, None),
        depends_on=optional(data, "depends_on", rep, to_depends_on, {}),
        labels=optional(data, "labels", rep, to_labels, {}),
        stop_grace_period=optional(data, "stop_grace_period", rep, to_duration, DEFAULT_STOP_GRACE_S),
        stop_signal=optional(data, "stop_signal", rep, to_stop_signal, None),
        devices=optional(data, "devices", rep, lambda v, r: to_devices(v, r, policy), ()),
        gpus=optional(data, "gpus", rep, to_gpus, None),
        cap_add=optional(data, "cap_add", rep, to_capabilities, ()),
        cap_drop=optional(data, "cap_drop", rep, to_capabilities, ()),
        secrets=optional(data, "secrets", rep, lambda v, r: to_file_mounts(v, r, "/run/secrets"), ()),
        configs=optional(data, "configs", rep, lambda v, r: to_file_mounts(v, r, "/"), ()),
        update_config=optional(data, "update_config", rep, to_update_config, UpdateConfig()),
        rollback_config=optional(data, "rollback_config", rep, to_rollback_config, UpdateConfig()),
        platform=optional(data, "platform", rep, to_platform, None),
    )
    _check_combinations(task, rep)
    _check_policy(task, rep, policy)
    return task


def _check_combinations(task: TaskSpec, rep: Reporter) -> None:
    if task.replicas > 1 and task.parallel > 1:
        rep.at("parallel").add(
            f"cannot be combined with replicas: {task.replicas} (replicas run identical "
            "copies, parallel splits one piece of work in parts; choose one)")
    if task.ports and task.network == "host":
        rep.at("ports").add("cannot be published with network: host "
                            "(the container uses the node's ports directly)")
    if task.ports and task.network == "none":
        rep.at("ports").add("cannot be published with network: none (the container has no network)")
    for name in task.depends_on:
        if name in task.after:
            rep.at("depends_on", name).add(f"{name} is in after too: after waits until it has "
                                           "succeeded, depends_on until it has started; choose one")
    _check_reservations(task, rep)


def _check_reservations(task: TaskSpec, rep: Reporter) -> None:
    """A task cannot count on more than Docker lets it use."""
    limits, wants = task.resources, task.reservations
    if limits.cpus is not None and wants.cpus is not None and wants.cpus > limits.cpus:
        rep.at("reservations", "cpus").add(f"{wants.cpus:g} is more than the limit resources.cpus "
                                           f"{limits.cpus:g}")
    if limits.memory is not None and wants.memory is not None and wants.memory > limits.memory:
        rep.at("reservations", "memory").add("is more than the limit resources.memory")


def _check_policy(task: TaskSpec, rep: Reporter, policy: SpecPolicy) -> None:
    """Privileged mode and host networking make a task root on its node: the cluster decides."""
    if task.privileged and not policy.allow_privileged:
        rep.at("privileged").add("privileged containers are refused by the cluster policy "
                                 "(the cluster setting allow_privileged: true allows them)")
    if task.network == "host" and not policy.allow_host_network:
        rep.at("network").add("host networking is refused by the cluster policy "
                              "(the cluster setting allow_host_network: true allows it)")
    check_capability_policy(task.cap_add, rep.at("cap_add"), policy)
    # Host paths are checked where each volume and device is known: to_volumes, to_devices.

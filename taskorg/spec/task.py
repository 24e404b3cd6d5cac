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
from .fields import (NAME_RULE, to_absolute_path, to_after, to_argv, to_constraints, to_count,
                     to_env, to_image, to_name, to_network, to_resources, to_restart,
                     to_result_file, to_user)
from .ports import to_ports
from .volumes import to_volumes
from .model import Constraints, Resources, RestartPolicy, SpecPolicy, TaskSpec
from .report import Reporter

TASK_FIELDS = tuple(f.name for f in dataclass_fields(TaskSpec))

# Names users bring from docker-compose (and elsewhere), with what to write instead.
TASK_HINTS = {
    "environment": "did you mean 'env'?",
    "depends_on": "did you mean 'after'?",
    "working_dir": "did you mean 'workdir'?",
    "network_mode": "did you mean 'network'?",
    "networks": "did you mean 'network'?",
    "container_name": "did you mean 'name'?",
    "restart_policy": "did you mean 'restart'?",
    "mem_limit": "write resources: {memory: ...}",
    "memory": "write resources: {memory: ...}",
    "cpus": "write resources: {cpus: ...}",
    "deploy": "write resources and replicas directly in the task",
    "labels": "node labels go in constraints: {labels: ...}",
    "nodes": "write constraints: {nodes: [...]}",
    "seed": "a seed belongs to a job: write job, seed and tasks",
    "job": "a job holds its tasks in a tasks list",
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


def _check_policy(task: TaskSpec, rep: Reporter, policy: SpecPolicy) -> None:
    """Privileged mode and host networking make a task root on its node: the cluster decides."""
    if task.privileged and not policy.allow_privileged:
        rep.at("privileged").add("privileged containers are refused by the cluster policy "
                                 "(the cluster setting allow_privileged: true allows them)")
    if task.network == "host" and not policy.allow_host_network:
        rep.at("network").add("host networking is refused by the cluster policy "
                              "(the cluster setting allow_host_network: true allows it)")
    # Host paths are checked where each volume is known: to_volumes.

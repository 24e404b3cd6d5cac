"""A compose service's `deploy:` (Swarm's keys) into task fields.

Swarm's meaning is kept where compose and Swarm differ: reservations are
what placement counts, limits what Docker enforces; restart_policy's
condition any/on-failure/none is always/on-failure/never.
"""

from __future__ import annotations

import re
from typing import Any

from .compose_keys import DEPLOY
from .compose_parts import TaskOut, check_compose_keys, gpus_of, labels_of
from .errors import describe
from .report import Reporter

RESTART_CONDITIONS = {"none": "never", "on-failure": "on-failure", "any": "always"}
LABEL_RULE = re.compile(r"^\s*node\.labels\.([A-Za-z0-9_.-]+)\s*==\s*(\S+)\s*$")
ROLE_RULE = re.compile(r"^\s*node\.role\s*(==|!=)")


def convert_deploy(deploy: dict[Any, Any], rep: Reporter, out: TaskOut) -> None:
    check_compose_keys(deploy, DEPLOY, rep, "deploy key")
    mode = deploy.get("mode", "replicated")
    if mode != "replicated":
        rep.at("mode").add(f"{describe(mode)} is not supported: taskorg runs replicated services "
                           "(for one per node, set replicas to the node count and publish a host port)")
    if deploy.get("replicas") is not None:
        out.set("replicas", deploy["replicas"], "deploy", "replicas")
    resources = deploy.get("resources")
    if isinstance(resources, dict):
        _deploy_resources(resources, rep.at("resources"), out)
    policy = deploy.get("restart_policy")
    if isinstance(policy, dict):
        out.set("restart", _restart_policy(policy, rep.at("restart_policy")), "deploy", "restart_policy")
    placement = deploy.get("placement")
    if isinstance(placement, dict):
        _placement(placement, rep.at("placement"), out)
    for key in ("update_config", "rollback_config"):
        if deploy.get(key) is not None:
            out.set(key, deploy[key], "deploy", key)
    if isinstance(deploy.get("labels"), (dict, list)):
        merged = dict(out.task.get("labels") or {})
        merged.update(labels_of(deploy["labels"], rep.at("labels")) or {})
        out.set("labels", merged, "deploy", "labels")


def _deploy_resources(resources: dict[Any, Any], rep: Reporter, out: TaskOut) -> None:
    for key in resources:
        if key not in ("limits", "reservations"):
            rep.at(str(key)).add(f"unknown key {describe(key)} (write limits and reservations)")
    limits = resources.get("limits") or {}
    if isinstance(limits, dict):
        if limits.get("pids") is not None:
            rep.at("limits", "pids").warn("ignored: the cluster sets the pids limit of every container")
        out.set("resources", {k: v for k, v in limits.items() if k != "pids"}, "deploy", "resources", "limits")
    wants = resources.get("reservations") or {}
    if isinstance(wants, dict):
        if wants.get("generic_resources") is not None:
            rep.at("reservations", "generic_resources").add("not supported: request GPUs under devices")
        devices = wants.get("devices")
        if devices is not None:
            out.set("gpus", gpus_of(devices, rep.at("reservations", "devices")),
                    "deploy", "resources", "reservations", "devices")
        out.set("reservations", {k: v for k, v in wants.items() if k in ("cpus", "memory")},
                "deploy", "resources", "reservations")


def _restart_policy(policy: dict[Any, Any], rep: Reporter) -> dict[str, Any]:
    condition = policy.get("condition", "any")
    known = isinstance(condition, str) and condition in RESTART_CONDITIONS
    restart: dict[str, Any] = {"policy": RESTART_CONDITIONS[condition] if known else "always"}
    if not known:
        rep.at("condition").add(f"must be none, on-failure or any, got {describe(condition)}")
    if policy.get("max_attempts") is not None:
        if restart["policy"] == "on-failure":
            restart["max_attempts"] = policy["max_attempts"]
        else:
            rep.at("max_attempts").warn(f"ignored: taskorg counts attempts only for condition on-failure")
    for key in ("delay", "window"):
        if policy.get(key) is not None:
            restart[key] = policy[key]
    for key in policy:
        if key not in ("condition", "max_attempts", "delay", "window"):
            rep.at(str(key)).add(f"unknown key {describe(key)} (known: condition, delay, max_attempts, window)")
    return restart


def _placement(placement: dict[Any, Any], rep: Reporter, out: TaskOut) -> None:
    for key in ("preferences", "max_replicas_per_node"):
        if placement.get(key) is not None:
            rep.at(key).warn("ignored: placement spreads instances over nodes by itself")
    constraints = placement.get("constraints")
    if constraints is None:
        return
    if not isinstance(constraints, list):
        rep.at("constraints").add(f"must be a list like ['node.labels.zone == a'], got {describe(constraints)}")
        return
    labels: dict[str, str] = {}
    rules: list[Any] = []
    for index, rule in enumerate(constraints):
        label = LABEL_RULE.match(rule) if isinstance(rule, str) else None
        if label:
            labels[label.group(1)] = label.group(2)
        elif isinstance(rule, str) and ROLE_RULE.match(rule):
            rep.at("constraints", index).warn("ignored: every taskorg node runs tasks, there are no roles")
        else:
            rules.append(rule)
    out.set("constraints", {"labels": labels, "rules": rules}, "deploy", "placement", "constraints")

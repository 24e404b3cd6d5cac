"""Start orders as both runners read them: checked once, named once."""

from __future__ import annotations

from typing import Any, Mapping


class OrderError(ValueError):
    """A start order is malformed (the master's bug, answered with 400)."""


def check_order(order: Mapping[str, Any]) -> dict[str, Any]:
    """The order with its types checked; OrderError names the bad field."""
    if not isinstance(order, Mapping):
        raise OrderError("a start order is a JSON object")
    for key in ("epoch", "index", "attempt"):
        value = order.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise OrderError(f"order field '{key}': expected a non-negative integer, got {value!r}")
    task_id = order.get("task_id")
    if not isinstance(task_id, str) or not task_id or not all(ch.isalnum() or ch in "-_." for ch in task_id):
        raise OrderError(f"order field 'task_id': expected an id like t-3f9a1c2b, got {task_id!r}")
    spec = order.get("spec")
    if not isinstance(spec, Mapping) or not isinstance(spec.get("image"), str) or not spec["image"]:
        raise OrderError("order field 'spec': expected a task spec with an 'image'")
    if order.get("env") is not None and not isinstance(order["env"], Mapping):
        raise OrderError("order field 'env': expected a mapping")
    return dict(order)


def container_name(cluster: str, node: str, task_id: str, index: int, attempt: int) -> str:
    """One name per attempt: starting the same attempt twice finds the first one."""
    return f"tk-{cluster}-{node}-{task_id}-{index}-a{attempt}"


def order_state(order: Mapping[str, Any], name: str, **fields: Any) -> dict[str, Any]:
    """A container state for an order (docs/api.md), before any container reported on it:
    a failed start, or a stand-in's new instance. `fields` sets the rest."""
    state: dict[str, Any] = {
        "task_id": order["task_id"], "index": order["index"], "attempt": order["attempt"],
        "epoch": order["epoch"], "job": order.get("job"), "container_id": None, "name": name,
        "status": "error", "exit_code": None, "started_at": None, "finished_at": None,
        "image": order["spec"]["image"], "error": None,
    }
    state.update(fields)
    return state

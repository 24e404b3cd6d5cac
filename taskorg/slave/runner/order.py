"""What both runners name the same way: the error of an order they cannot run, a container's
name, and the state of an order before any container reported on it.

The order itself is a `protocol.StartOrder`, checked field by field where it
is decoded (the slave's door); nothing here checks its types again.
"""

from __future__ import annotations

from typing import Any

from taskorg.protocol import StartOrder


class OrderError(ValueError):
    """A start order this node will not run (malformed, or refused by its policy): a 400 naming the field."""


def container_name(cluster: str, node: str, task_id: str, index: int, attempt: int) -> str:
    """One name per attempt: starting the same attempt twice finds the first one."""
    return f"tk-{cluster}-{node}-{task_id}-{index}-a{attempt}"


def order_state(order: StartOrder, name: str, **fields: Any) -> dict[str, Any]:
    """A container state for an order (docs/api.md), before any container reported on it:
    a failed start, or a stand-in's new instance. `fields` sets the rest."""
    state: dict[str, Any] = {
        "task_id": order.task_id, "index": order.index, "attempt": order.attempt,
        "epoch": order.epoch, "job": order.job, "container_id": None, "name": name,
        "status": "error", "exit_code": None, "started_at": None, "finished_at": None,
        "image": order.spec.image, "error": None, "health": None,
    }
    state.update(fields)
    return state

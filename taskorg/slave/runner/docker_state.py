"""Docker's inspect data -> the container state of docs/api.md (pure reading, no call)."""

from __future__ import annotations

from typing import Any

from docker.errors import APIError
from docker.models.containers import Container

from taskorg import labels

# Docker states -> the states of docs/api.md. `paused` still holds the
# instance (it must not be recreated elsewhere); `removing` is on its way out.
STATUS = {"created": "created", "running": "running", "paused": "running", "restarting": "running",
          "removing": "exited", "exited": "exited", "dead": "dead"}
# Docker statuses whose inspect data stays the same until the status changes.
STABLE = frozenset({"running", "exited", "dead"})


def container_state(container: Container) -> dict[str, Any]:
    """The state of one container from its inspect data (result fields not included)."""
    found = container.labels or {}
    docker_state = container.attrs.get("State") or {}
    status = STATUS.get(docker_state.get("Status", ""), "dead")
    finished = status in ("exited", "dead")
    error = docker_state.get("Error") or None
    if docker_state.get("OOMKilled"):
        error = "out of memory (killed by the kernel's OOM killer)"
    task_id, _, index = found.get(labels.INSTANCE, "").partition("/")
    started_at = iso(docker_state.get("StartedAt"))
    finished_at = iso(docker_state.get("FinishedAt")) if finished else None
    if started_at and finished_at and finished_at < started_at:
        # Docker stamps StartedAt after a very short process may already
        # have exited; never report a negative run time.
        finished_at = started_at
    return {
        "task_id": found.get(labels.TASK) or task_id,
        "index": to_int(index),
        "attempt": to_int(found.get(labels.ATTEMPT)),
        "epoch": to_int(found.get(labels.EPOCH)),
        "job": found.get(labels.JOB) or None,
        "container_id": container.id,
        "name": container.name,
        "status": status,
        "exit_code": docker_state.get("ExitCode") if finished else None,
        "started_at": started_at,
        "finished_at": finished_at,
        "image": container.attrs.get("Config", {}).get("Image"),
        "error": error,
    }


def explain(exc: Exception) -> str:
    if isinstance(exc, APIError):
        return str(exc.explanation or exc)
    return str(exc)


def to_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def int_label(container: Container, key: str) -> int:
    return to_int((container.labels or {}).get(key)) or 0


def iso(value: str | None) -> str | None:
    """Docker's nanosecond RFC 3339 time as ISO 8601 with microseconds (parseable by
    datetime.fromisoformat); None for docker's zero time."""
    if not value or value.startswith("0001-01-01"):
        return None
    stamp, dot, rest = value.partition(".")
    if not dot:
        return value
    digits = "".join(ch for ch in rest if ch.isdigit())
    zone = rest[len(digits):] or "Z"
    return f"{stamp}.{digits[:6].ljust(6, '0')}{zone}"

"""Task and instance state rules: restart policies and a task's overall status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from taskorg.spec import TaskSpec

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
MAX_BACKOFF = 10.0


@dataclass(frozen=True)
class RestartDecision:
    restart: bool
    delay: float
    final_status: str
    event: str
    detail: str

    def with_detail(self, detail: str) -> "RestartDecision":
        return RestartDecision(self.restart, self.delay, self.final_status, self.event, detail)


def restart_decision(spec: TaskSpec, exit_code: int | None, error: str | None,
                     restarts: int) -> RestartDecision:
    """What the restart policy says after an instance stopped.

    `max_attempts` counts restarts after the first run (docker's on-failure:N).
    Crash loops back off exponentially, up to ten seconds.
    """
    policy = spec.restart.policy
    succeeded = error is None and exit_code == 0
    how = f"failed to start: {error}" if error else f"exited with code {exit_code}"
    delay = min(MAX_BACKOFF, 0.25 * 2 ** min(restarts, 6)) if restarts else 0.0
    if policy == "always":
        return RestartDecision(True, delay, "", "restarting", f"{how}; restart policy always")
    if policy == "on-failure" and not succeeded:
        limit = spec.restart.max_attempts or 3
        if restarts < limit:
            return RestartDecision(True, delay, "", "restarting",
                                   f"{how}; restart {restarts + 1} of {limit} (on-failure)")
        return RestartDecision(False, 0, "failed", "failed", f"{how}; no restarts left ({limit} used)")
    if succeeded:
        return RestartDecision(False, 0, "succeeded", "succeeded", "exited with code 0")
    return RestartDecision(False, 0, "failed", "failed", f"{how}; restart policy {policy}")


def task_status(instance_statuses: Iterable[str]) -> str:
    """A task's status from its instances' (see docs/api.md)."""
    statuses = list(instance_statuses)
    if not statuses:
        return "pending"
    if all(s == "cancelled" for s in statuses):
        return "cancelled"
    if any(s == "failed" for s in statuses):
        return "failed"
    if all(s == "succeeded" for s in statuses):
        return "succeeded"
    for status in ("running", "starting", "pending", "waiting"):
        if any(s == status for s in statuses):
            return status
    return "cancelled" if any(s == "cancelled" for s in statuses) else "pending"

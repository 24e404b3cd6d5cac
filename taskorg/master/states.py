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


def counted_restarts(spec: TaskSpec, restarts: int, ran: float | None) -> int:
    """The restarts that still count against `max_attempts` and the back-off: none once the instance ran
    for the policy's `window` before it stopped (as Swarm's window: a restart that lasted that long
    succeeded), so a service that fails once a day is not failed for good on the fourth day."""
    window = spec.restart.window
    return 0 if window is not None and ran is not None and ran >= window else restarts


def restart_decision(spec: TaskSpec, exit_code: int | None, error: str | None,
                     restarts: int) -> RestartDecision:
    """What the restart policy says after an instance stopped.

    `max_attempts` counts restarts after the first run (docker's on-failure:N).
    The policy's `delay`, when set, is waited before every restart; without
    one, crash loops back off exponentially, up to ten seconds.
    """
    policy = spec.restart.policy
    succeeded = error is None and exit_code == 0
    how = f"failed to start: {error}" if error else f"exited with code {exit_code}"
    if spec.restart.delay is not None:
        delay = spec.restart.delay
    else:
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


def job_status(counts: dict[str, int]) -> str:
    """One word for a whole job from its tasks' statuses -> count: failed or cancelled when any task is,
    succeeded when all did, running while any runs or starts, else pending (waiting included)."""
    present = {status for status, n in counts.items() if n}
    for word in ("failed", "cancelled"):
        if word in present:
            return word
    if present <= {"succeeded"}:
        return "succeeded"
    return "running" if present & {"running", "starting"} else "pending"

"""When `taskorg submit --wait` is done, and how it ended: pure decisions over task states.

A service task (restart: always) is done once it runs; a batch task once it
has finished. The job has ended well when every task is done, badly as soon
as one failed or was cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

# Exit codes of `submit --wait`, as documented in its help.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_TIMEOUT = 124


@dataclass(frozen=True)
class Outcome:
    done: bool
    exit_code: int
    summary: str


def settle(kinds: Mapping[str, str], statuses: Mapping[str, str]) -> Outcome:
    """`kinds`: task id -> 'service' | 'batch'; `statuses`: task id -> its status now."""
    bad = sorted(tid for tid, status in statuses.items() if status in ("failed", "cancelled"))
    if bad:
        return Outcome(True, EXIT_FAILED, f"{len(bad)} task(s) ended badly: " +
                       ", ".join(f"{tid} {statuses[tid]}" for tid in bad))
    pending = [tid for tid, kind in kinds.items() if not ready(kind, statuses.get(tid))]
    if pending:
        return Outcome(False, EXIT_OK, f"{len(kinds) - len(pending)}/{len(kinds)} tasks ready")
    return Outcome(True, EXIT_OK, f"all {len(kinds)} task(s) " + ("running or done" if "service" in kinds.values()
                                                                  else "done"))


def ready(kind: str, status: str | None) -> bool:
    """A service is ready once it runs (or ran to completion); a batch task once it succeeded."""
    return status == "succeeded" or (kind == "service" and status == "running")


def kind_of(spec: Mapping[str, object]) -> str:
    restart = spec.get("restart")
    policy = restart.get("policy") if isinstance(restart, Mapping) else restart
    return "service" if policy == "always" else "batch"

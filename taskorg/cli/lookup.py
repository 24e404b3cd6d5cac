"""Finding tasks and jobs the way people name them: a full id, an id prefix, or a name.

Pure: it looks through task summaries (as `GET /v1/tasks` gives them) and
answers one id, or raises `LookupProblem` naming what matched, so the user
can say it more precisely. An ambiguous word never picks one at random.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Sequence

from taskorg.master.states import job_status as master_job_status


class LookupProblem(ValueError):
    """The reference matched nothing, or more than one thing."""


def _describe(rows: Iterable[dict[str, Any]], key: str, label: str) -> str:
    return ", ".join(f"{row[key]} ({row[label]})" for row in rows)


def find_task(ref: str, tasks: Sequence[dict[str, Any]]) -> str:
    """The id of the one task `ref` names: its id, an id prefix, `name`, or `job/name`."""
    ref = ref.strip()
    if not ref:
        raise LookupProblem("a task id or name is empty")
    exact = [t for t in tasks if t["id"] == ref]
    if exact:
        return str(exact[0]["id"])
    prefixed = [t for t in tasks if t["id"].startswith(ref) or t["id"].startswith(f"t-{ref}")]
    named = [t for t in tasks if t["name"] == ref or f"{t.get('job_name')}/{t['name']}" == ref]
    found = {t["id"]: t for t in prefixed + named}
    if len(found) == 1:
        return next(iter(found))
    if not found:
        raise LookupProblem(f"no task is called or starts with {ref!r} (`taskorg ps -a` lists them)")
    raise LookupProblem(f"{ref!r} matches {len(found)} tasks: {_describe(found.values(), 'id', 'name')}; "
                        "give more of the id, or job/name")


def jobs_of(tasks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Jobs as people see them, from task summaries: id, name, tasks and a status of the whole."""
    jobs: dict[str, dict[str, Any]] = {}
    for task in tasks:
        job = jobs.setdefault(task["job"], {"id": task["job"], "name": task.get("job_name"), "tasks": [],
                                            "created_at": task.get("created_at")})
        job["tasks"].append({"id": task["id"], "name": task["name"], "status": task["status"]})
        job["created_at"] = min(job["created_at"] or 0, task.get("created_at") or 0) or job["created_at"]
    for job in jobs.values():
        job["status"] = job_status([t["status"] for t in job["tasks"]])
    return sorted(jobs.values(), key=lambda j: j["created_at"] or 0, reverse=True)


def job_status(statuses: Sequence[str]) -> str:
    """One word for a job, by the master's own rule (`taskorg.master.states.job_status`), so the CLI,
    the webview and `GET /v1/jobs` name a job's state alike."""
    return master_job_status(Counter(statuses))


def find_job(ref: str, jobs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The one job `ref` names: its id, an id prefix, or its name (the newest job of that name
    only when it is the only one)."""
    ref = ref.strip()
    exact = [j for j in jobs if j["id"] == ref]
    if exact:
        return exact[0]
    found = {j["id"]: j for j in jobs if j["id"].startswith(ref) or j["id"].startswith(f"j-{ref}")
             or j["name"] == ref}
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        raise LookupProblem(f"no job is called or starts with {ref!r} (`taskorg job ls` lists them)")
    raise LookupProblem(f"{ref!r} matches {len(found)} jobs: {_describe(found.values(), 'id', 'name')}; "
                        "give more of the id")

"""The public entry points: spec text, file or mapping in, JobSpec out.

A file holds one task or a job of several. Everything is checked before
anything is returned: the result is either a complete, valid JobSpec or a
SpecError listing every problem, never something half-parsed.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from typing import Any, Mapping

from .errors import SpecError, SpecProblem, describe
from .checks import check_keys, checked, optional, required
from .compose import ComposeContext, convert, is_compose, reporter_for
from .fields import to_name, to_seed
from .graph import dependency_order, find_cycles
from .model import JobSpec, SpecPolicy, TaskSpec
from .report import Reporter
from .limits import MAX_CANONICAL_BYTES
from .source import check_data, load_text
from .task import NAME_EXAMPLE, TASK_FIELDS, check_task

JOB_FIELDS = ("job", "seed", "tasks")
JOB_HINTS = {name: "task fields go inside a task, in the tasks list" for name in TASK_FIELDS}
JOB_HINTS["name"] = "a job is named with job: NAME"
MAX_LISTED_NAMES = 10


def parse_spec_text(text: str, source: str = "<input>", policy: SpecPolicy | None = None,
                    context: ComposeContext | None = None) -> JobSpec:
    """Validate a spec written in YAML or JSON (taskorg's format or a compose file). Raises SpecError.

    `context` gives a compose file its directory and variables; without one
    (text sent to the master) no file is read and no variable is set.
    """
    loaded = load_text(text, source)
    rep = Reporter(source, loaded.lines, list(loaded.problems))
    return _build_job(loaded.data, rep, policy or SpecPolicy(), context or ComposeContext())


def load_spec_file(path: str | os.PathLike[str], policy: SpecPolicy | None = None,
                   environ: Mapping[str, str] | None = None) -> JobSpec:
    """Read and validate a spec file; problems name the path as given. Raises SpecError.

    A compose file reads its env_file, .env and secret files beside it, with
    variables from `environ` (default: this process's environment).
    """
    source = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as error:
        raise SpecError([SpecProblem(source, "", None,
                                     f"cannot read the spec: {error.strerror or error}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise SpecError([SpecProblem(source, "", None,
                                     f"not UTF-8 text (bad byte at offset {error.start})")]) from None
    return parse_spec_text(text, source, policy, ComposeContext.for_file(path, environ))


def job_from_dict(data: Any, source: str = "<input>", policy: SpecPolicy | None = None) -> JobSpec:
    """Validate an already-parsed spec (JSON, or a canonical `to_dict`). Raises SpecError."""
    check_data(data, source)
    return _build_job(data, Reporter(source), policy or SpecPolicy(), ComposeContext())


def _build_job(data: Any, rep: Reporter, policy: SpecPolicy, context: ComposeContext) -> JobSpec:
    if not isinstance(data, dict):
        hint = " (several tasks go in a job: job: NAME, tasks: [...])" if isinstance(data, list) else ""
        rep.add("the top level must be a mapping: a task (name, image, ...), a job (job, tasks) "
                f"or a compose file (services), got {describe(data)}{hint}")
        rep.raise_if_any()
    if is_compose(data):
        job = _compose_job(data, rep, policy, context)
    elif "job" in data or "tasks" in data:
        job = _job(data, rep, policy)
    else:
        job = _single_task(data, rep, policy)
    rep.raise_if_any()
    _check_canonical_size(job, rep)
    warnings = sorted(rep.warnings, key=lambda w: w.line or 0)
    return replace(job, warnings=tuple(str(warning) for warning in warnings))


def _compose_job(data: dict[Any, Any], rep: Reporter, policy: SpecPolicy, context: ComposeContext) -> JobSpec:
    """A compose file: its services, written as tasks, checked like any job's tasks."""
    name, services = convert(data, rep, context)
    items = [service.task for service in services.values()]
    reps: list[Reporter] = [reporter_for(service, rep, key) for key, service in services.items()]
    tasks = []
    for item, item_rep in zip(items, reps):
        rep.check_time()
        tasks.append(check_task(item, item_rep, policy))
    job_name = checked(to_name, name, rep.at("name"), "")
    return JobSpec(name=job_name, tasks=_link(items, tasks, reps, rep), seed=None)


def _check_canonical_size(job: JobSpec, rep: Reporter) -> None:
    """The stored form is bounded too: it is replicated and sent to slaves with every start."""
    size = len(json.dumps(job.to_dict()))
    if size > MAX_CANONICAL_BYTES:
        rep.add(f"the job's canonical form is {size // 1024} KiB, more than the "
                f"{MAX_CANONICAL_BYTES // 1024} KiB a job may take (split it into several jobs)")
        rep.raise_if_any()


def _single_task(data: dict[Any, Any], rep: Reporter, policy: SpecPolicy) -> JobSpec:
    """A file with one task is a job of that task, named after it."""
    task = check_task(data, rep, policy)
    assert task is not None  # data is a mapping
    return JobSpec(name=task.name, tasks=_link([data], [task], [rep], rep), seed=None)


def _job(data: dict[Any, Any], rep: Reporter, policy: SpecPolicy) -> JobSpec:
    check_keys(data, JOB_FIELDS, rep, JOB_HINTS)
    name = required(data, "job", rep, to_name, "", NAME_EXAMPLE.replace("web", "nightly"))
    seed = optional(data, "seed", rep, to_seed, None)
    items = _task_items(data.get("tasks"), rep.at("tasks"))
    reps = [rep.at("tasks", index) for index in range(len(items))]
    tasks = []
    for item, item_rep in zip(items, reps):
        rep.check_time()
        tasks.append(check_task(item, item_rep, policy))
    return JobSpec(name=name, tasks=_link(items, tasks, reps, rep), seed=seed)


def _task_items(value: Any, rep: Reporter) -> list[Any]:
    if value is None:
        rep.add("is required (a list of tasks)")
    elif not isinstance(value, list):
        rep.add(f"must be a list of tasks, got {describe(value)}")
    elif not value:
        rep.add("must hold at least one task")
    else:
        return value
    return []


def _link(items: list[Any], tasks: list[TaskSpec | None], reps: list[Reporter],
          rep: Reporter) -> tuple[TaskSpec, ...]:
    """Check names and dependencies across the job; return the tasks in start order."""
    names = _unique_names(items, reps)
    _check_dependencies_exist(items, reps, names)
    valid = {name: task for name, index in names.items()
             if (task := tasks[index]) is not None and task.name == name}
    deps = {name: task.waits_for for name, task in valid.items()}
    order = [name for name in names if name in valid]
    for cycle in find_cycles(order, deps):
        first = valid[cycle[0]]
        field = "after" if cycle[1] in first.after else "depends_on"
        reps[names[cycle[0]]].at(field).add(f"dependency cycle: {' -> '.join(cycle)}")
    _check_health_dependencies(valid, reps, names)
    if rep.count:  # the job is refused anyway; an order needs an acyclic graph
        return ()
    return tuple(valid[name] for name in dependency_order(order, deps))


def _unique_names(items: list[Any], reps: list[Reporter]) -> dict[str, int]:
    """Task name -> index of the task that has it, reporting repeated names."""
    names: dict[str, int] = {}
    for index, item in enumerate(items):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            continue
        if name in names:
            reps[index].at("name").add(f"duplicate task name {name!r} (already used by tasks[{names[name]}])")
        else:
            names[name] = index
    return names


def _check_dependencies_exist(items: list[Any], reps: list[Reporter], names: dict[str, int]) -> None:
    known = list(names)
    for item, rep in zip(items, reps):
        if not isinstance(item, dict):
            continue
        for dep_rep, dep in _named(item.get("after"), rep.at("after"), False) + \
                _named(item.get("depends_on"), rep.at("depends_on"), True):
            if dep not in names:
                dep_rep.add(_unknown_task(dep, known, dep_rep))


def _named(value: Any, rep: Reporter, mapping_too: bool) -> list[tuple[Reporter, str]]:
    """The task names in an `after` or `depends_on` value, each with its reporter."""
    if isinstance(value, str):
        return [(rep, value)]
    if isinstance(value, list):
        return [(rep.at(j), dep) for j, dep in enumerate(value) if isinstance(dep, str)]
    if isinstance(value, dict) and mapping_too:
        return [(rep.at(dep), dep) for dep in value if isinstance(dep, str)]
    return []


def _check_health_dependencies(valid: dict[str, TaskSpec], reps: list[Reporter],
                               names: dict[str, int]) -> None:
    """Waiting for `healthy` needs a health check to wait for."""
    for name, task in valid.items():
        for dep, condition in task.depends_on.items():
            target = valid.get(dep)
            if condition == "healthy" and target is not None and (
                    target.healthcheck is None or target.healthcheck.disabled):
                reps[names[name]].at("depends_on", dep).add(
                    f"waits for {dep} to be healthy, but {dep} has no healthcheck")


def _unknown_task(name: str, known: list[str], rep: Reporter) -> str:
    message = f"unknown task {describe(name)}"
    close = rep.budget.closest(name, known)
    if close:
        return f"{message} (did you mean {close!r}?)"
    if not known:
        return message
    listed = ", ".join(known[:MAX_LISTED_NAMES]) + (", ..." if len(known) > MAX_LISTED_NAMES else "")
    return f"{message} (tasks in this job: {listed})"

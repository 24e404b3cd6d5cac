"""Task commands: submit, ps, show, logs, cancel, restart. Tasks are named by id, id prefix or name."""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from taskorg.cli.commands import Group
from taskorg.cli.context import UsageError, make_client
from taskorg.cli.lookup import LookupProblem, find_task
from taskorg.cli.output import ago, emit_json, table
from taskorg.cli.settle import EXIT_TIMEOUT, kind_of, settle
from taskorg.logstream import LogQuery, LogQueryError, parse_since
from taskorg.net.client import ServiceError

FINISHED = ("succeeded", "failed", "cancelled")
FULL_ID = re.compile(r"t-[0-9a-f]{8}")
PS_FIELDS = ("id", "name", "job", "job_name", "status", "nodes", "running", "instances", "reason", "created")


def task_id(client: Any, ref: str) -> str:
    """The id a user's word names (full id, id prefix, name or job/name); a clear error otherwise."""
    if FULL_ID.fullmatch(ref):
        return ref
    try:
        return find_task(ref, client.tasks())
    except LookupProblem as exc:
        raise UsageError(str(exc)) from None


def cmd_submit(args: argparse.Namespace) -> int:
    from taskorg.spec import SpecError, load_spec_file

    # Validate every file locally first: nothing is submitted if any is bad.
    texts = []
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            raise UsageError(f"{name}: no such file")
        try:
            job = load_spec_file(path)
        except SpecError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        for warning in job.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        texts.append((name, path.read_text(), job))
    client = make_client(args)
    results = []
    update = bool(getattr(args, "update_only", False))
    for name, text, job in texts:
        try:
            if is_compose_text(text):
                # Its env_file, .env and secret files were read here, beside it: send what they made.
                results.append(client.submit_job(job.to_dict(), source=name, dry_run=args.dry_run, update=update))
            else:
                results.append(client.submit(text, source=name, dry_run=args.dry_run, update=update))
        except ServiceError as exc:
            if exc.status in (400, 404, 409):  # a bad spec, nothing to update, an update refused
                print(exc.message, file=sys.stderr)
                return 2 if exc.status == 400 else 1
            raise
    code = wait_for_jobs(client, results, args.timeout, quiet=args.json) if args.wait and not args.dry_run else 0
    if args.json:
        emit_json(results)
        return code
    for (name, _, _), result in zip(texts, results):
        if args.dry_run:
            for task, nodes in result["placements"].items():
                print(f"{name}: {task} would run on {', '.join(n or 'nowhere (no node fits)' for n in nodes)}")
            continue
        if "update" in result:
            print_update(name, result)
            continue
        print(f"{name}: job {result['name']} ({result['job']}) accepted")
        for task in result["tasks"]:
            count = f" x{task['instances']}" if task["instances"] > 1 else ""
            print(f"  {task['id']}  {task['name']}{count}" + (f"  {task['status']}" if "status" in task else ""))
    return code


def wait_for_jobs(client: Any, results: list[dict[str, Any]], timeout: float, quiet: bool) -> int:
    """Follow the submitted tasks until services run and batch tasks finish; progress on stderr.
    The tasks in `results` get their last status; the exit code says how it ended."""
    tasks = {t["id"]: t for result in results for t in result["tasks"]}
    kinds = {tid: kind_of(client.task(tid)["spec"]) for tid in tasks}
    deadline = time.monotonic() + timeout
    said: dict[str, str] = {}
    while True:
        statuses = {tid: client.task(tid)["status"] for tid in tasks}
        for tid, status in statuses.items():
            tasks[tid]["status"] = status
            if said.get(tid) != status and not quiet:
                print(f"  {tid}  {tasks[tid]['name']}: {status}", file=sys.stderr)
            said[tid] = status
        outcome = settle(kinds, statuses)
        if outcome.done:
            if not quiet:
                print(outcome.summary, file=sys.stderr)
            return outcome.exit_code
        if time.monotonic() >= deadline:
            if not quiet:
                print(f"gave up waiting after {timeout:g} s: {outcome.summary}", file=sys.stderr)
            return EXIT_TIMEOUT
        time.sleep(0.5)


def is_compose_text(text: str) -> bool:
    """A compose file (a `services:` map), already checked safe to load by the local validation."""
    from taskorg.spec.compose import is_compose

    return bool(is_compose(yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))))


def ps_rows(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": t["id"], "name": t["name"], "job": t["job"], "job_name": t["job_name"], "status": t["status"],
             "nodes": ",".join(t["nodes"]) or "-",
             "running": sum(1 for i in t["instances"] if i["status"] == "running"),
             "instances": len(t["instances"]), "reason": t["reason"] or "", "created": ago(t["created_at"])}
            for t in tasks]


def cmd_ps(args: argparse.Namespace) -> int:
    if args.format:
        unknown = sorted(set(re.findall(r"{(\w*)", args.format)) - set(PS_FIELDS))
        if unknown:
            raise UsageError(f"--format: unknown field {{{unknown[0]}}}; fields: "
                             + " ".join(f"{{{f}}}" for f in PS_FIELDS))
    tasks = make_client(args).tasks(state=args.state, node=args.node, name=args.name, job=args.job)
    if not args.all and not args.state:
        tasks = [t for t in tasks if t["status"] not in FINISHED]
    if args.quiet:
        print("\n".join(t["id"] for t in tasks))
    elif args.json:
        emit_json(tasks)
    elif args.format:
        template = args.format.encode().decode("unicode_escape")  # so '\t' in a shell argument is a tab
        for row in ps_rows(tasks):
            print(template.format(**row))
    else:
        print(table(["ID", "NAME", "JOB", "STATUS", "NODES", "RUNNING", "CREATED", "NOTE"],
                    [[r["id"], r["name"], r["job_name"], r["status"], r["nodes"], f"{r['running']}/{r['instances']}",
                      r["created"], r["reason"]] for r in ps_rows(tasks)]))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    client = make_client(args)
    task = client.task(task_id(client, args.task))
    if args.json:
        emit_json(task)
        return 0
    spec = task["spec"]
    print(f"task     {task['id']}  {task['name']}  (job {task['job_name']}, {task['job']})")
    print(f"status   {task['status']}" + (f"  ({task['reason']})" if task.get("reason") else ""))
    print(f"image    {spec['image']}   restart {spec['restart']['policy']}"
          + (f":{spec['restart']['max_attempts']}" if spec['restart'].get('max_attempts') else ""))
    if task.get("result") is not None:
        print(f"result   {task['result']}")
    print("\ninstances:")
    print(table(["INDEX", "NODE", "STATUS", "HEALTH", "ATTEMPT", "RESTARTS", "EXIT", "CONTAINER", "ERROR"],
                [[i["index"], i["node"], i["status"], i.get("health"), i["attempt"], i["restarts"],
                  i["exit_code"], (i["container_id"] or "")[:12], i["error"] or ""] for i in task["instances"]]))
    print("\nhistory:")
    print(table(["WHEN", "INDEX", "EVENT", "NODE", "DETAIL"],
                [[ago(h["time"]), h["index"], h["event"], h["node"], h["detail"]] for h in task["history"]]))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    tail = parse_tail(args.tail)
    try:
        since = parse_since(args.since) if args.since else None
    except LogQueryError as exc:
        raise UsageError(str(exc)) from None
    client = make_client(args)
    tid = task_id(client, args.task)
    if args.follow:
        from taskorg.cli.log_follow import FollowOptions, follow_logs

        try:
            return follow_logs(client, tid, args.index, FollowOptions(tail, since, args.timestamps, args.json))
        except KeyboardInterrupt:
            return 130
    answer = client.logs(tid, index=args.index, query=LogQuery(tail=tail, since=since, timestamps=args.timestamps))
    if args.json:
        emit_json(answer)
    else:
        sys.stdout.write(answer["logs"])
    return 0


def parse_tail(text: str) -> int | None:
    """`--tail`: a number of lines (0: none of the old output) or `all` (None)."""
    if text == "all":
        return None
    if not text.isdigit():
        raise UsageError(f"--tail: expected a number of lines or 'all', got {text!r}")
    return int(text)


def cmd_cancel(args: argparse.Namespace) -> int:
    client = make_client(args)
    ids = [task_id(client, ref) for ref in args.tasks]  # every name resolved before anything is cancelled
    answers = [client.cancel(tid) for tid in ids]
    if args.json:
        emit_json(answers)
    else:
        for answer in answers:
            print(f"{answer['id']}: {answer['status']}")
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    client = make_client(args)
    answer = client.restart(task_id(client, args.task))
    emit_json(answer) if args.json else print(f"{answer['id']}: {answer['status']}")
    return 0


def print_update(name: str, result: dict[str, Any]) -> None:
    """A submission that updated a running job: each task's revisions, or that it is unchanged."""
    how = "updated in place" if result["update"] == "rolling" else "unchanged (the same spec runs)"
    print(f"{name}: job {result['name']} ({result['job']}) {how}")
    for task in result["tasks"]:
        change = (f"revision {task['previous']} -> {task['revision']}, rolling" if task["update"] == "rolling"
                  else f"revision {task['revision']}, unchanged")
        print(f"  {task['id']}  {task['name']}  {change}")


def register(top: Group) -> None:
    p = top.add("submit", "submit task spec files (YAML); each file is checked before any is sent",
                ["taskorg submit examples/hello.yaml", "taskorg submit --wait --timeout 60 job.yaml",
                 "taskorg submit --dry-run web.yaml   # where it would run; nothing stored"], cmd_submit)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--dry-run", action="store_true", help="validate and show where it would run; store nothing")
    p.add_argument("--wait", action="store_true",
                   help="follow until services run and batch tasks finish; exit 0 when all did, 1 when one "
                        f"failed or was cancelled, {EXIT_TIMEOUT} on --timeout")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds --wait waits at most (default 300)")

    p = top.add("ps", "list tasks (finished ones only with -a)",
                ["taskorg ps", "taskorg ps -a --job pipeline", "taskorg ps -q | xargs taskorg cancel",
                 "taskorg ps --format '{id}\\t{status}\\t{nodes}'"], cmd_ps)
    p.add_argument("-a", "--all", action="store_true", help="also tasks that finished (succeeded, failed, cancelled)")
    p.add_argument("-q", "--quiet", action="store_true", help="only task ids, one a line")
    p.add_argument("--format", metavar="TEMPLATE", help="a line per task; fields: "
                                                        + " ".join(f"{{{f}}}" for f in PS_FIELDS))
    p.add_argument("--state", choices=["waiting", "pending", "starting", "running", "succeeded", "failed",
                                       "cancelled"])
    p.add_argument("--node", help="tasks with an instance on this node")
    p.add_argument("--name", help="tasks or jobs whose name contains this")
    p.add_argument("--job", help="tasks of this job id")

    p = top.add("show", "show one task: instances, placements, history",
                ["taskorg show t-1234abcd", "taskorg show web   # by name, or an id prefix: taskorg show 12"], cmd_show)
    p.add_argument("task", metavar="TASK", help="task id, id prefix, name or job/name")

    p = top.add("logs", "a task instance's output, once or followed (-f) as it is written",
                ["taskorg logs web", "taskorg logs web --index 1 --tail 50",
                 "taskorg logs -f --tail 0 web   # only what comes from now on",
                 "taskorg logs --since 10m --timestamps web"], cmd_logs)
    p.add_argument("task", metavar="TASK", help="task id, id prefix, name or job/name")
    p.add_argument("--index", type=int, default=0, help="which instance (default 0)")
    p.add_argument("--tail", default="200", metavar="N|all",
                   help="lines from the end: a number (0: none of the old output) or 'all' (default 200)")
    p.add_argument("-f", "--follow", action="store_true",
                   help="go on printing as the task writes, across a master failover and the task's restarts, "
                        "until the task has finished (Ctrl-C stops earlier); --json: one JSON object a line")
    p.add_argument("--since", metavar="WHEN",
                   help="only output from then on: a duration back (10m, 1h30m), a Unix time or an RFC 3339 time")
    p.add_argument("-t", "--timestamps", action="store_true", help="each line with the time Docker received it")

    p = top.add("cancel", "cancel tasks (their containers are removed)",
                ["taskorg cancel web", "taskorg cancel t-1234abcd t-5678ef01"], cmd_cancel)
    p.add_argument("tasks", nargs="+", metavar="TASK", help="task ids, id prefixes, names or job/names")

    p = top.add("restart", "restart a task (new containers, the same spec)", ["taskorg restart web"], cmd_restart)
    p.add_argument("task", metavar="TASK", help="task id, id prefix, name or job/name")

"""Client commands: submit, ps, show, logs, cancel, restart, members, handover."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from taskorg.cli.context import UsageError, make_client
from taskorg.cli.output import ago, emit_json, size, table
from taskorg.net.client import ServiceError


def cmd_submit(args: argparse.Namespace) -> int:
    from taskorg.spec import SpecError, load_spec_file

    # Validate every file locally first: nothing is submitted if any is bad.
    texts = []
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            raise UsageError(f"{name}: no such file")
        try:
            load_spec_file(path)
        except SpecError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        texts.append((name, path.read_text()))
    client = make_client(args)
    results = []
    for name, text in texts:
        try:
            results.append(client.submit(text, source=name, dry_run=args.dry_run))
        except ServiceError as exc:
            if exc.status == 400:
                print(exc.message, file=sys.stderr)
                return 2
            raise
    if args.json:
        emit_json(results if len(results) > 1 else results[0])
        return 0
    for (name, _), result in zip(texts, results):
        if args.dry_run:
            for task, nodes in result["placements"].items():
                print(f"{name}: {task} would run on {', '.join(n or 'nowhere (no node fits)' for n in nodes)}")
            continue
        print(f"{name}: job {result['name']} ({result['job']}) accepted")
        for task in result["tasks"]:
            count = f" x{task['instances']}" if task["instances"] > 1 else ""
            print(f"  {task['id']}  {task['name']}{count}")
    return 0


def cmd_ps(args: argparse.Namespace) -> int:
    tasks = make_client(args).tasks(state=args.state, node=args.node, name=args.name, job=args.job)
    if args.json:
        emit_json(tasks)
        return 0
    rows = [[t["id"], t["name"], t["job_name"], t["status"], ",".join(t["nodes"]) or "-",
             f"{sum(1 for i in t['instances'] if i['status'] == 'running')}/{len(t['instances'])}",
             ago(t["created_at"]), t["reason"] or ""] for t in tasks]
    print(table(["ID", "NAME", "JOB", "STATUS", "NODES", "RUNNING", "CREATED", "NOTE"], rows))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    task = make_client(args).task(args.id)
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
    print(table(["INDEX", "NODE", "STATUS", "ATTEMPT", "RESTARTS", "EXIT", "CONTAINER", "ERROR"],
                [[i["index"], i["node"], i["status"], i["attempt"], i["restarts"], i["exit_code"],
                  (i["container_id"] or "")[:12], i["error"] or ""] for i in task["instances"]]))
    print("\nhistory:")
    print(table(["WHEN", "INDEX", "EVENT", "NODE", "DETAIL"],
                [[ago(h["time"]), h["index"], h["event"], h["node"], h["detail"]] for h in task["history"]]))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    answer = make_client(args).logs(args.id, index=args.index, tail=args.tail)
    if args.json:
        emit_json(answer)
    else:
        sys.stdout.write(answer["logs"])
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    client = make_client(args)
    answers = [client.cancel(task_id) for task_id in args.ids]
    if args.json:
        emit_json(answers if len(answers) > 1 else answers[0])
    else:
        for answer in answers:
            print(f"{answer['id']}: {answer['status']}")
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    answer = make_client(args).restart(args.id)
    emit_json(answer) if args.json else print(f"{answer['id']}: {answer['status']}")
    return 0


def cmd_members(args: argparse.Namespace) -> int:
    client = make_client(args)
    try:
        view = client.members()
    except Exception:
        view = client.dns_members()  # no master right now: the DNS service still knows
    if args.json:
        emit_json(view)
        return 0
    rows = []
    for m in view["members"]:
        tele: dict[str, Any] = m.get("telemetry") or {}
        rows.append([m["node"], m["address"], m["role"], m["state"], "yes" if m["alive"] else "NO",
                     f"{m['last_seen_ago']:.1f}s" if m.get("last_seen_ago") is not None else "-",
                     m.get("running", "-"), f"{tele['cpu_percent']:.0f}%" if tele.get("cpu_percent") is not None else "-",
                     size(tele.get("memory_available")), ",".join(f"{k}={v}" for k, v in m["labels"].items())])
    print(f"master: {view['master'] or 'none'}   epoch: {view['epoch']}")
    print(table(["NODE", "ADDRESS", "ROLE", "STATE", "ALIVE", "SEEN", "TASKS", "CPU", "MEM FREE", "LABELS"], rows))
    return 0


def cmd_handover(args: argparse.Namespace) -> int:
    answer = make_client(args).handover(args.node)
    emit_json(answer) if args.json else print(f"master role moving from {answer['master']} to {answer['handover_to']}")
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("submit", help="submit task spec files (YAML)", parents=[common])
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--dry-run", action="store_true", help="validate and show where it would run; store nothing")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("ps", help="list tasks", parents=[common])
    p.add_argument("--state", choices=["waiting", "pending", "starting", "running", "succeeded", "failed",
                                       "cancelled"])
    p.add_argument("--node")
    p.add_argument("--name")
    p.add_argument("--job")
    p.set_defaults(func=cmd_ps)

    p = sub.add_parser("show", help="show one task", parents=[common])
    p.add_argument("id")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("logs", help="a task instance's logs", parents=[common])
    p.add_argument("id")
    p.add_argument("--index", type=int, default=0, help="which instance (default 0)")
    p.add_argument("--tail", type=int, default=200, help="lines from the end (default 200)")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("cancel", help="cancel tasks (their containers are removed)", parents=[common])
    p.add_argument("ids", nargs="+", metavar="ID")
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("restart", help="restart a task", parents=[common])
    p.add_argument("id")
    p.set_defaults(func=cmd_restart)

    p = sub.add_parser("members", help="list cluster members and roles", parents=[common])
    p.set_defaults(func=cmd_members)

    p = sub.add_parser("handover", help="hand the master role to a node (planned)", parents=[common])
    p.add_argument("node")
    p.set_defaults(func=cmd_handover)

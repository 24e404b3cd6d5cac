"""`taskorg update FILE` and `taskorg rollback JOB`: rolling updates of a running job, and going back."""

from __future__ import annotations

import argparse

from taskorg.cli.commands import Group
from taskorg.cli.context import UsageError, make_client
from taskorg.cli.job_commands import find_job_of
from taskorg.cli.output import emit_json
from taskorg.cli.task_commands import cmd_submit
from taskorg.net.client import ServiceError


def cmd_update(args: argparse.Namespace) -> int:
    """As `submit`, but only ever an update: refused when no job of the name runs."""
    args.update_only, args.dry_run, args.wait, args.timeout = True, False, False, 0.0
    return cmd_submit(args)


def cmd_rollback(args: argparse.Namespace) -> int:
    client = make_client(args)
    job = find_job_of(client, args.job)
    try:
        answer = client.rollback(job["id"])
    except ServiceError as exc:
        if exc.status == 409:
            raise UsageError(exc.message) from None
        raise
    if args.json:
        emit_json(answer)
        return 0
    print(f"job {job['name']} ({job['id']}) rolling back")
    for task in answer["tasks"]:
        print(f"  {task['id']}  {task['name']}  revision {task['from']} -> {task['to']}")
    return 0


def register(top: Group) -> None:
    p = top.add("update", "update running jobs in place from spec files (a rolling update, as update_config says)",
                ["taskorg update web.yaml", "taskorg job show web   # its progress"], cmd_update)
    p.add_argument("files", nargs="+", metavar="FILE")
    p = top.add("rollback", "take a job's updated tasks back to their previous spec",
                ["taskorg rollback web"], cmd_rollback)
    p.add_argument("job", metavar="JOB", help="job id, id prefix or name")

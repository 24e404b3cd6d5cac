"""`taskorg job ls|show|cancel`: whole jobs, named by id, id prefix or name."""

from __future__ import annotations

import argparse
from typing import Any

from taskorg.cli.commands import Group
from taskorg.cli.context import UsageError, make_client
from taskorg.cli.lookup import LookupProblem, find_job, jobs_of
from taskorg.cli.output import ago, emit_json, table


def _job(client: Any, ref: str) -> dict[str, Any]:
    try:
        return find_job(ref, jobs_of(client.tasks()))
    except LookupProblem as exc:
        raise UsageError(str(exc)) from None


def cmd_job_ls(args: argparse.Namespace) -> int:
    jobs = jobs_of(make_client(args).tasks())
    if not args.all:
        jobs = [j for j in jobs if j["status"] not in ("succeeded", "failed", "cancelled")]
    if args.json:
        emit_json(jobs)
        return 0
    print(table(["ID", "NAME", "STATUS", "TASKS", "CREATED"],
                [[j["id"], j["name"], j["status"], len(j["tasks"]), ago(j["created_at"])] for j in jobs]))
    return 0


def find_job_of(client: Any, ref: str) -> dict[str, Any]:
    """The job a user names (id, id prefix or name), as `job ls` lists it; UsageError if none or several."""
    return _job(client, ref)


def cmd_job_show(args: argparse.Namespace) -> int:
    client = make_client(args)
    job = _job(client, args.job)
    job["update"] = client.job(job["id"]).get("update")
    if args.json:
        emit_json(job)
        return 0
    print(f"job      {job['id']}  {job['name']}\nstatus   {job['status']}")
    if job["update"]:
        print(f"update   {job['update']['state']}")
    print()
    print(table(["TASK", "NAME", "STATUS"], [[t["id"], t["name"], t["status"]] for t in job["tasks"]]))
    if job["update"]:
        print()
        print(table(["TASK", "UPDATE", "BATCH", "REVISION", "ON IT", "DETAIL"],
                    [[u["task_id"], u["state"], f"{u['batch']}/{u['batches']}", f"{u['previous']} -> {u['revision']}",
                      f"{u['updated']}/{u['instances']}", u["detail"] or ""] for u in job["update"]["tasks"]]))
    return 0


def cmd_job_cancel(args: argparse.Namespace) -> int:
    client = make_client(args)
    jobs = [_job(client, ref) for ref in args.jobs]  # every name resolved before anything is cancelled
    answers = [{"job": job["id"], "name": job["name"],
                "tasks": [client.cancel(t["id"]) for t in job["tasks"]
                          if t["status"] not in ("succeeded", "failed", "cancelled")]} for job in jobs]
    if args.json:
        emit_json(answers)
    else:
        for answer in answers:
            print(f"{answer['job']} ({answer['name']}): {len(answer['tasks'])} task(s) cancelled")
    return 0


def register(top: Group) -> None:
    job = top.group("job", "whole jobs: list, show, cancel", ["taskorg job ls", "taskorg job cancel pipeline"])
    p = job.add("ls", "list jobs (finished ones only with -a)", ["taskorg job ls", "taskorg job ls -a --json"],
                cmd_job_ls)
    p.add_argument("-a", "--all", action="store_true", help="also jobs whose tasks all finished")
    p = job.add("show", "one job and its tasks", ["taskorg job show pipeline", "taskorg job show j-12"], cmd_job_show)
    p.add_argument("job", metavar="JOB", help="job id, id prefix or name")
    p = job.add("cancel", "cancel every unfinished task of jobs", ["taskorg job cancel pipeline"], cmd_job_cancel)
    p.add_argument("jobs", nargs="+", metavar="JOB", help="job ids, id prefixes or names")

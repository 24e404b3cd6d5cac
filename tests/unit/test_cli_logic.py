"""The CLI's pure decisions: which task or job a word names, and when `submit --wait` is done."""

from __future__ import annotations

import pytest

from taskorg.cli.lookup import LookupProblem, find_job, find_task, job_status, jobs_of
from taskorg.cli.settle import EXIT_FAILED, EXIT_OK, kind_of, settle

TASKS = [
    {"id": "t-12ab0000", "name": "web", "job": "j-aa000001", "job_name": "site", "status": "running", "created_at": 2},
    {"id": "t-12cd0000", "name": "db", "job": "j-aa000001", "job_name": "site", "status": "running", "created_at": 2},
    {"id": "t-99ef0000", "name": "web", "job": "j-bb000002", "job_name": "blog", "status": "pending", "created_at": 3},
    {"id": "t-77770000", "name": "merge", "job": "j-cc000003", "job_name": "pi", "status": "succeeded",
     "created_at": 1},
]


def test_a_task_by_full_id_prefix_name_or_job_and_name() -> None:
    assert find_task("t-12cd0000", TASKS) == "t-12cd0000"
    assert find_task("t-99", TASKS) == "t-99ef0000"
    assert find_task("777", TASKS) == "t-77770000"  # a prefix without the t-
    assert find_task("db", TASKS) == "t-12cd0000"
    assert find_task("blog/web", TASKS) == "t-99ef0000"


def test_an_ambiguous_word_lists_every_match() -> None:
    with pytest.raises(LookupProblem) as caught:
        find_task("t-12", TASKS)
    assert "matches 2 tasks" in str(caught.value)
    assert "t-12ab0000 (web)" in str(caught.value) and "t-12cd0000 (db)" in str(caught.value)
    with pytest.raises(LookupProblem, match="matches 2 tasks"):
        find_task("web", TASKS)


def test_no_match_says_where_to_look() -> None:
    with pytest.raises(LookupProblem, match="no task is called or starts with 'nope'.*ps -a"):
        find_task("nope", TASKS)
    with pytest.raises(LookupProblem, match="empty"):
        find_task(" ", TASKS)


def test_jobs_from_tasks_and_their_one_word_status() -> None:
    jobs = {j["name"]: j for j in jobs_of(TASKS)}
    assert [t["name"] for t in jobs["site"]["tasks"]] == ["web", "db"]
    assert jobs["site"]["status"] == "running" and jobs["pi"]["status"] == "succeeded"
    assert job_status(["succeeded", "failed"]) == "failed"
    assert job_status(["waiting", "pending"]) == "pending"
    assert find_job("site", jobs_of(TASKS))["id"] == "j-aa000001"
    assert find_job("bb", jobs_of(TASKS))["name"] == "blog"
    with pytest.raises(LookupProblem, match="no job"):
        find_job("zzz", jobs_of(TASKS))


def test_wait_is_done_when_services_run_and_batch_tasks_succeed() -> None:
    kinds = {"a": "service", "b": "batch"}
    assert not settle(kinds, {"a": "running", "b": "running"}).done
    done = settle(kinds, {"a": "running", "b": "succeeded"})
    assert done.done and done.exit_code == EXIT_OK
    failed = settle(kinds, {"a": "pending", "b": "failed"})
    assert failed.done and failed.exit_code == EXIT_FAILED and "b failed" in failed.summary
    assert kind_of({"restart": {"policy": "always"}}) == "service"
    assert kind_of({"restart": {"policy": "on-failure", "max_attempts": 3}}) == "batch"


def test_an_update_answer_prints_each_tasks_revisions(capsys: pytest.CaptureFixture[str]) -> None:
    from taskorg.cli.task_commands import print_update
    print_update("web.yaml", {"job": "j-aa000001", "name": "site", "update": "rolling", "tasks": [
        {"id": "t-12ab0000", "name": "web", "revision": 3, "previous": 2, "update": "rolling"},
        {"id": "t-12cd0000", "name": "db", "revision": 1, "update": "unchanged"}]})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "web.yaml: job site (j-aa000001) updated in place"
    assert out[1].endswith("web  revision 2 -> 3, rolling") and out[2].endswith("db  revision 1, unchanged")



def test_node_ls_shows_the_state_disk_and_a_separate_docker_disk() -> None:
    from taskorg.cli.node_commands import disk_cell

    state = {"mount": "/", "total": 32 * 1024 ** 3, "used": 24 * 1024 ** 3, "percent": 75.0}
    docker = {"mount": "/srv", "total": 100, "used": 91, "percent": 91.2}
    assert disk_cell({"disk": state}) == "75% 24.0 GiB"
    assert disk_cell({"disk": state, "docker_disk": docker}) == "75% 24.0 GiB +docker 91%"
    assert disk_cell({"disk": None}) == "-" and disk_cell({}) == "-"


def test_task_show_prints_each_instances_health(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from taskorg.cli import task_commands
    instance = {"node": "node1", "attempt": 1, "restarts": 0, "exit_code": None, "container_id": "c0ffee",
                "error": None}
    task = {"id": "t-12ab0000", "name": "web", "job": "j-aa000001", "job_name": "site", "status": "running",
            "spec": {"image": "img", "restart": {"policy": "always"}}, "history": [],
            "instances": [{**instance, "index": 0, "status": "running", "health": "unhealthy"},
                          {**instance, "index": 1, "status": "running", "health": "healthy"},
                          {**instance, "index": 2, "status": "pending", "health": None}]}

    class Client:
        def task(self, task_id: str) -> dict[str, object]:
            return task
    monkeypatch.setattr(task_commands, "make_client", lambda args: Client())
    assert task_commands.cmd_show(argparse.Namespace(task="t-12ab0000", json=False)) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("INDEX"))
    rows = lines[lines.index(header) + 1:lines.index(header) + 4]
    assert header.split()[:4] == ["INDEX", "NODE", "STATUS", "HEALTH"]
    assert [row.split()[3] for row in rows] == ["unhealthy", "healthy", "-"]

"""The CLI against a real local cluster: JSON shapes, exit codes, names and prefixes, --wait."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from taskorg.cli.main import main
from taskorg.devtools.localcluster import LocalCluster
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster


def run(cluster: LocalCluster, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """(exit code, parsed JSON of stdout or its text, stderr) of one CLI command."""
    capsys.readouterr()
    code = main(["--config", str(cluster.client_config_path), *argv])
    out = capsys.readouterr()
    try:
        return code, json.loads(out.out), out.err
    except ValueError:
        return code, out.out, out.err


def spec(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nimage: taskorg/busybox:latest\n{body}")
    return str(path)


def test_submit_wait_follows_a_batch_job_to_its_end(cluster: LocalCluster, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, answers, _ = run(cluster, capsys, "submit", "--wait", "--timeout", "60", "--json",
                           spec(tmp_path, "cli-once", "command: 'true'\nrestart: never\n"))
    assert code == 0
    assert isinstance(answers, list) and answers[0]["tasks"][0]["status"] == "succeeded"
    code, _, err = run(cluster, capsys, "submit", "--wait", "--timeout", "60",
                       spec(tmp_path, "cli-fails", "command: ['sh', '-c', 'exit 3']\nrestart: never\n"))
    assert code == 1 and "failed" in err


def test_tasks_by_name_and_prefix_and_ambiguity(cluster: LocalCluster, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, answers, _ = run(cluster, capsys, "submit", "--json",
                           spec(tmp_path, "cli-named", "command: sleep 600\nrestart: always\n"))
    task_id = answers[0]["tasks"][0]["id"]
    code, shown, _ = run(cluster, capsys, "show", "--json", "cli-named")
    assert code == 0 and shown["id"] == task_id
    code, shown, _ = run(cluster, capsys, "show", "--json", task_id[:6])
    assert code == 0 and shown["id"] == task_id
    code, _, err = run(cluster, capsys, "show", "t-")  # every task's id starts so
    assert code == 2 and "matches" in err and task_id in err
    code, _, err = run(cluster, capsys, "show", "no-such-task")
    assert code == 2 and "no task is called" in err
    code, ids, _ = run(cluster, capsys, "ps", "-q")
    assert task_id in str(ids).split()
    code, cancelled, _ = run(cluster, capsys, "cancel", "--json", "cli-named")
    assert code == 0 and isinstance(cancelled, list) and cancelled[0]["id"] == task_id
    code, listed, _ = run(cluster, capsys, "ps", "--json")
    assert task_id not in {t["id"] for t in listed}  # finished: hidden without -a
    code, listed, _ = run(cluster, capsys, "ps", "-a", "--json")
    assert task_id in {t["id"] for t in listed}


def test_jobs_and_nodes_have_one_shape(cluster: LocalCluster, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    run(cluster, capsys, "submit", spec(tmp_path, "cli-job", "command: sleep 600\nrestart: always\n"))
    code, jobs, _ = run(cluster, capsys, "job", "ls", "--json")
    assert code == 0 and isinstance(jobs, list) and "cli-job" in {j["name"] for j in jobs}
    code, job, _ = run(cluster, capsys, "job", "show", "--json", "cli-job")
    assert code == 0 and job["tasks"][0]["name"] == "cli-job"
    code, cancelled, _ = run(cluster, capsys, "job", "cancel", "--json", "cli-job")
    assert code == 0 and cancelled[0]["name"] == "cli-job" and len(cancelled[0]["tasks"]) == 1
    code, nodes, _ = run(cluster, capsys, "node", "ls", "--json")
    assert code == 0 and sorted(n["node"] for n in nodes) == ["node1", "node2", "node3"]
    code, nodes, _ = run(cluster, capsys, "node", "--json")
    assert code == 0 and len(nodes) == 3


def test_an_unreachable_cluster_is_exit_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "nowhere.yaml"
    secret = tmp_path / "secret"
    secret.write_text("s" * 32)
    secret.chmod(0o600)
    config.write_text(f"dns_address: 127.0.254.1\nsecret_file: {secret}\ntls: false\n")
    assert main(["--config", str(config), "node", "drain", "node9"]) == 1
    assert "127.0.254.1" in capsys.readouterr().err  # names the DNS server that did not answer


def test_a_compose_file_goes_in_as_it_is_with_its_env_file(cluster: LocalCluster, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "web.env").write_text("GREETING=hello\n")
    compose = tmp_path / "docker-compose.yml"
    compose.write_text("name: cli-compose\nservices:\n  web:\n    image: taskorg/busybox:latest\n"
                       "    command: sleep 600\n    env_file: web.env\n    container_name: web1\n"
                       "    deploy:\n      replicas: 2\n")
    code, answers, err = run(cluster, capsys, "submit", "--json", "--wait", "--timeout", "60", str(compose))
    assert code == 0 and "container_name" in err  # a key that means nothing here is named, not fatal
    task = answers[0]["tasks"][0]
    assert answers[0]["name"] == "cli-compose" and task["instances"] == 2 and task["status"] == "running"
    code, shown, _ = run(cluster, capsys, "show", "--json", "cli-compose/web")
    assert shown["spec"]["env"]["GREETING"] == "hello"
    run(cluster, capsys, "job", "cancel", "cli-compose")


def rolling_compose(version: str) -> str:
    return ("name: cli-roll\nservices:\n  web:\n    image: taskorg/busybox:latest\n    command: sleep 600\n"
            f"    environment: {{VERSION: '{version}'}}\n    stop_grace_period: 1s\n"
            "    deploy:\n      replicas: 2\n      update_config: {parallelism: 1, delay: 0s, monitor: 0s}\n")


def test_update_and_rollback_from_the_cli(cluster: LocalCluster, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """`taskorg update FILE` rolls a running compose job to the new spec, `taskorg rollback JOB` takes it back."""
    compose = tmp_path / "compose.yaml"
    compose.write_text(rolling_compose("1"))
    code, _, err = run(cluster, capsys, "submit", "--wait", "--timeout", "60", str(compose))
    assert code == 0, err

    def settled(state: str, revision: int, version: str) -> bool:
        _, job, _ = run(cluster, capsys, "job", "show", "--json", "cli-roll")
        _, task, _ = run(cluster, capsys, "show", "--json", "cli-roll/web")
        live = [i for i in task["instances"] if i["status"] != "cancelled"]
        return ((job.get("update") or {}).get("state") == state and task["spec"]["env"] == {"VERSION": version}
                and len(live) == 2 and all(i["status"] == "running" and i["revision"] == revision for i in live))
    try:
        compose.write_text(rolling_compose("2"))
        code, answers, err = run(cluster, capsys, "update", "--json", str(compose))
        assert code == 0 and answers[0]["update"] == "rolling", (answers, err)
        wait_until(lambda: settled("completed", 2, "2"), 90, "the update to complete", interval=0.5)
        code, answer, err = run(cluster, capsys, "rollback", "--json", "cli-roll")
        assert code == 0 and [(t["from"], t["to"]) for t in answer["tasks"]] == [(2, 1)], (answer, err)
        wait_until(lambda: settled("rolled_back", 1, "1"), 90, "the rollback to complete", interval=0.5)
    finally:
        run(cluster, capsys, "job", "cancel", "cli-roll")

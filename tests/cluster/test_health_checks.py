"""Health checks on a real local cluster (issue 16), as Docker's own events show them.

- A health check that starts failing makes the instance `unhealthy`: its
  container is stopped, the instance restarted under its restart policy and an
  `unhealthy` history event recorded; `taskorg show` prints the health of each
  instance.
- A compose file's `depends_on: {condition: service_healthy}`: the dependant
  has no container until Docker reports its dependency healthy.

Times come from Docker's events (`health_status: ...`, `create`, `start`) and
the master's history (wall clock), so the figures printed are the cluster's
reaction times, not the polling's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import docker
import pytest

from taskorg import labels
from taskorg.cli.main import main
from taskorg.devtools.localcluster import LocalCluster
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster


def flaky_spec(image: str) -> str:
    """Healthy for about 4 s, then its check fails for good; one restart allowed, so the second
    unhealthy container fails the task and its health stays visible."""
    return (f"job: flaky\ntasks:\n  - name: flaky\n    image: {image}\n"
            "    restart: {policy: on-failure, max_attempts: 1}\n"
            "    command: [sh, -c, 'touch /tmp/ok; sleep 4; rm /tmp/ok; exec sleep 600']\n"
            "    stop_grace_period: 1s\n"
            "    healthcheck: {test: [CMD, test, -f, /tmp/ok], interval: 0.5s, timeout: 1s, retries: 2}\n")


def docker_events(client: docker.DockerClient, cluster: LocalCluster, task_id: str,
                  since: float) -> list[dict[str, Any]]:
    """Docker's container events for one task's containers from `since` until now: (time, action, id)."""
    found = client.events(since=int(since) - 1, until=int(time.time()) + 1, decode=True,
                          filters={"type": "container", "label": [f"{labels.CLUSTER}={cluster.name}",
                                                                  f"{labels.TASK}={task_id}"]})
    return [{"time": e["timeNano"] / 1e9, "action": e.get("Action") or e.get("status"), "id": e["id"]}
            for e in found if e["timeNano"] / 1e9 >= since - 1]


def show(cluster: LocalCluster, capsys: pytest.CaptureFixture[str], task_id: str) -> list[list[str]]:
    """The instance rows of `taskorg show TASK` (text), split into words."""
    capsys.readouterr()
    assert main(["--config", str(cluster.client_config_path), "show", task_id]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(n for n, line in enumerate(lines) if line.startswith("INDEX"))
    assert lines[header].split()[:4] == ["INDEX", "NODE", "STATUS", "HEALTH"]
    rows = []
    for line in lines[header + 1:]:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


def test_a_failing_health_check_makes_the_instance_unhealthy_and_restarts_it(
        cluster: LocalCluster, docker_client: docker.DockerClient, busybox_image: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    client = cluster.client()
    since = time.time()
    job = client.submit(flaky_spec(busybox_image), source="flaky.yaml")
    task_id = job["tasks"][0]["id"]
    try:
        wait_until(lambda: client.task(task_id)["instances"][0]["health"] == "healthy", 30, "the first healthy probe",
                   interval=0.2)
        assert show(cluster, capsys, task_id)[0][2:4] == ["running", "healthy"]
        # The check fails from about 4 s on: unhealthy, restarted once, unhealthy again, then failed.
        wait_until(lambda: client.task(task_id)["status"] == "failed", 90, "the task to fail after its restart",
                   interval=0.3)
        task = client.task(task_id)
        [instance] = task["instances"]
        assert (instance["health"], instance["restarts"], instance["error"]) == ("unhealthy", 1, "unhealthy")
        assert show(cluster, capsys, task_id)[0][2:4] == ["failed", "unhealthy"]
        history = task["history"]
        unhealthy = [h for h in history if h["event"] == "unhealthy"]
        assert len(unhealthy) == 2 and all("its health check failed" in h["detail"] for h in unhealthy), history
        assert "restart 1 of 1" in unhealthy[0]["detail"] and "no restarts left" in unhealthy[1]["detail"], unhealthy
        events = wait_until(lambda: (e := docker_events(docker_client, cluster, task_id, since))
                            and len({x["id"] for x in e if x["action"] == "destroy"}) == 2 and e,
                            30, "both containers to be removed")
        containers = list(dict.fromkeys(e["id"] for e in events if e["action"] == "create"))
        assert len(containers) == 2  # the first container was replaced by a second one

        def first(container: str, action: str) -> float:
            return min(e["time"] for e in events if e["id"] == container and e["action"] == action)
        for container in containers:  # each went healthy, then unhealthy, and only then was stopped
            assert first(container, "health_status: healthy") < first(container, "health_status: unhealthy") \
                < first(container, "die"), [e for e in events if e["id"] == container]
        recorded = unhealthy[0]["time"] - first(containers[0], "health_status: unhealthy")
        replaced = first(containers[1], "start") - first(containers[0], "health_status: unhealthy")
        print(f"unhealthy recorded {recorded:.2f} s after Docker's unhealthy event; replacement started "
              f"{replaced:.2f} s after it")
        assert 0 <= recorded < 5 and replaced > 0
    finally:
        client.cancel(task_id)


def compose_text(image: str) -> str:
    """db turns healthy about 3 s after it starts. Its start_period lets the check fail until then: without
    one Docker counts those failures, db turns unhealthy and is restarted before it is ever ready."""
    return ("name: health-deps\nservices:\n"
            "  db:\n"
            f"    image: {image}\n"
            "    command: [sh, -c, 'sleep 3; touch /tmp/ready; exec sleep 600']\n"
            "    stop_grace_period: 1s\n"
            "    healthcheck: {test: [CMD, test, -f, /tmp/ready], interval: 500ms, timeout: 1s, retries: 2,\n"
            "                  start_period: 20s, start_interval: 500ms}\n"
            "  app:\n"
            f"    image: {image}\n"
            "    command: [sleep, '600']\n"
            "    stop_grace_period: 1s\n"
            "    depends_on:\n"
            "      db: {condition: service_healthy}\n")


def test_a_service_healthy_dependant_starts_only_after_its_dependency_is_healthy(
        cluster: LocalCluster, docker_client: docker.DockerClient, busybox_image: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "compose.yaml"
    path.write_text(compose_text(busybox_image))
    since = time.time()
    capsys.readouterr()
    assert main(["--config", str(cluster.client_config_path), "submit", str(path)]) == 0, capsys.readouterr().err
    client = cluster.client()
    ids = {t["name"]: t["id"] for t in client.tasks() if t["job_name"] == "health-deps"}
    assert set(ids) == {"db", "app"}
    try:
        waiting_seen = False
        while True:  # until app has a container: app waits, without one, while db is not healthy
            app, db = client.task(ids["app"]), client.task(ids["db"])
            if app["instances"] and app["instances"][0]["status"] not in ("waiting", "pending"):
                break
            if db["instances"] and db["instances"][0]["health"] != "healthy":
                waiting_seen = waiting_seen or app["instances"][0]["status"] == "waiting"
            assert time.time() - since < 60, ("app never started", [(t["name"], t["status"], t.get("reason"),
                                                                  t["instances"], t["history"]) for t in (db, app)])
            time.sleep(0.1)
        assert waiting_seen
        wait_until(lambda: client.task(ids["app"])["instances"][0]["status"] == "running", 30, "app running")
        db_events = docker_events(docker_client, cluster, ids["db"], since)
        app_events = docker_events(docker_client, cluster, ids["app"], since)
        healthy_at = min(e["time"] for e in db_events if e["action"] == "health_status: healthy")
        created_at = min(e["time"] for e in app_events if e["action"] == "create")
        db_started = min(e["time"] for e in db_events if e["action"] == "start")
        print(f"db started, healthy {healthy_at - db_started:.2f} s later; app created {created_at - healthy_at:.2f} s "
              f"after db's healthy event")
        assert healthy_at - db_started > 2.5  # db's check could not pass before its file existed
        assert created_at > healthy_at
    finally:
        for task_id in ids.values():
            client.cancel(task_id)

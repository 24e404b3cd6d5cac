"""Every public compose file in tests/compose on one real local cluster (issue 16).

Each file is read as `taskorg submit FILE` reads it (beside its `.env`,
secrets and env files). A file the converter refuses is refused by `taskorg
submit FILE` with one line per unsupported key, the very lines docs/spec.md
promises (tests/unit/test_compose_files.py pins their text), and nothing is
sent. Every other file runs as a job, and Docker's own view of its
containers (docker inspect) is checked against what the file asks for:

- the replica count (a fixed host port allows one replica per node: the rest
  wait, naming the port);
- the memory and CPU limits, the health check (test and timings), the labels
  and environment;
- dependencies: a task waiting for a dependency's health has no container
  while that dependency is not healthy;
- GPUs: with no GPU in the cluster, a GPU task has no container and says why.

The images' own programs are not in busybox, so each task's command becomes
`sleep`; nothing else of the file is changed. (Their health checks call
programs busybox lacks too, so those stay unhealthy: which is what shows that
a `service_healthy` dependant waits.) One cluster serves every file; each job
is cancelled after its check.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import docker
import pytest

from taskorg import labels
from taskorg.devtools.localcluster import LocalCluster
from taskorg.cli.main import main
from taskorg.spec import JobSpec, SpecError, TaskSpec, load_spec_file
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster
FILES = Path(__file__).resolve().parents[1] / "compose"
NS = 1_000_000_000
RUN_COMMAND = ["sleep", "600"]


def compose_files() -> list[Path]:
    return sorted(p for p in FILES.glob("*/*") if p.suffix in (".yml", ".yaml"))


def containers(client: docker.DockerClient, cluster: LocalCluster, task_id: str) -> list[Any]:
    return client.containers.list(all=True, filters={"label": [f"{labels.CLUSTER}={cluster.name}",
                                                                f"{labels.TASK}={task_id}"]})


def waits_for_health(job: JobSpec, task: TaskSpec) -> bool:
    """Whether the task (or one it waits for) waits on a dependency's health or success."""
    return bool(task.after) or any(condition == "healthy" or waits_for_health(job, job.task(name))
                                   for name, condition in task.depends_on.items())


def expected_running(task: TaskSpec, nodes: int) -> int:
    """Replicas that can run at once: one per node when a fixed host port is published."""
    return min(task.replicas, nodes) if any(p.host for p in task.ports) else task.replicas


def check_container(container: Any, task: TaskSpec) -> None:
    """Docker's view of one container against the task's spec."""
    config, host = container.attrs["Config"], container.attrs["HostConfig"]
    assert {k: config["Labels"].get(k) for k in task.labels} == dict(task.labels), container.name
    env = dict(item.split("=", 1) for item in config["Env"])
    assert {k: env.get(k) for k in task.env} == dict(task.env), container.name
    if task.resources.memory:
        assert host["Memory"] == task.resources.memory, container.name
    if task.resources.cpus:
        assert host["NanoCpus"] == int(task.resources.cpus * NS), container.name
    check = task.healthcheck
    if check is not None and not check.disabled:
        given = config["Healthcheck"]
        assert given["Test"] == list(check.test), container.name
        assert (given.get("Interval"), given.get("Timeout"), given.get("Retries"), given.get("StartPeriod")) == (
            int(check.interval * NS), int(check.timeout * NS), check.retries, int(check.start_period * NS))


def check_refused(cluster: LocalCluster, capsys: pytest.CaptureFixture[str], path: Path, error: SpecError) -> str:
    """`taskorg submit FILE` refuses the file before sending anything: one line per problem, each the
    line the converter names (docs/spec.md's table; their text is pinned by the unit test)."""
    capsys.readouterr()
    code = main(["--config", str(cluster.client_config_path), "submit", str(path)])
    err = capsys.readouterr().err
    assert code == 2, (path, err)
    assert err.splitlines() == [str(p) for p in error.problems], path
    assert all(p.path.split(".")[0] in ("services", "volumes", "configs", "secrets") for p in error.problems)
    return f"refused, {len(error.problems)} line(s)"


def run_and_check(cluster: LocalCluster, docker_client: docker.DockerClient, path: Path, job: JobSpec) -> str:
    canonical = job.to_dict()
    for task in canonical["tasks"]:
        task["command"], task["entrypoint"] = RUN_COMMAND, None
    client = cluster.client()
    answer = client.submit_job(canonical, source=str(path))
    ids = {t["name"]: t["id"] for t in answer["tasks"]}
    try:
        runnable = {t.name: expected_running(t, cluster.nodes) for t in job.tasks
                    if t.gpus is None and not waits_for_health(job, t)}

        def all_running() -> bool:
            return all(len([c for c in containers(docker_client, cluster, ids[name]) if c.status == "running"])
                       == count for name, count in runnable.items())
        try:
            wait_until(all_running, 90, f"{path.parent.name}: {runnable} containers running", interval=0.5)
        except AssertionError:
            states = {name: (t.get("status"), t.get("reason"), [(i["status"], i["node"], i["error"])
                                                                for i in t["instances"]])
                      for name in runnable for t in [client.task(ids[name])]}
            raise AssertionError(f"{path.parent.name}: not all running: {states}") from None
        time.sleep(1.0)  # anything that should not start has had the time to
        for task in job.tasks:
            found = containers(docker_client, cluster, ids[task.name])
            state = client.task(ids[task.name])
            if task.name in runnable:
                assert len(found) == runnable[task.name], (path, task.name)
                if any(p.host for p in task.ports):
                    assert len({c.labels[labels.NODE] for c in found}) == len(found)  # one per node
                    if task.replicas > len(found):
                        assert "host port(s) in use" in (state.get("reason") or ""), state
                for container in found:
                    check_container(container, task)
            elif task.gpus is not None:
                assert found == [] and "GPU" in (state.get("reason") or ""), (task.name, state.get("reason"))
            else:  # waits for a dependency's health, which busybox cannot give it
                assert found == [], (path, task.name)
                assert {i["status"] for i in state["instances"]} == {"waiting"}, state["instances"]
                for name, condition in task.depends_on.items():
                    if condition == "healthy":
                        healths = {(c.attrs["State"].get("Health") or {}).get("Status")
                                   for c in containers(docker_client, cluster, ids[name])}
                        assert "healthy" not in healths, (task.name, name, healths)
        return f"ran: {runnable}; waiting: {sorted(set(ids) - set(runnable))}"
    finally:
        for task_id in ids.values():
            client.cancel(task_id)
        wait_until(lambda: not any(containers(docker_client, cluster, i) for i in ids.values()), 60,
                   f"{path.parent.name}'s containers to be removed", interval=0.5)


def test_every_public_compose_file_runs_as_it_asks_or_is_refused_line_by_line(
        cluster: LocalCluster, docker_client: docker.DockerClient, busybox_image: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    outcomes: dict[str, str] = {}
    try:
        for path in compose_files():
            try:
                job = load_spec_file(path, environ={})
            except SpecError as error:
                outcomes[path.parent.name] = check_refused(cluster, capsys, path, error)
                continue
            outcomes[path.parent.name] = run_and_check(cluster, docker_client, path, job)
    finally:
        for name, outcome in outcomes.items():
            print(f"{name}: {outcome}")
        for volume in docker_client.volumes.list(filters={"label": f"{labels.CLUSTER}={cluster.name}"}):
            volume.remove(force=True)
    assert len(outcomes) == len(compose_files()) >= 8

"""The core bundle on a real local cluster: dnsmasq, dockerd, one process per service.

Every assertion checks an outcome someone could see: what the cluster DNS
answers, which containers dockerd runs with which labels, what the API says.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from taskorg.devtools.localcluster import LocalCluster
from taskorg.net.client import ServiceClient
from taskorg.net.resolve import resolve_all
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster
REPO = Path(__file__).resolve().parents[2]


def containers(cluster: LocalCluster, **labels: str) -> list[Any]:
    client = docker.from_env()
    filters = [f"taskorg.cluster={cluster.name}"] + [f"taskorg.{k}={v}" for k, v in labels.items()]
    found = client.containers.list(all=True, filters={"label": filters}, ignore_removed=True)
    client.close()
    return found


def submit(cluster: LocalCluster, text: str, source: str = "test.yaml") -> dict[str, Any]:
    return cluster.client().submit(text, source=source)


def task_of(cluster: LocalCluster, job: dict[str, Any], name: str | None = None) -> str:
    return next(t["id"] for t in job["tasks"] if name is None or t["name"] == name)


def wait_status(cluster: LocalCluster, task_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
    return wait_until(lambda: (t := cluster.client().task(task_id))["status"] == status and t,
                      timeout, f"task {task_id} to be {status}")


# ---- DNS and membership ------------------------------------------------------------------------

def test_master_and_nodes_resolve_at_the_cluster_dns(cluster: LocalCluster) -> None:
    config = cluster.config
    master = resolve_all(config, config.master_name)
    assert len(master) == 1 and master[0] in {cluster.node_address(i) for i in (1, 2, 3)}
    for index in (1, 2, 3):
        assert resolve_all(config, f"node{index}.{config.suffix}") == [cluster.node_address(index)]
    assert resolve_all(config, f"dns.{config.suffix}") == [cluster.dns_address]
    # dig, as any tool would, sees the same.
    dig = subprocess.run(["dig", "+short", f"@{cluster.dns_address}", config.master_name],
                         capture_output=True, text=True, timeout=10)
    assert dig.stdout.split() == master


def test_members_json_lists_every_node_with_its_role(cluster: LocalCluster) -> None:
    out = subprocess.run([sys.executable, "-m", "taskorg", "--config", str(cluster.client_config_path),
                          "members", "--json"], capture_output=True, text=True, timeout=30, check=True)
    import json
    view = json.loads(out.stdout)
    roles = {m["node"]: m["role"] for m in view["members"]}
    assert sorted(roles) == ["node1", "node2", "node3"]
    assert list(roles.values()).count("master") == 1
    assert all(m["alive"] and m["telemetry"]["cpu_count"] >= 1 for m in view["members"])


def test_names_are_stable_across_a_node_restart(cluster_factory: Any) -> None:
    cluster = cluster_factory(2)
    before = {m["node"]: m["address"] for m in cluster.client().dns_members()["members"]}
    cluster.restart_node(2)
    wait_until(lambda: all(m["alive"] for m in cluster.client().dns_members()["members"]), 20,
               "node2 to heartbeat again")
    after = {m["node"]: m["address"] for m in cluster.client().dns_members()["members"]}
    assert after == before == {"node1": cluster.node_address(1), "node2": cluster.node_address(2)}
    assert cluster.node_name(2) == "node2"


def test_roles_follow_the_master_record(cluster_factory: Any) -> None:
    cluster = cluster_factory(3)
    config = cluster.config

    def status(index: int) -> dict[str, Any]:
        from taskorg.net.client import ServiceClient
        client = ServiceClient(config.url(cluster.node_address(index), config.master_port), cluster.secret)
        return client.get("/v1/status")

    def roles_swap(to: int, away_from: str) -> None:
        wait_until(lambda: resolve_all(config, config.master_name) == [cluster.node_address(to)], 10,
                   "the master record to name the new node alone")
        wait_until(lambda: status(to)["active"], 10, "the new master service to be active")
        wait_until(lambda: not status(cluster.index_of(away_from))["active"], 10, "the old master to stand by")
        assert [i for i in range(1, 4) if status(i)["active"]] == [to]

    # 1. An operator rewrites the record by hand (as any DNS tool or editor could): roles follow it.
    first = cluster.wait_master()
    epoch_before = status(cluster.index_of(first))["epoch"]
    edited = 2 if first != cluster.node_address(2) else 3
    hosts = cluster.workdir / "dns" / "dns" / "hosts" / "cluster"
    text = "".join(f"{cluster.node_address(edited)} {config.master_name}\n" if config.master_name in line
                   else line + "\n" for line in hosts.read_text().splitlines())
    (hosts.parent / ".hand-edit").write_text(text)
    (hosts.parent / ".hand-edit").rename(hosts)
    roles_swap(edited, first)
    epoch_after_edit = status(edited)["epoch"]
    assert epoch_after_edit > epoch_before  # a real election: the old master is fenced
    assert hosts.read_text() == text  # the edit stands: it was taken as a handover, not undone

    # 2. The API's planned handover does the same.
    old = cluster.node_address(edited)
    target = next(i for i in (3, 2, 1) if cluster.node_address(i) != old)
    cluster.client().handover(f"node{target}")
    roles_swap(target, old)
    assert status(target)["epoch"] > epoch_after_edit
    # The standby refuses client writes and names the master.
    from taskorg.net.client import ServiceClient, ServiceError
    standby = ServiceClient(config.url(old, config.master_port), cluster.secret)
    with pytest.raises(ServiceError) as refused:
        standby.post("/v1/jobs", {"name": "x", "image": "taskorg/busybox:latest"},
                     headers={"X-Taskorg-No-Forward": "1"})
    assert refused.value.status == 409 and f"node{target}" in refused.value.message
    # Without that header the standby forwards to the master: any node answers.
    job = standby.post("/v1/jobs", {"name": "via-standby", "image": "taskorg/busybox:latest",
                                    "command": "true", "restart": "never"})
    assert cluster.client().task(job["tasks"][0]["id"])["name"] == "via-standby"


# ---- placement ------------------------------------------------------------------------------------

def test_placement_honours_node_and_label_constraints(cluster: LocalCluster) -> None:
    job = submit(cluster, """
job: constrained
tasks:
  - name: on-node3
    image: taskorg/busybox:latest
    command: sleep 300
    constraints: {nodes: [node3]}
  - name: needs-gpu
    image: taskorg/busybox:latest
    command: sleep 300
    constraints: {labels: {gpu: "true"}}
""")
    for name, node in (("on-node3", "node3"), ("needs-gpu", "node2")):
        task_id = task_of(cluster, job, name)
        wait_status(cluster, task_id, "running")
        running = containers(cluster, task=task_id)
        assert [c.labels["taskorg.node"] for c in running] == [node]
        cluster.client().cancel(task_id)


def test_placement_honours_resources_and_spreads_replicas(cluster: LocalCluster) -> None:
    cpus = cluster.client().members()["members"][0]["telemetry"]["cpu_count"]
    job = submit(cluster, f"""
name: wide
image: taskorg/busybox:latest
command: sleep 300
replicas: 3
resources: {{cpus: {cpus * 0.6}, memory: 16M}}
""")
    task_id = task_of(cluster, job)
    wait_status(cluster, task_id, "running")
    nodes = sorted(c.labels["taskorg.node"] for c in containers(cluster, task=task_id))
    assert nodes == ["node1", "node2", "node3"]  # 0.6 of a node's CPUs: one replica per node

    too_big = submit(cluster, """
name: too-big
image: taskorg/busybox:latest
resources: {memory: 8Ti}
""")
    big_id = task_of(cluster, too_big)
    task = wait_until(lambda: (t := cluster.client().task(big_id))["reason"] and t, 10, "a placement reason")
    assert task["status"] == "pending"
    assert "not enough memory" in task["reason"] and "node1" in task["reason"] and "node3" in task["reason"]
    assert containers(cluster, task=big_id) == []
    for tid in (task_id, big_id):
        cluster.client().cancel(tid)


# ---- restart policies ---------------------------------------------------------------------------------

def test_on_failure_restarts_up_to_its_limit(cluster: LocalCluster) -> None:
    job = submit(cluster, """
name: flaky
image: taskorg/busybox:latest
command: ["sh", "-c", "echo failing; exit 3"]
restart: on-failure:2
""")
    task = wait_status(cluster, task_of(cluster, job), "failed", timeout=40)
    instance = task["instances"][0]
    assert (instance["attempt"], instance["restarts"], instance["exit_code"]) == (3, 2, 3)
    assert "echo" not in cluster.client().logs(task["id"])["logs"] and "failing" in cluster.client().logs(task["id"])["logs"]


def test_never_does_not_restart_and_success_is_final(cluster: LocalCluster) -> None:
    failing = submit(cluster, "name: once\nimage: taskorg/busybox:latest\ncommand: sh -c 'exit 1'\nrestart: never\n")
    ok = submit(cluster, "name: fine\nimage: taskorg/busybox:latest\ncommand: 'true'\nrestart: on-failure\n")
    failed = wait_status(cluster, task_of(cluster, failing), "failed")
    assert failed["instances"][0]["attempt"] == 1 and failed["instances"][0]["exit_code"] == 1
    succeeded = wait_status(cluster, task_of(cluster, ok), "succeeded")
    assert succeeded["instances"][0]["attempt"] == 1
    time.sleep(1.5)
    assert cluster.client().task(failed["id"])["instances"][0]["attempt"] == 1


def test_always_restarts_even_after_success(cluster: LocalCluster) -> None:
    job = submit(cluster, "name: loop\nimage: taskorg/busybox:latest\ncommand: sh -c 'sleep 0.2'\nrestart: always\n")
    task_id = task_of(cluster, job)
    wait_until(lambda: cluster.client().task(task_id)["instances"][0]["attempt"] >= 3, 30, "three attempts")
    cluster.client().cancel(task_id)


# ---- slave restart, cancel, logs -------------------------------------------------------------------------

def test_restarted_slave_adopts_its_containers(cluster: LocalCluster) -> None:
    job = submit(cluster, "name: steady\nimage: taskorg/busybox:latest\ncommand: sleep 600\nrestart: always\n")
    task_id = task_of(cluster, job)
    task = wait_status(cluster, task_id, "running")
    node = task["instances"][0]["node"]
    before = [c.id for c in containers(cluster, task=task_id)]
    index = int(node.removeprefix("node"))
    key = f"node{index}/slave"
    cluster._signal([key], signal.SIGKILL)
    cluster._reap([key], 3)
    cluster._spawn(key, "slave", cluster._node_config(index))
    time.sleep(3 * cluster.config.report_interval + 1)
    after = containers(cluster, task=task_id)
    assert [c.id for c in after] == before and after[0].status == "running"
    task = cluster.client().task(task_id)
    assert task["status"] == "running" and task["instances"][0]["attempt"] == 1
    cluster.client().cancel(task_id)


def test_cancel_removes_the_container(cluster: LocalCluster) -> None:
    job = submit(cluster, "name: doomed\nimage: taskorg/busybox:latest\ncommand: sleep 600\n")
    task_id = task_of(cluster, job)
    wait_status(cluster, task_id, "running")
    assert len(containers(cluster, task=task_id)) == 1
    assert cluster.client().cancel(task_id)["status"] == "cancelled"
    wait_until(lambda: containers(cluster, task=task_id) == [], 10, "the container to be removed")
    assert cluster.client().task(task_id)["status"] == "cancelled"


def test_examples_run_where_the_master_placed_them(cluster: LocalCluster) -> None:
    client = cluster.client()
    ids = []
    for path in sorted((REPO / "examples").glob("*.yaml")):
        if path.name == "web.yaml":
            continue  # host port 18080 would clash with a demo cluster on this machine
        ids += [t["id"] for t in client.submit(path.read_text(), source=path.name)["tasks"]]

    def all_started() -> bool:
        return all(client.task(i)["status"] in ("running", "succeeded") for i in ids)

    wait_until(all_started, 60, "every example to run or finish")
    for task_id in ids:
        task = client.task(task_id)
        for instance in task["instances"]:
            found = containers(cluster, task=task_id, instance=f"{task_id}/{instance['index']}")
            assert found, f"no container for {task['name']}[{instance['index']}]"
            assert {c.labels["taskorg.node"] for c in found} == {instance["node"]}
        if task["status"] == "running":
            client.cancel(task_id)


# ---- security and bad input ----------------------------------------------------------------------------------

def test_every_service_requires_a_credential(cluster: LocalCluster) -> None:
    """Client routes open to the secret (an admin credential), internal ones only to a node certificate."""
    config = cluster.config
    node = cluster.node_address(1)
    client_urls = [config.url(cluster.dns_address, config.dns_api_port) + "/v1/members",
                   config.url(node, config.master_port) + "/v1/status"]
    internal_urls = [config.url(node, config.slave_port) + "/v1/containers",
                     config.url(node, config.node_port) + "/v1/role"]
    user = requests.Session()
    user.trust_env = False  # (REQUESTS_CA_BUNDLE would replace the CA below)
    user.verify = str(cluster.ca_file)  # a user: the cluster CA, no certificate
    for url in client_urls + internal_urls:
        assert user.get(url, timeout=5).status_code == 401, url
        assert user.get(url, headers={"Authorization": "Bearer wrong-secret-value"}, timeout=5).status_code == 401
    for url in client_urls:
        assert user.get(url, headers={"Authorization": f"Bearer {cluster.secret}"}, timeout=5).status_code == 200
    for url in internal_urls:
        assert user.get(url, headers={"Authorization": f"Bearer {cluster.secret}"}, timeout=5).status_code == 403
        assert ServiceClient(url.rsplit("/v1", 1)[0], "no-secret-needed").get("/v1/" + url.rsplit("/v1/", 1)[1])
    assert user.post(config.url(node, config.slave_port) + "/v1/containers", json={}, timeout=5).status_code == 401


BAD_SPECS = {
    "malformed": ("name: x\nimage: [unclosed\n", "invalid YAML"),
    "unknown field": ("name: x\nimage: taskorg/busybox:latest\nimagee: y\n", "imagee"),
    "wrong type": ("name: x\nimage: taskorg/busybox:latest\nreplicas: many\n", "replicas"),
    "negative resources": ("name: x\nimage: taskorg/busybox:latest\nresources: {cpus: -1}\n", "resources.cpus"),
    "absurd memory": ("name: x\nimage: taskorg/busybox:latest\nresources: {memory: 900Ti}\n", "resources.memory"),
    "missing image": ("name: x\n", "image"),
    "duplicate names": ("job: j\ntasks:\n  - {name: a, image: i}\n  - {name: a, image: i}\n", "tasks[1].name"),
    "unknown dependency": ("job: j\ntasks:\n  - {name: a, image: i, after: [ghost]}\n", "ghost"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_specs_are_refused_naming_the_problem(cluster: LocalCluster, case: str) -> None:
    text, expected = BAD_SPECS[case]
    from taskorg.net.client import ServiceError
    before = len(cluster.client().tasks())
    with pytest.raises(ServiceError) as refused:
        cluster.client().submit(text, source=f"{case}.yaml")
    assert refused.value.status == 400
    assert f"{case}.yaml" in refused.value.message and expected in refused.value.message
    problems = refused.value.payload["problems"]
    assert problems and all(p["source"] == f"{case}.yaml" for p in problems)
    assert len(cluster.client().tasks()) == before  # nothing stored


def test_cli_submit_refuses_a_bad_file_and_names_it(cluster: LocalCluster, tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("name: fine\nimage: taskorg/busybox:latest\ncommand: 'true'\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nimage: taskorg/busybox:latest\nresources:\n  memory: lots\n")
    before = len(cluster.client().tasks())
    out = subprocess.run([sys.executable, "-m", "taskorg", "--config", str(cluster.client_config_path),
                          "submit", str(good), str(bad)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert f"{bad}:4: resources.memory" in out.stderr
    assert len(cluster.client().tasks()) == before  # the good file was not submitted either

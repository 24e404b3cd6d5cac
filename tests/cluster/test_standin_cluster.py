"""A local cluster whose nodes run the stand-in runner (`runner: standin`): no container at all.

Proves, on real services (dnsmasq, the DNS, node, master and slave
services): a submitted 3-replica task is placed on the three nodes and
reported running by their slaves, as the master's API shows; its logs come
back through the master; a cancel removes its instances; every node reports
the CPUs it is told to advertise; and dockerd holds no container carrying
the cluster's label at any point.
"""

from __future__ import annotations

from typing import Any

import docker
import pytest

from taskorg.devtools.localcluster import LocalCluster
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster

TASK = """\
name: web
image: taskorg/busybox:latest
command: sleep 3600
replicas: 3
"""


def docker_containers(cluster: LocalCluster) -> list[Any]:
    client = docker.from_env()
    try:
        return client.containers.list(all=True, filters={"label": f"taskorg.cluster={cluster.name}"})
    finally:
        client.close()


def running_nodes(cluster: LocalCluster, task_id: str) -> list[str]:
    task = cluster.client().task(task_id)
    return sorted(i["node"] for i in task["instances"] if i["status"] == "running" and i["container_id"])


def test_a_stand_in_cluster_runs_a_replicated_task_without_containers(cluster_factory: Any) -> None:
    cluster = cluster_factory(3, settings={"runner": "standin", "advertise_cpus": 0.5})
    members = cluster.client().members()["members"]
    assert sorted(m["telemetry"]["cpu_count"] for m in members) == [0.5, 0.5, 0.5]

    job = cluster.client().submit(TASK, source="standin.yaml")
    task_id = job["tasks"][0]["id"]
    nodes = wait_until(lambda: (found := running_nodes(cluster, task_id)) == ["node1", "node2", "node3"]
                       and found, 30, "three replicas running, one per node")
    assert nodes == ["node1", "node2", "node3"]
    wait_until(lambda: cluster.client().task(task_id)["status"] == "running", 10, "the task to be running")
    assert "stand-in" in cluster.client().logs(task_id, 0)["logs"]
    assert docker_containers(cluster) == []

    cluster.client().cancel(task_id)
    wait_until(lambda: not running_nodes(cluster, task_id), 30, "the replicas to be stopped")
    assert docker_containers(cluster) == []

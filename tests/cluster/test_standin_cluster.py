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
from taskorg.net.client import ServiceClient
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


def test_a_twenty_node_cluster_has_five_voters_and_read_only_replicas(cluster_factory: Any) -> None:
    """A 100-node cluster must not have 100 voters: with 20 nodes and the witness, 5 vote, every
    other DNS service follows a read-only replica of the same state."""
    cluster = cluster_factory(20, settings={"runner": "standin", "advertise_cpus": 0.25})
    config = cluster.config
    addresses = [cluster.dns_address] + [cluster.node_address(i) for i in range(1, 21)]

    def views() -> list[dict[str, Any]]:
        found = []
        for address in addresses:
            api = ServiceClient(config.url(address, config.dns_api_port), cluster.secret, timeout=2)
            try:
                found.append({**api.get("/v1/consensus"), "master": api.get("/v1/master")["master"]})
            finally:
                api.close()
        return found

    def agreed() -> list[dict[str, Any]] | None:
        found = views()
        same = len({tuple(v["recorded_voters"]) for v in found}) == 1 and len({v["master"] for v in found}) == 1
        return found if same and found[0]["recorded_voters"] and found[0]["master"] else None

    found = wait_until(agreed, 60, "every DNS service to know the same voters and master")
    assert sum(v["voting"] for v in found) == 5
    assert sorted(found[0]["recorded_voters"]) == sorted(addresses[:5])
    assert all(len(v["voters"]) == 5 for v in found)

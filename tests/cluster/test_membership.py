"""Membership changes on a live cluster: a node drains and leaves, a new node joins and takes work."""

from __future__ import annotations

import time
from typing import Any

import docker
import pytest

from taskorg.devtools.localcluster import LocalCluster
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster


def nodes_running(cluster: LocalCluster, task_id: str) -> list[str]:
    client = docker.from_env()
    found = client.containers.list(sparse=True, filters={"label": [f"taskorg.cluster={cluster.name}",
                                                                   f"taskorg.task={task_id}"]})
    client.close()
    return sorted(c.attrs["Labels"]["taskorg.node"] for c in found)


def test_drain_moves_tasks_away_then_the_node_leaves(cluster_factory: Any) -> None:
    cluster: LocalCluster = cluster_factory(3)
    client = cluster.client()
    master = cluster.node_name(cluster.index_of(cluster.wait_master()))
    victim = next(f"node{i}" for i in (1, 2, 3) if f"node{i}" != master)
    spec = f"name: pinned\nimage: taskorg/busybox:latest\ncommand: sleep 600\nreplicas: 2\nrestart: always\n"
    task_id = client.submit(spec, source="pinned.yaml")["tasks"][0]["id"]
    wait_until(lambda: len(nodes_running(cluster, task_id)) == 2, 30, "two replicas running")
    if victim not in nodes_running(cluster, task_id):
        victim = next(n for n in nodes_running(cluster, task_id) if n != master)
    assert client.drain(victim)["state"] == "draining"
    wait_until(lambda: len(nodes_running(cluster, task_id)) == 2 and victim not in nodes_running(cluster, task_id),
               30, f"the replicas to move off {victim}")
    history = client.task(task_id)["history"]
    assert any(h["event"] == "rescheduled" and h["node"] == victim and "drained" in h["detail"] for h in history)
    assert client.leave(victim)["state"] == "left"
    members = {m["node"] for m in client.dns_members()["members"]}
    assert victim not in members
    # Its services still run and heartbeat: the leave must stick (it used to be undone at once).
    time.sleep(1.0)
    assert victim not in {m["node"] for m in client.dns_members()["members"]}


def test_a_new_node_joins_and_takes_work(cluster_factory: Any) -> None:
    cluster: LocalCluster = cluster_factory(2)
    client = cluster.client()
    spec = "name: for-node3\nimage: taskorg/busybox:latest\ncommand: sleep 600\nconstraints: {nodes: [node3]}\n"
    task_id = client.submit(spec, source="node3.yaml")["tasks"][0]["id"]
    wait_until(lambda: "node3" in (client.task(task_id)["reason"] or ""), 10, "a reason naming node3")
    assert client.task(task_id)["status"] == "pending"
    index = cluster.add_node()
    assert cluster.node_name(index) == "node3"
    wait_until(lambda: nodes_running(cluster, task_id) == ["node3"], 30, "the task to run on the new node")
    assert client.task(task_id)["status"] == "running"

"""The bounded standby set on a real 4-node cluster (setting `standbys: 2`, issue 14).

Exactly two standbys receive the master's changes, the fourth node's replica stays where it was; a
standby that dies is replaced by the spare, which catches up (a snapshot) and then counts towards
the acknowledgement (`replication_acks: 2`, so a submission acknowledged while the dead standby is
gone was held by the newcomer); killing the master elects one of the standbys, which holds every
acknowledged submission.
"""

from __future__ import annotations

from typing import Any

import pytest

from taskorg.devtools.localcluster import LocalCluster
from taskorg.net.client import ServiceClient, ServiceUnavailable
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster

# Tasks that fit no node: they stay pending, so only the control plane works.
SPEC = ("name: {name}\nimage: taskorg/busybox:latest\ncommand: ['true']\nrestart: never\n"
        "constraints: {{labels: {{standby-test: never}}}}\n")


def replica(cluster: LocalCluster, index: int) -> tuple[int, int]:
    """Node `index`'s master service replica position (epoch, seq), asked of the node itself."""
    client = ServiceClient(f"http://{cluster.node_address(index)}:{cluster.config.master_port}", cluster.secret,
                           timeout=2)
    try:
        answer = client.get("/v1/replica")
    finally:
        client.close()
    return int(answer["epoch"]), int(answer["seq"])


def answered(call: Any) -> Any:
    """`call()`, or None while the service refuses connections."""
    try:
        return call()
    except ServiceUnavailable:
        return None


def settled_set(cluster: LocalCluster, size: int = 2) -> dict[str, Any] | None:
    """The master's status once it streams to `size` standbys that hold its latest change."""
    status = cluster.client(failover_wait=2).status()
    standbys, replicas = status.get("standbys") or [], status.get("replicas") or {}
    if len(standbys) == size and all(replicas.get(node, -1) >= status["seq"] for node in standbys):
        return status
    return None


def submit(cluster: LocalCluster, acked: dict[str, str], name: str) -> int:
    """Submit one job; the seq of its commit, which the acknowledgement says enough standbys hold."""
    answer = cluster.client(failover_wait=10).submit(SPEC.format(name=name), source=f"{name}.yaml")
    assert answer.get("replicated", True), answer
    for task in answer["tasks"]:
        acked[task["id"]] = name
    return int(answer["seq"])


def missing(cluster: LocalCluster, acked: dict[str, str]) -> list[str]:
    held = {task["id"] for task in cluster.client(failover_wait=5).tasks()}
    return [task_id for task_id in acked if task_id not in held]


def test_two_standbys_of_four_nodes_replace_a_dead_one_and_take_over(cluster_factory: Any) -> None:
    cluster: LocalCluster = cluster_factory(4, settings={"standbys": 2, "replication_acks": 2, "tls": False})
    index_of = {cluster.node_name(i): i for i in range(1, 5)}
    master = cluster.index_of(cluster.wait_master())
    status = wait_until(lambda: settled_set(cluster), 30, "two standbys holding the master's changes")
    first, second = (index_of[node] for node in status["standbys"])
    [spare] = [i for i in range(1, 5) if i not in (master, first, second)]
    members = {m["node"]: m["role"] for m in cluster.client().members()["members"]}
    assert members == {cluster.node_name(master): "master", cluster.node_name(first): "standby",
                       cluster.node_name(second): "standby", cluster.node_name(spare): "spare"}

    # Only the two standbys follow the master's changes. (The spare's master service may still be
    # binding its listeners: the cluster is up once every node reports, not every service listens.)
    spare_before = wait_until(lambda: answered(lambda: replica(cluster, spare)), 20,
                              "the spare's master service to answer")
    acked: dict[str, str] = {}
    # The acknowledged commits, not the master's latest: a tick may commit after them, unacknowledged.
    seq = max(submit(cluster, acked, f"sb-a{n}") for n in range(5))
    assert replica(cluster, first)[1] >= seq and replica(cluster, second)[1] >= seq
    assert replica(cluster, spare) == spare_before and spare_before[1] < seq

    # A standby dies: the spare is chosen, catches up, and counts (2 acks needed, 1 standby left).
    cluster.kill_node(second)
    status = wait_until(lambda: (s := settled_set(cluster)) and cluster.node_name(spare) in s["standbys"] and s,
                        30, "the spare chosen in place of the dead standby, caught up")
    assert set(status["standbys"]) == {cluster.node_name(first), cluster.node_name(spare)}
    seq = max(submit(cluster, acked, f"sb-b{n}") for n in range(5))
    assert replica(cluster, spare)[1] >= seq

    # The dead standby comes back as a spare: the set is sticky.
    cluster.start_node(second)
    wait_until(lambda: cluster.node_name(second) in {m["node"] for m in cluster.client().members()["members"]
                                                     if m["alive"]}, 30, "the old standby alive again")
    assert set(cluster.client().status()["standbys"]) == {cluster.node_name(first), cluster.node_name(spare)}

    # The master dies: one of its standbys is elected and holds every acknowledged submission.
    cluster.kill_node(master)
    new_master = cluster.index_of(cluster.wait_master(timeout=20))
    assert new_master in (first, spare), (new_master, first, spare)
    assert not missing(cluster, acked), missing(cluster, acked)
    status = wait_until(lambda: settled_set(cluster), 30, "the new master streaming to two standbys")
    other = first if new_master == spare else spare
    assert cluster.node_name(other) in status["standbys"]  # the freshest replica is chosen first
    submit(cluster, acked, "sb-c0")
    cluster.start_node(master)

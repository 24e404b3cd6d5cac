"""Losing the DNS node stops nothing: every machine runs a DNS service and dnsmasq (issue 13).

And a side of the cluster without a majority of the voters refuses changes,
saying why.

A 3-node local cluster with tasks running; the DNS node's DNS service and its
dnsmasq are SIGKILLed (its power loss). A submission to a surviving node is
acknowledged within 3 s, `dig @node2` names a living master, and when the DNS
node comes back its dnsmasq serves the current master within 1 s of its DNS
service starting.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from typing import Any

import pytest

from taskorg.devtools.localcluster import LocalCluster
from taskorg.net.client import ServiceClient, ServiceError
from taskorg.net.resolve import ResolveError, resolve_at
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster

PROBE = "name: probe-{n}\nimage: taskorg/busybox:latest\ncommand: ['true']\nrestart: never\n"


def dig(server: str, name: str) -> list[str]:
    out = subprocess.run(["dig", "+short", "+time=1", "+tries=1", f"@{server}", name],
                         capture_output=True, text=True, timeout=5).stdout
    return [line for line in out.splitlines() if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", line)]


def test_the_dns_node_dies_and_the_cluster_goes_on(cluster_factory: Any) -> None:
    cluster: LocalCluster = cluster_factory(3)
    config = cluster.config
    client = cluster.client()
    spec = "name: steady\nimage: taskorg/busybox:latest\ncommand: sleep 600\nreplicas: 2\nrestart: always\n"
    task_id = client.submit(spec, source="steady.yaml")["tasks"][0]["id"]
    wait_until(lambda: client.task(task_id)["status"] == "running", 30, "the task to run")
    living = {cluster.node_address(i) for i in (1, 2, 3)}

    killed = time.monotonic()
    cluster.kill_dns_node()
    acknowledged = None
    while time.monotonic() - killed < 10:
        try:
            client.submit(PROBE.format(n=1), source="probe.yaml")
            acknowledged = time.monotonic() - killed
            break
        except Exception:  # noqa: BLE001 - any refusal while the control plane moves: try again
            time.sleep(0.05)
    assert acknowledged is not None and acknowledged <= 3.0, f"submission acknowledged after {acknowledged} s"
    node2 = cluster.node_address(2)
    assert dig(node2, config.master_name)[0] in living
    assert dig(cluster.dns_address, config.master_name) == []  # the DNS node is really down

    # Membership still works through any DNS service once the voters left have a new arbiter
    # (a majority of voters lives); until then a change is refused with a 503 naming why.
    node3 = cluster.node_name(3)
    assert wait_until(lambda: client.drain(node3), 5, f"{node3} to drain")["state"] == "draining"
    assert client.activate(node3)["state"] == "active"

    # The DNS node comes back: its dnsmasq catches up within 1 s of its DNS service starting.
    truth = resolve_at(config, node2, config.master_name)
    cluster._spawn("dns", "dns", cluster.workdir / "dns" / "taskorg.yaml")
    api = ServiceClient(config.url(cluster.dns_address, config.dns_api_port), cluster.secret, timeout=0.2)
    started = wait_until(lambda: api.get("/v1/master") and time.monotonic(), 20, "the DNS service to start",
                         interval=0.01)
    api.close()

    def serves_truth() -> float | None:
        try:
            return time.monotonic() if resolve_at(config, cluster.dns_address, config.master_name, 0.1) == truth \
                else None
        except ResolveError:
            return None

    served = wait_until(serves_truth, 10, "the DNS node's dnsmasq to serve the current master", interval=0.01)
    assert served - started <= 1.0, f"served the current master {served - started:.2f} s after starting"
    assert client.task(task_id)["status"] == "running"


def test_a_minority_of_voters_refuses_changes_naming_why(cluster_factory: Any) -> None:
    """Two of the three voters' DNS services hang: the third refuses a drain with a 503 that says why."""
    cluster: LocalCluster = cluster_factory(3)
    config = cluster.config
    hung = ["dns", "node1/dns"]  # the witness's and node1's: the voters are the witness, node1 and node2
    cluster._signal(hung, signal.SIGSTOP)
    lone = ServiceClient(config.url(cluster.node_address(2), config.dns_api_port), cluster.secret, timeout=5)
    try:
        def refusal() -> str | None:
            try:
                lone.post(f"/v1/members/{cluster.node_name(3)}/drain")
            except ServiceError as exc:
                return exc.message if exc.status == 503 and "no quorum" in exc.message else None
            raise AssertionError("a minority of voters accepted a change")

        message = wait_until(refusal, 15, "a 503 naming the missing quorum", interval=0.2)
        assert cluster.node_address(2) in message and "majority (2)" in message
    finally:
        cluster._signal(hung, signal.SIGCONT)
        lone.close()
    client = cluster.client()
    assert wait_until(lambda: client.drain(cluster.node_name(3)), 15, "the healed cluster to take the drain")

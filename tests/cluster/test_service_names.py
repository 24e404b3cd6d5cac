"""Service names in the cluster DNS on a real local cluster (issue 16).

`web.<job>.<suffix>`, asked of the cluster's dnsmasq with dnspython, lists
exactly the nodes whose web container Docker says runs healthy, with TTL 0.
When one of those nodes loses power, the name lists the new set within 1 s
of the replacement container's first passing health probe (its time as
Docker logged it).
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
import docker
import pytest

from taskorg import labels
from taskorg.devtools.localcluster import LocalCluster
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster
POLL = 0.05
MAX_SECONDS = 60.0


def web_job(image: str) -> str:
    return (f"job: shop\ntasks:\n  - name: web\n    image: {image}\n    replicas: 3\n    restart: always\n"
            "    command: [sh, -c, 'mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www']\n"
            "    stop_grace_period: 1s\n"
            "    healthcheck: {test: [CMD, wget, -q, -O, /dev/null, 'http://127.0.0.1/index.html'], interval: 0.5s, "
            "timeout: 2s, retries: 2}\n")


def ask(cluster: LocalCluster, server: str, name: str) -> tuple[list[str], list[int]]:
    """The A records for `name` at one cluster DNS server, and their TTLs."""
    response = dns.query.udp(dns.message.make_query(name, dns.rdatatype.A), server, port=cluster.config.dns_port,
                             timeout=0.5)
    rrsets = [r for r in response.answer if r.rdtype == dns.rdatatype.A]
    return sorted((item.address for r in rrsets for item in r), key=lambda a: tuple(map(int, a.split(".")))), \
        [r.ttl for r in rrsets]


def docker_time(text: str) -> float:
    """Docker's RFC 3339 time with nanoseconds as a Unix time."""
    found = re.match(r"^([^.]+)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    assert found, f"not a docker time: {text!r}"
    head, fraction, zone = found.groups()
    return datetime.fromisoformat(f"{head}.{(fraction or '0')[:6]:0<6}{'+00:00' if zone == 'Z' else zone}").timestamp()


def web_containers(client: docker.DockerClient, cluster: LocalCluster, task_id: str) -> list[Any]:
    return client.containers.list(filters={"label": [f"{labels.CLUSTER}={cluster.name}", f"{labels.TASK}={task_id}"]})


def healthy_addresses(client: docker.DockerClient, cluster: LocalCluster, task_id: str,
                      dead: set[str]) -> list[str]:
    """Docker's view: the addresses of the living nodes whose web container runs healthy."""
    address_of = {cluster.node_name(i): cluster.node_address(i) for i in range(1, cluster.nodes + 1)}
    found = {address_of[c.labels[labels.NODE]] for c in web_containers(client, cluster, task_id)
             if c.labels[labels.NODE] not in dead
             and (c.attrs["State"].get("Health") or {}).get("Status") == "healthy"}
    return sorted(found, key=lambda a: tuple(map(int, a.split("."))))


def test_a_service_name_lists_the_healthy_nodes_and_follows_a_node_loss(cluster_factory: Any,
                                                                        docker_client: docker.DockerClient,
                                                                        busybox_image: str) -> None:
    cluster: LocalCluster = cluster_factory(4)
    name = f"web.shop.{cluster.config.suffix}"
    job = cluster.client().submit(web_job(busybox_image), source="shop.yaml")
    task_id = job["tasks"][0]["id"]
    before = wait_until(lambda: (found := healthy_addresses(docker_client, cluster, task_id, set())) and
                        len(found) == 3 and found, 90, "3 healthy web containers on 3 nodes", interval=0.3)
    servers = [cluster.dns_address] + [cluster.node_address(i) for i in range(1, cluster.nodes + 1)]
    wait_until(lambda: all(ask(cluster, s, name)[0] == before for s in servers), 10,
               f"every cluster DNS server to answer {before} for {name}", interval=0.1)
    assert all(ttls == [0] for ttls in (ask(cluster, s, name)[1] for s in servers))

    master = cluster.wait_master()
    victim = next(a for a in before if a != master)  # a node that runs web (not the master: one failover at a time)
    victim_node = cluster.node_name(cluster.index_of(victim))
    old_ids = {c.id for c in web_containers(docker_client, cluster, task_id)}
    # The victim's instance: its replacement is a new container of that instance. Another instance's
    # container restarted meanwhile (an unhealthy probe on a loaded machine) is not it.
    lost = {c.labels[labels.INSTANCE] for c in web_containers(docker_client, cluster, task_id)
            if c.labels[labels.NODE] == victim_node}
    cluster.kill_node(cluster.index_of(victim))
    killed_at = time.time()

    healthy_at: float | None = None  # the replacement's first passing probe, as Docker logged it
    answered_at: float | None = None  # when the cluster DNS first answered the new set
    expected: list[str] = []
    seen: list[tuple[float, list[str]]] = []
    deadline = time.monotonic() + MAX_SECONDS
    while time.monotonic() < deadline and answered_at is None:
        if healthy_at is None:
            for container in web_containers(docker_client, cluster, task_id):
                health = container.attrs["State"].get("Health") or {}
                if (container.id not in old_ids and container.labels[labels.INSTANCE] in lost
                        and health.get("Status") == "healthy"):
                    healthy_at = min(docker_time(p["End"]) for p in health["Log"] if p["ExitCode"] == 0)
                    expected = healthy_addresses(docker_client, cluster, task_id, {victim_node})
        answer = ask(cluster, cluster.dns_address, name)[0]
        if not seen or seen[-1][1] != answer:
            seen.append((time.time(), answer))
        if healthy_at is not None and answer == expected:
            answered_at = seen[-1][0]  # when this answer was first seen
        time.sleep(POLL)
    print(f"answers after the kill: {[(round(t - killed_at, 2), a) for t, a in seen]}")
    assert healthy_at is not None, f"no replacement turned healthy within {MAX_SECONDS} s"
    assert answered_at is not None, f"{name} never answered {expected}; answers: {seen}"
    lag = answered_at - healthy_at
    print(f"replacement healthy {healthy_at - killed_at:.2f} s after the kill; {name} answered the new set "
          f"{expected} {lag:.2f} s after that")
    assert victim not in expected and len(expected) == 3, [
        (c.labels[labels.NODE], c.labels[labels.INSTANCE], c.status,
         (c.attrs["State"].get("Health") or {}).get("Status")) for c in web_containers(docker_client, cluster, task_id)]
    assert lag <= 1.0
    for server in servers:  # every living DNS server agrees
        if server != victim:
            wait_until(lambda s=server: ask(cluster, s, name)[0] == expected, 2, f"{server} to answer {expected}")

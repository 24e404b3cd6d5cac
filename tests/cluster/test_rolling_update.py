"""Rolling updates on a real local cluster (issue 16): busybox httpd behind a published port goes from
content version 1 to 2 with no failed request; an update whose health check fails rolls back by itself;
an update whose master dies midway completes under the new master.

Ports on a local cluster: every node is its own 127.0.1.N address on one machine, and a slave binds a
published port to its node's address when the spec names no host_ip (see slave/runner/create_args.py),
so three replicas publish the same host port, one per node address. There is no routing mesh: the
client is given the three node addresses, as a client resolving a service name to several addresses
is, and like curl with such a name it moves to the next address when one refuses or drops a
connection before answering. A request fails when no address answers it with a whole 200 of version 1
or 2; the test counts those (none allowed), and states how often a request moved on.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
import requests

from taskorg.devtools.localcluster import LocalCluster
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster
GAP = 0.05  # seconds between requests
MAX_REQUESTS = 6000  # bounded in count as in time
MAX_SECONDS = 300.0  # beyond the update's own budget (120 s) and the final health wait (60 s)


def web_spec(version: str, image: str, port: int | None = None, check: str = "/index.html",
             failure_action: str = "rollback") -> str:
    ports = f"    ports: ['{port}:80']\n" if port else ""
    return (f"job: web\ntasks:\n  - name: web\n    image: {image}\n    replicas: 3\n    restart: always\n"
            f"    command: [sh, -c, 'mkdir -p /www && echo version-{version} > /www/index.html && "
            f"exec httpd -f -p 80 -h /www']\n{ports}"
            f"    stop_grace_period: 1s\n"
            f"    healthcheck: {{test: [CMD, wget, -q, -O, /dev/null, 'http://127.0.0.1{check}'], interval: 0.5s, "
            f"timeout: 2s, retries: 2}}\n"
            f"    update_config: {{parallelism: 1, monitor: 1s, delay: 0.5s, failure_action: {failure_action}}}\n"
            f"    rollback_config: {{parallelism: 0, monitor: 0s}}\n")


def free_port(addresses: list[str]) -> int:
    """A port free on every node address (tried by binding it on each)."""
    for port in range(18000, 19000):
        try:
            for address in addresses:
                with socket.socket() as probe:
                    probe.bind((address, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port in 18000-18999 on the node addresses")


class Prober(threading.Thread):
    """A bounded request loop against the service on every node address (see the module's docstring)."""

    def __init__(self, addresses: list[str], port: int) -> None:
        super().__init__(daemon=True)
        self.urls = [f"http://{a}:{port}/index.html" for a in addresses]
        self.stop_event = threading.Event()
        self.session = requests.Session()
        self.bodies: list[str] = []
        self.failures: list[str] = []
        self.moved_on = 0
        self.ran_out = False  # stopped by its own bound, not by the test

    def one(self, turn: int) -> None:
        problems = []
        for n in range(len(self.urls)):
            url = self.urls[(turn + n) % len(self.urls)]
            try:
                answer = self.session.get(url, timeout=(0.5, 2.0))
            except (requests.ConnectionError, requests.Timeout) as exc:
                # refused, dropped or silent past the timeout (a container stopping mid-request on a loaded
                # machine): the next address. A Timeout escaped here once and ended the request loop.
                problems.append(f"{url}: {type(exc).__name__}")
                self.moved_on += 1
                continue
            except requests.RequestException as exc:
                self.failures.append(f"{url}: {type(exc).__name__}: {exc}"[:200])
                return
            if answer.status_code != 200 or answer.text.strip() not in ("version-1", "version-2"):
                self.failures.append(f"{url}: {answer.status_code} {answer.text[:40]!r}")
            else:
                self.bodies.append(answer.text.strip())
            return
        self.failures.append("no address answered: " + "; ".join(problems))

    def run(self) -> None:
        started = time.monotonic()
        for turn in range(MAX_REQUESTS):
            if self.stop_event.is_set():
                return
            if time.monotonic() - started > MAX_SECONDS:
                self.ran_out = True
                return
            self.one(turn)
            time.sleep(GAP)


def update_of(cluster: LocalCluster, job_id: str) -> dict[str, Any]:
    return cluster.client().job(job_id)["update"] or {}


def revisions(cluster: LocalCluster, task_id: str) -> list[tuple[str, int]]:
    return [(i["status"], i["revision"]) for i in cluster.client().task(task_id)["instances"]
            if i["status"] not in ("cancelled",)]


def wait_healthy(cluster: LocalCluster, task_id: str, revision: int, timeout: float = 60) -> None:
    def all_healthy() -> bool:
        found = cluster.client().task(task_id)["instances"]
        live = [i for i in found if i["status"] not in ("cancelled",)]
        return len(live) == 3 and all(i["status"] == "running" and i["health"] == "healthy"
                                      and i["revision"] == revision for i in live)
    wait_until(all_healthy, timeout, f"3 healthy instances on revision {revision}", interval=0.3)


def test_a_rolling_update_serves_every_request_and_ends_on_the_new_content(cluster: LocalCluster,
                                                                            busybox_image: str) -> None:
    addresses = [cluster.node_address(n) for n in range(1, 4)]
    port = free_port(addresses)
    client = cluster.client()
    job = client.submit(web_spec("1", busybox_image, port), source="web.yaml")
    task_id = job["tasks"][0]["id"]
    try:
        wait_healthy(cluster, task_id, 1)
        prober = Prober(addresses, port)
        prober.start()
        time.sleep(1.0)
        answer = client.submit(web_spec("2", busybox_image, port), source="web.yaml", update=True)
        assert answer["job"] == job["job"] and answer["update"] == "rolling"
        started = time.monotonic()
        wait_until(lambda: update_of(cluster, job["job"]).get("state") == "completed", 120, "the update to complete",
                   interval=0.3)
        took = time.monotonic() - started
        wait_healthy(cluster, task_id, 2)
        time.sleep(1.0)
        prober.stop_event.set()
        prober.join(10)
        print(f"update took {took:.1f} s; {len(prober.bodies)} requests answered, {prober.moved_on} moved on to "
              f"another address, {len(prober.failures)} failed")
        assert prober.failures == []
        assert not prober.ran_out, f"the request loop ran out of its {MAX_SECONDS:.0f} s before the update ended"
        assert "version-1" in prober.bodies and prober.bodies[-1] == "version-2"
        assert len(prober.bodies) > 50
        for url in prober.urls:  # every node serves the new content at the end
            assert requests.get(url, timeout=2).text.strip() == "version-2"
        progress = update_of(cluster, job["job"])["tasks"][0]
        assert (progress["previous"], progress["revision"], progress["batch"]) == (1, 2, 3)
    finally:
        client.cancel(task_id)


def test_an_update_whose_health_check_fails_rolls_back_by_itself(cluster: LocalCluster, busybox_image: str) -> None:
    client = cluster.client()
    job = client.submit(web_spec("1", busybox_image).replace("job: web", "job: web-bad"), source="web.yaml")
    task_id = job["tasks"][0]["id"]
    try:
        wait_healthy(cluster, task_id, 1)
        broken = web_spec("2", busybox_image, check="/missing").replace("job: web", "job: web-bad")
        assert client.submit(broken, source="web.yaml")["update"] == "rolling"
        wait_until(lambda: update_of(cluster, job["job"]).get("state") == "rolled_back", 120,
                   "the failed update to roll back", interval=0.3)
        wait_healthy(cluster, task_id, 1)
        events = [h["event"] for h in client.task(task_id)["history"]]
        assert "update_failed" in events and "rollback_completed" in events
    finally:
        client.cancel(task_id)


def test_an_update_completes_under_the_new_master(cluster_factory: Any, busybox_image: str) -> None:
    cluster: LocalCluster = cluster_factory(3)
    client = cluster.client()
    job = client.submit(web_spec("1", busybox_image), source="web.yaml")
    task_id = job["tasks"][0]["id"]
    wait_healthy(cluster, task_id, 1)
    client.submit(web_spec("2", busybox_image), source="web.yaml")
    wait_until(lambda: (update_of(cluster, job["job"]).get("tasks") or [{}])[0].get("batch", 0) >= 2, 60,
               "the second batch", interval=0.1)
    old_master = cluster.wait_master()
    before = {revision for _, revision in revisions(cluster, task_id)}
    cluster.kill_node(cluster.index_of(old_master))
    assert 1 in before  # midway: old instances still ran when the master died
    new_master = wait_until(lambda: (m := cluster.wait_master(timeout=20)) != old_master and m, 30, "a new master")
    wait_until(lambda: update_of(cluster, job["job"]).get("state") == "completed", 120,
               "the update to complete under the new master", interval=0.3)
    wait_healthy(cluster, task_id, 2, timeout=90)
    print(f"master {old_master} killed midway; {new_master} completed the update")

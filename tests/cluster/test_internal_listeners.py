"""The internal listeners on a real local cluster (TLS, real certificates and tokens, loopback).

Proves: the master and the DNS service serve their cluster-internal routes
only on their internal ports and their client routes only on the public
ones; a user token is refused on an internal port; and 50 clients following
the master's event stream at once neither cost the master its lease (same
master, same epoch) nor stop submissions from being acknowledged.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests

from taskorg.client import Client
from taskorg.devtools.localcluster import LocalCluster
from taskorg.master.api import MAX_FOLLOWERS
from taskorg.security import tls
from tests.cluster.test_tls import tokens  # noqa: F401 (the read, submit and admin tokens fixture)

pytestmark = pytest.mark.cluster

FOLLOWERS = 50
FOLLOW_SECONDS = 12.0
JOB = "name: follow-probe-{n}\nimage: taskorg/busybox:latest\ncommand: ['sleep', '30']\n" \
      "resources: {{cpus: 0.01, memory: 8M}}\n"


def raw(cluster: LocalCluster, host: str, node_certificate: bool) -> requests.Session:
    """A session that calls exactly the URL given (no routing): as a node (the harness certificate)
    or as a user (the cluster CA only)."""
    session = requests.Session()
    session.trust_env = False
    if node_certificate:
        tls.mount(session, host)
    else:
        session.verify = str(cluster.ca_file)
    return session


def test_each_port_serves_only_its_own_routes(cluster: LocalCluster, tokens: dict[str, str]) -> None:
    config = cluster.config
    master = cluster.wait_master()
    node = raw(cluster, master, node_certificate=True)
    person = raw(cluster, master, node_certificate=False)
    public, internal = config.url(master, config.master_port), config.url(master, config.master_internal_port)
    dns_public = config.url(cluster.dns_address, config.dns_api_port)
    dns_internal = config.url(cluster.dns_address, config.dns_internal_port)

    # A node certificate opens internal routes on the internal port only.
    assert node.get(f"{internal}/v1/replica", timeout=5).status_code == 200
    refused = node.get(f"{public}/v1/replica", timeout=5)
    assert refused.status_code == 404 and f"internal port ({config.master_internal_port})" in refused.json()["error"]
    refused = node.post(f"{dns_public}/v1/heartbeat", json={"node": "node1"}, timeout=5)
    assert refused.status_code == 404 and "cluster-internal" in refused.json()["error"]

    # A user token: client routes on the public port; nothing on an internal one.
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    assert person.get(f"{public}/v1/status", headers=admin, timeout=5).status_code == 200
    assert person.get(f"{dns_public}/v1/members", headers=admin, timeout=5).status_code == 200
    for url, method, path in ((internal, "GET", "/v1/status"), (internal, "POST", "/v1/role"),
                              (internal, "GET", "/metrics"), (dns_internal, "GET", "/v1/members"),
                              (dns_internal, "POST", "/v1/heartbeat")):
        answer = person.request(method, f"{url}{path}", headers=admin, json={}, timeout=5)
        assert answer.status_code in (403, 404), (url, path, answer.status_code, answer.text)
        assert "node certificate" in answer.json()["error"] or "client endpoints are served on port" \
            in answer.json()["error"], (url, path)
    # The probes answer on both.
    assert person.get(f"{internal}/healthz", timeout=5).status_code == 200


class Follower(threading.Thread):
    """One client following the master's event stream until told to stop, reconnecting as a
    browser's EventSource does (after Retry-After when the master has every follower it holds)."""

    def __init__(self, url: str, token: str, ca_file: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.stop = url, stop
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = ca_file
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.streamed = self.busy = self.failures = 0
        self.last_failure = ""
        self.following = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + FOLLOW_SECONDS + 30  # bounded whatever happens
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                with self.session.get(self.url, stream=True, timeout=(2, 5)) as answer:
                    if answer.status_code == 503:
                        self.busy += 1
                        self.stop.wait(float(answer.headers.get("Retry-After", "1")))
                        continue
                    answer.raise_for_status()
                    self.streamed += 1
                    self.following.set()
                    for _ in answer.iter_lines():
                        if self.stop.is_set() or time.monotonic() > deadline:
                            break
                    self.following.clear()
            except requests.RequestException as exc:
                self.failures += 1
                self.last_failure = f"{type(exc).__name__}: {exc}"
                self.following.clear()
                self.stop.wait(0.5)
        self.session.close()


def master_view(client: Client) -> dict[str, Any]:
    return dict(client.dns_call("GET", "/v1/master"))


def test_fifty_event_followers_keep_the_lease_and_submissions_go_on(cluster: LocalCluster,
                                                                   tokens: dict[str, str]) -> None:
    config = cluster.config
    master = cluster.wait_master()
    admin = Client(config, tokens["admin"], failover_wait=3)
    before = master_view(admin)
    stop = threading.Event()
    followers = [Follower(config.url(master, config.master_port) + "/v1/events/stream", tokens["read"],
                          str(cluster.ca_file), stop) for _ in range(FOLLOWERS)]
    submitter = Client(config, tokens["submit"], failover_wait=0)
    acknowledged, latencies, most_following = [], [], 0
    for follower in followers:
        follower.start()
    started = time.monotonic()
    try:
        number = 0
        while time.monotonic() - started < FOLLOW_SECONDS:
            most_following = max(most_following, sum(f.following.is_set() for f in followers))
            sent = time.monotonic()
            answer = submitter.submit(JOB.format(n=number), source=f"follow-{number}.yaml")
            latencies.append(time.monotonic() - sent)
            acknowledged.extend(task["id"] for task in answer["tasks"])
            number += 1
            time.sleep(0.5)
    finally:
        stop.set()
        for follower in followers:
            follower.join(10)
    after = master_view(admin)
    cancelled = [admin.cancel(task) for task in acknowledged]
    print(f"\n{FOLLOWERS} followers for {FOLLOW_SECONDS:.0f} s: at most {most_following} streaming at once "
          f"(cap {MAX_FOLLOWERS}); {sum(f.streamed for f in followers)} streams, "
          f"{sum(f.busy for f in followers)} answered busy, {sum(f.failures for f in followers)} failed "
          f"({next((f.last_failure for f in followers if f.last_failure), 'none')}); "
          f"{len(acknowledged)} submissions acknowledged, slowest {max(latencies):.2f} s; "
          f"epoch {before.get('epoch')} -> {after.get('epoch')}, master {before.get('master')} -> {after.get('master')}")
    assert (after.get("master"), after.get("epoch")) == (before.get("master"), before.get("epoch"))
    assert len(acknowledged) >= FOLLOW_SECONDS / 2 * 0.8  # one every ~0.5 s: none refused, none starved
    assert 0 < most_following <= MAX_FOLLOWERS
    assert sum(f.busy for f in followers) > 0  # the cap was reached: the rest were told to come back
    assert len(cancelled) == len(acknowledged)

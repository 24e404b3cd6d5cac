"""Heartbeats as sealed datagrams on a real local cluster (issue 14, cheap liveness).

Proves: once a node knows the arbiter, its heartbeats go as datagrams and
none over HTTPS; a datagram sealed with another key is dropped unanswered;
and a valid heartbeat datagram sent again (a replay) renews nothing.
"""

from __future__ import annotations

import re
import socket
import time

import pytest
import requests

from taskorg.client import Client
from taskorg.devtools.localcluster import LocalCluster
from taskorg.net.datagrams import REPLY, REQUEST, datagram_key, nonce, seal, unseal
from taskorg.protocol import BeatDatagram, BeatReply, Heartbeat
from taskorg.security import tls
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster


def scrape(cluster: LocalCluster, address: str, port: int) -> str:
    session = requests.Session()
    session.trust_env = False
    tls.mount(session, address)  # the harness's node certificate opens /metrics
    return session.get(f"{cluster.config.url(address, port)}/metrics", timeout=5).text


def sample(text: str, name: str, label: str) -> float:
    found = re.search(rf'^{name}\{{[^}}]*"{label}"[^}}]*\}} (\S+)$', text, re.M)
    assert found, f"{name}{{{label}}} not in the scrape"
    return float(found.group(1))


def answers(cluster: LocalCluster, index: int) -> tuple[float, float]:
    text = scrape(cluster, cluster.node_address(index), cluster.config.node_port)
    return (sample(text, "taskorg_node_heartbeat_answers_total", "datagram"),
            sample(text, "taskorg_node_heartbeat_answers_total", "https"))


def arbiter_of(cluster: LocalCluster) -> str:
    return str(Client(cluster.config, cluster.secret).dns_call("GET", "/v1/members")["arbiter"])


def exchange(address: str, port: int, data: bytes, key: bytes, timeout: float = 1.0) -> BeatReply | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(timeout)
        sock.sendto(data, (address, port))
        try:
            return unseal(key, REPLY, sock.recv(4096), BeatReply)
        except socket.timeout:
            return None


def test_heartbeats_go_as_datagrams(cluster: LocalCluster) -> None:
    """On a quiet cluster every heartbeat goes as a datagram. A fresh cluster is not quiet at once:
    the arbiter may still move (the witness is offered the role), and a reply later than 0.2 s on a
    loaded start rests a node's datagram path for 5 s (HTTPS meanwhile, by design). So it looks at
    2 s windows, at most five, until one is quiet; every window is shown if none is."""
    cluster.wait_master()
    windows = []
    for _ in range(5):
        before = {i: answers(cluster, i) for i in (1, 2, 3)}
        time.sleep(2.0)
        after = {i: answers(cluster, i) for i in (1, 2, 3)}
        counted = {i: (after[i][0] - before[i][0], after[i][1] - before[i][1]) for i in (1, 2, 3)}
        windows.append(counted)
        # Heartbeats every 0.1 s: about 20 in 2 s; every one by datagram on a quiet cluster.
        if all(datagrams >= 6 and https <= 1 for datagrams, https in counted.values()):
            return
    raise AssertionError(f"no 2 s window with every node's heartbeats as datagrams: "
                         f"{[{i: f'{d} datagrams, {h} https' for i, (d, h) in w.items()} for w in windows]}")


def test_a_foreign_or_replayed_datagram_renews_nothing(cluster: LocalCluster) -> None:
    config = cluster.config
    cluster.wait_master()
    arbiter = arbiter_of(cluster)
    key = datagram_key(cluster.secret)
    beat = Heartbeat(node="node3", address=cluster.node_address(3))

    # Sealed with another cluster's key: no answer at all, and counted as dropped.
    def dropped() -> float:
        return sample(scrape(cluster, arbiter, config.dns_api_port), "taskorg_dns_heartbeat_datagrams_total",
                      "dropped")
    dropped_before = dropped()
    foreign = seal(datagram_key("another cluster"), REQUEST, BeatDatagram(beat=beat, ask=nonce()))
    assert exchange(arbiter, config.beat_port, foreign, key, timeout=0.5) is None
    wait_until(lambda: dropped() >= dropped_before + 1, 5, "the foreign datagram to be counted as dropped")

    # A valid datagram answered once (node3's own heartbeats race for the same challenge: ask again)...
    proven: bytes | None = None
    for _ in range(50):
        challenge = exchange(arbiter, config.beat_port, seal(key, REQUEST, BeatDatagram(beat=beat, ask=nonce())), key)
        assert challenge is not None and challenge.status == 401
        candidate = seal(key, REQUEST, BeatDatagram(beat=beat, ask=nonce(), proof=challenge.challenge))
        reply = exchange(arbiter, config.beat_port, candidate, key)
        assert reply is not None
        if reply.status == 200:
            assert reply.answer is not None and reply.answer.arbiter == arbiter
            proven = candidate
            break
    assert proven is not None, "no heartbeat datagram was answered in 50 tries"
    # ... and then sent again as it was: challenged, no answer, no lease.
    replayed = exchange(arbiter, config.beat_port, proven, key)
    assert replayed is not None and (replayed.status, replayed.answer) == (401, None)

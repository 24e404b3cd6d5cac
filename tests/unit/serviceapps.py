"""Each service's real Flask app, in process, on loopback settings: for the OpenAPI tests.

The master runs on the tick harness's real engine and SQLite store; the DNS
service is a lone consensus voter (real PySyncObj on a loopback address)
that has taken over as arbiter; the slave runs the stand-in runner with a
real epoch fence file; the node service is built but not started; the
webview runs on the fake cluster of its unit tests. Every address a service
might call (the DNS service, a master to forward to) is a free loopback
address where nothing listens, so a call is refused at once and no packet
leaves 127.0.0.0/8.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import Any, Callable, Iterator

from flask import Flask

from taskorg.config import Config, load_config
from tests.helpers import free_loopback_block, wait_until

SECRET = "openapi-test-secret-3f9a1c2b7d"


def free_tcp_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def loopback_config(tmp_path: Path, **settings: Any) -> Config:
    address = free_loopback_block(start=200)
    return load_config(overrides={"state_dir": str(tmp_path), "cluster": "openapi", "dns_address": address,
                                  "raft_port": free_tcp_port(address), **settings}, environ={})


@contextlib.contextmanager
def master_app(tmp_path: Path) -> Iterator[Flask]:
    from taskorg.master.api import create_app
    from tickharness import TickHarness

    harness = TickHarness(tmp_path, settings={"dns_address": free_loopback_block(start=200)})
    harness.engine.secret = SECRET
    harness.submit("job: pipe\ntasks:\n  - name: a\n    image: busybox\n  - name: b\n    image: busybox\n"
                   "    after: [a]\n")
    harness.tick()
    try:
        yield create_app(harness.engine)
    finally:
        harness.close()


@contextlib.contextmanager
def dns_service(tmp_path: Path) -> Iterator[Any]:
    """A real DNS service, its lone voter the arbiter."""
    from taskorg.dns.service import DnsService

    service = DnsService(loopback_config(tmp_path), SECRET)

    def took_over() -> bool:
        service.tick()
        return service.is_arbiter()

    try:
        wait_until(took_over, 15, "the lone voter to take over as arbiter", interval=0.05)
        yield service
    finally:
        service.registry.close()


@contextlib.contextmanager
def dns_app(tmp_path: Path) -> Iterator[Flask]:
    from taskorg.dns.api import create_app

    with dns_service(tmp_path) as service:
        service.register("aa:01@127.0.0.2", "127.0.0.2", {"zone": "a"})
        yield create_app(service)


@contextlib.contextmanager
def slave_app(tmp_path: Path) -> Iterator[Flask]:
    from taskorg.slave.fence import EpochFence
    from taskorg.slave.service import create_app, runner_site
    from taskorg.slave.standin import StandInRunner

    config = loopback_config(tmp_path, runner="standin")
    runner = StandInRunner(config.cluster, "node1", address=config.node_address,
                           site=runner_site(config, "node1"))
    try:
        yield create_app(config, SECRET, runner, EpochFence(tmp_path / "epoch"))
    finally:
        runner.close()


@contextlib.contextmanager
def node_app(tmp_path: Path) -> Iterator[Flask]:
    from taskorg.node.service import NodeService, create_app

    yield create_app(NodeService(loopback_config(tmp_path), SECRET))


@contextlib.contextmanager
def webview_app(tmp_path: Path) -> Iterator[Flask]:
    from taskorg.webview import create_app
    from tests.webview.fakes import FakeCluster

    fake = FakeCluster()
    yield create_app(Config(dns_address=free_loopback_block(start=200)), SECRET,
                     api_factory=lambda config, secret: fake)


APPS: dict[str, Callable[[Path], contextlib.AbstractContextManager[Flask]]] = {
    "dns": dns_app, "master": master_app, "slave": slave_app, "node": node_app, "webview": webview_app}

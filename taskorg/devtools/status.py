"""Asking a running local cluster how it is: polling until a check holds, the DNS service and
dnsmasq answering, an active master, and the summary `taskorg cluster up|status` prints.
Apart from `LocalCluster` because it only reads a cluster through its client config."""

from __future__ import annotations

import time
from typing import Any, Callable

from taskorg.client import Client, DnsUnavailable
from taskorg.config import Config
from taskorg.net.client import ServiceClient, ServiceError, ServiceUnavailable
from taskorg.net.resolve import ResolveError, resolve_at, resolve_master

from .errors import ClusterError


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> None:
    """Poll `check` (an exception counts as not yet) until it is true; ClusterError after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise ClusterError(f"timed out after {timeout:g} s waiting for {what}")


def dns_answers(config: Config, secret: str, dns_address: str) -> bool:
    """The DNS node's DNS service answers its API and its dnsmasq answers for its own name."""
    dns = ServiceClient(config.dns_api_url, secret, timeout=1)
    try:
        dns.get("/v1/master")
    finally:
        dns.close()
    return resolve_at(config, dns_address, f"dns.{config.suffix}", timeout=0.3) == [dns_address]


def active_master(config: Config, secret: str) -> str | None:
    """The address the master name resolves to, if an active master answers there."""
    address = resolve_master(config, timeout=0.3)
    client = ServiceClient(config.url(address, config.master_port), secret, timeout=1)
    try:
        return address if client.get("/v1/status")["active"] else None
    finally:
        client.close()


def wait_master(config: Callable[[], Config], secret: Callable[[], str], timeout: float) -> str:
    """The address of an active master that answers the API (the config and secret read at each try)."""
    found: list[str | None] = []

    def active() -> bool:
        found.append(active_master(config(), secret()))
        return found[-1] is not None

    wait_until(active, timeout, "an active master")
    return str(found[-1])


def all_reporting(client: Client, nodes: int) -> bool:
    """At least `nodes` members, every one alive and sending telemetry to the master."""
    members = client.members()["members"]
    return len(members) >= nodes and all(m["alive"] and m["telemetry"] for m in members)


def summary(config: Config, client: Client, name: str, workdir: str, dns_address: str, webview: bool,
            client_config: str) -> dict[str, Any]:
    """The cluster as `taskorg cluster up|status` shows it: its master, API, members and webviews."""
    try:
        master = resolve_master(config)
    except ResolveError:
        master = None
    try:
        members = client.dns_members()["members"]
    except (ServiceError, ServiceUnavailable, DnsUnavailable):
        members = []
    return {
        "name": name, "workdir": workdir, "dns": dns_address,
        "suffix": config.suffix, "master": master,
        "api": config.url(config.master_name, config.master_port) if master else None,
        "members": [{"node": m["node"], "address": m["address"], "role": m["role"], "alive": m["alive"],
                     "webview": config.url(m['address'], config.webview_port) if webview else None}
                    for m in members],
        "client_config": client_config,
    }

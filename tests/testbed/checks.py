"""Checks shared by the testbed tests: tools present, DNS answers, units healthy."""

from __future__ import annotations

import os
import shutil

import dns.message
import dns.query
import dns.rdatatype
import pytest

from .hosts import Host, Testbed

NODE_UNITS = ["docker", "taskorg-node", "taskorg-master", "taskorg-slave", "taskorg-webview"]
DNS_UNITS = ["dnsmasq", "taskorg-dns"]


def require_tools() -> None:
    missing = [tool for tool in ("docker", "debootstrap", "ansible-playbook", "ssh", "ssh-keygen")
               if shutil.which(tool) is None]
    problem = (f"missing tools: {', '.join(missing)} (scripts/setup.sh with TASKORG_SETUP_EXTRAS=test installs them)"
               if missing else ("the testbed needs root" if os.geteuid() != 0 else ""))
    if problem:
        # In CI a missing tool is a broken setup, never a quiet skip.
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)


def resolve(bed: Testbed, name: str, server: str | None = None) -> list[str]:
    """A records of `name` at the DNS host's dnsmasq (or at `server`'s), asked directly (no cache)."""
    query = dns.message.make_query(name, dns.rdatatype.A)
    response = dns.query.udp(query, server or bed.dns_host.address, port=53, timeout=1.0)
    return sorted(item.address for rrset in response.answer if rrset.rdtype == dns.rdatatype.A for item in rrset)


def units_state(bed: Testbed, host: Host) -> dict[str, str]:
    """unit -> "active", or its state and how often systemd restarted it (a crash loop looks active)."""
    units = DNS_UNITS if host.role == "dns" else NODE_UNITS
    out = bed.exec(host.name, "systemctl show --property=ActiveState,NRestarts " + " ".join(units), check=False)
    states = {}
    for unit, block in zip(units, out.strip().split("\n\n")):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        active, restarts = props.get("ActiveState", "?"), props.get("NRestarts", "?")
        states[unit] = "active" if active == "active" and restarts == "0" else f"{active}, {restarts} restarts"
    return states


def assert_all_units_active(bed: Testbed) -> None:
    states = {h.name: units_state(bed, h) for h in bed.hosts.values()}
    inactive = {name: {u: s for u, s in units.items() if s != "active"} for name, units in states.items()}
    inactive = {name: units for name, units in inactive.items() if units}
    assert not inactive, f"units not active (or restarted by systemd after a crash): {inactive}"

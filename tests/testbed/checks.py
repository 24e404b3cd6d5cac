"""Checks shared by the testbed tests: tools present, DNS answers, units healthy."""

from __future__ import annotations

import json
import os
import shlex
import shutil

import dns.message
import dns.query
import dns.rdatatype
import pytest

from .hosts import Host, Testbed, docker

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


# ---- issue 15/17: services without root, the firewall, the watchdog ------------------------------------------

TASKORG_UNITS = {"dns": ["taskorg-dns"],
                 "node": ["taskorg-dns", "taskorg-node", "taskorg-master", "taskorg-slave", "taskorg-webview"]}


def unit_users(bed: Testbed, host: Host) -> dict[str, str]:
    """taskorg unit -> the user its main process runs as ("-" when it has none)."""
    units = TASKORG_UNITS[host.role]
    script = ("for u in " + " ".join(units) + "; do pid=$(systemctl show -p MainPID --value $u); "
              "echo \"$u $(ps -o user= -p $pid 2>/dev/null || echo -)\"; done")
    return dict(line.split(None, 1) for line in bed.exec(host.name, script).splitlines() if line.strip())


def main_pid(bed: Testbed, host: Host, unit: str) -> int:
    return int(bed.exec(host.name, f"systemctl show -p MainPID --value {unit}").strip() or 0)


# Run with python3 on a testbed host or an outsider container: TCP connects to the ports, one DNS query
# (UDP) for a name at the DNS address. Prints {port: "open" | why not, "dns": "answered" | why not}.
REACH_PROBE = r"""
import json, socket, struct, sys
host, ports, dns, name = sys.argv[1], [int(p) for p in sys.argv[2].split(",")], sys.argv[3], sys.argv[4]
out = {}
for port in ports:
    sock = socket.socket()
    sock.settimeout(2.0)
    try:
        sock.connect((host, port))
        out[port] = "open"
    except OSError as exc:
        out[port] = type(exc).__name__
    finally:
        sock.close()
query = (struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
         + b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
         + struct.pack(">HH", 1, 1))
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.settimeout(2.0)
try:
    udp.sendto(query, (dns, 53))
    udp.recvfrom(512)
    out["dns"] = "answered"
except OSError as exc:
    out["dns"] = type(exc).__name__
print(json.dumps(out))
"""


def reach_from_host(bed: Testbed, source: Host, target: Host, ports: list[int], name: str) -> dict[str, str]:
    args = " ".join(shlex.quote(a) for a in [REACH_PROBE, target.address, ",".join(map(str, ports)),
                                              bed.dns_host.address, name])
    return json.loads(bed.exec(source.name, f"python3 -c {args}", timeout=60))


def reach_from_outsider(bed: Testbed, target: Host, ports: list[int], name: str) -> dict[str, str]:
    """The same probe from a container on the testbed network that is not in the inventory."""
    labels = [arg for label in bed.labels for arg in ("--label", label)]
    out = docker("run", "--rm", "--network", bed.network, *labels, "--entrypoint", "python3", bed.image,
                 "-c", REACH_PROBE, target.address, ",".join(map(str, ports)), bed.dns_host.address, name,
                 timeout=120)
    return json.loads(out)

"""The testbed's known_hosts: each host's SSH keys, read through docker, never over the network.

The playbook and the harness connect with StrictHostKeyChecking=yes against
this file alone, as an operator's controller does (docs/provisioning.md). The
keys come from each container's /etc/ssh by `docker exec`, a channel nobody on
the test network can answer for, which is what an operator does by reading
the fingerprint on the machine's own console before trusting it (ssh-keyscan
would trust whoever answers first).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterable

PUBLIC_KEYS = "cat /etc/ssh/ssh_host_*_key.pub"


def _exec(container: str, command: str) -> str:
    result = subprocess.run(["docker", "exec", container, "sh", "-c", command], capture_output=True, text=True,
                            timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"docker exec {container} {command!r} failed: {result.stderr.strip()}")
    return result.stdout


def host_keys(container: str) -> list[str]:
    """'<type> <base64>' of every host key the container's sshd offers."""
    keys = [" ".join(line.split()[:2]) for line in _exec(container, PUBLIC_KEYS).splitlines() if line.strip()]
    if not keys:
        raise RuntimeError(f"{container} has no SSH host key in /etc/ssh")
    return keys


def write_known_hosts(path: Path, hosts: Iterable[tuple[str, str]]) -> Path:
    """PATH = a known_hosts line per key of each (address, container)."""
    lines = [f"{address} {key}" for address, container in hosts for key in host_keys(container)]
    path.write_text("\n".join(lines) + "\n")
    return path


def replace_host_keys(container: str) -> None:
    """New host keys and sshd restarted: what a reinstalled machine, or another machine at its
    address, shows the controller."""
    _exec(container, "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && systemctl restart ssh")

"""The files a local cluster writes about itself: each machine's `taskorg.yaml` (checked as it is
written, so a bad setting fails naming its file) and `cluster.json`, the record of its processes
that a later `taskorg cluster down` reads. Also the layout check every such file relies on: the
cluster's addresses fit in the DNS node's loopback /24."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any

import yaml

from taskorg.config import load_config

from .errors import ClusterError

STATE_FILE = "cluster.json"


def check_layout(nodes: int, dns_address: str) -> None:
    """Refuse a node count or DNS address a local cluster cannot have, saying why."""
    if not 1 <= nodes <= 50:
        raise ClusterError(f"--nodes must be between 1 and 50, got {nodes}")
    address = ipaddress.ip_address(dns_address)
    if not address.is_loopback:
        raise ClusterError(f"a local cluster lives on loopback addresses (127.x.y.z), not {dns_address}")
    if int(address) % 256 + nodes > 254:
        raise ClusterError(f"{nodes} nodes do not fit after {dns_address} in its /24")


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=True))
    load_config(path)  # fail now, naming the file, if a setting is bad


def save_state(workdir: Path, state: dict[str, Any]) -> None:
    """Replace `cluster.json` atomically."""
    tmp = workdir / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, workdir / STATE_FILE)


def read_state(workdir: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((Path(workdir) / STATE_FILE).read_text()))
    except FileNotFoundError:
        raise ClusterError(f"no local cluster in {workdir} (start one with `taskorg cluster up`)") from None

"""What every CLI command shares: where the cluster is, its client, and the usage error.

Its own module so the command modules and `main` import it, never each other.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from taskorg.config import Config, load_config

SYSTEM_CONFIG = Path("/etc/taskorg/taskorg.yaml")


class UsageError(Exception):
    """Bad input from the user: exit 2."""


def client_config(args: argparse.Namespace) -> Config:
    """Where a client command finds the cluster: flags, env, system config, the local cluster."""
    from taskorg.devtools.localcluster import DEFAULT_DIR

    path = args.config or os.environ.get("TASKORG_CONFIG")
    if not path:
        for candidate in (SYSTEM_CONFIG, DEFAULT_DIR / "client.yaml"):
            if candidate.exists():
                path = str(candidate)
                break
    overrides: dict[str, Any] = {}
    if getattr(args, "dns", None):
        overrides["dns_address"] = args.dns
    if getattr(args, "secret_file", None):
        overrides["secret_file"] = args.secret_file
    return load_config(path, overrides=overrides)


def service_config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def make_client(args: argparse.Namespace) -> Any:
    """The master client for a command (`taskorg.client.Client`), from the flags and config."""
    from taskorg.client import Client

    return Client.from_config(client_config(args))

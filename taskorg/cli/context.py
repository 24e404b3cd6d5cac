"""What every CLI command shares: where the cluster is, its client, and the usage error.

Its own module so the command modules and `main` import it, never each other.
Where a client command finds its cluster, first found wins: `--config`,
`$TASKORG_CONFIG`, `--context` or `$TASKORG_CONTEXT`, the current context
(`taskorg context use`), `/etc/taskorg/taskorg.yaml` (a provisioned node),
the local cluster's `client.yaml`.
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


def contexts_dir() -> Path:
    """`~/.config/taskorg/contexts` (or under $XDG_CONFIG_HOME): one client config file per cluster."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "taskorg" / "contexts"


def context_path(name: str) -> Path:
    if not name or "/" in name or name.startswith(".") or len(name) > 64:
        raise UsageError(f"context name {name!r}: use letters, digits, '-' and '_' (at most 64)")
    return contexts_dir() / f"{name}.yaml"


def current_context() -> str | None:
    marker = contexts_dir() / "current"
    name = marker.read_text().strip() if marker.is_file() else ""
    return name or None


def config_path(args: argparse.Namespace) -> str | None:
    """The client config file this command uses (None: the built-in defaults)."""
    explicit = getattr(args, "config", None) or os.environ.get("TASKORG_CONFIG")
    if explicit:
        return str(explicit)
    named = getattr(args, "context", None) or os.environ.get("TASKORG_CONTEXT")
    if named:
        path = context_path(named)
        if not path.is_file():
            raise UsageError(f"no context named {named!r} (`taskorg context ls` lists them)")
        return str(path)
    current = current_context()
    if current and context_path(current).is_file():
        return str(context_path(current))
    from taskorg.devtools.localcluster import DEFAULT_DIR

    for candidate in (SYSTEM_CONFIG, DEFAULT_DIR / "client.yaml"):
        if candidate.exists():
            return str(candidate)
    return None


def client_config(args: argparse.Namespace) -> Config:
    overrides: dict[str, Any] = {}
    if getattr(args, "dns", None):
        overrides["dns_address"] = args.dns
    if getattr(args, "secret_file", None):
        overrides["secret_file"] = args.secret_file
    return load_config(config_path(args), overrides=overrides)


def service_config(args: argparse.Namespace) -> Config:
    return load_config(getattr(args, "config", None))


def make_client(args: argparse.Namespace) -> Any:
    """The master client for a command (`taskorg.client.Client`), from the flags and config."""
    from taskorg.client import Client

    return Client.from_config(client_config(args))

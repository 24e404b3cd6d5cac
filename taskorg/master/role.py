"""This master service's role: active or standby, under which epoch, until when.

The node service pushes the role with every lease renewal; `valid` checks the
lease deadline before every state change and every slave command, so a
master whose node service hangs still fences itself on time. A standby
answers "not the master" with where the master is, as far as it knows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from taskorg.config import Config
from taskorg.master.members import MemberCache
from taskorg.net.resolve import ResolveError, resolve_master


class NotMaster(Exception):
    """This master service is not (or no longer) the active master."""


@dataclass
class Role:
    active: bool = False
    epoch: int = 0
    lease_until: float = 0.0  # monotonic
    master: str | None = None
    master_address: str | None = None
    node: str | None = None

    def valid(self) -> bool:
        return self.active and time.monotonic() < self.lease_until


def named_master_by_dns(config: Config) -> bool:
    """Whether `master.<suffix>` names this node right now (the election's word, before our role)."""
    try:
        return resolve_master(config, timeout=0.3) == config.node_address
    except ResolveError:
        return False


def current_master(config: Config, role: Role, members: MemberCache) -> tuple[str | None, str | None]:
    """(node, address) of the master as far as this standby knows, else as DNS says now."""
    if role.master and role.master_address and role.master != role.node:
        return role.master, role.master_address
    try:
        address = resolve_master(config, timeout=0.3)
    except ResolveError:
        return None, None
    if address == config.node_address:
        return None, None
    node = next((m["node"] for m in members.members() if m["address"] == address), None)
    return node, address


def not_master_message(config: Config, node: str | None, address: str | None) -> str:
    if node and address:
        return f"not the master: the master is {node}.{config.suffix} ({address})"
    return "not the master: no master is active right now (an election may be under way)"


def wait_valid(role_of: Callable[[], Role], timeout: float) -> bool:
    """Wait (bounded) until the role is valid; True if it is."""
    deadline = time.monotonic() + timeout
    while not role_of().valid():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True

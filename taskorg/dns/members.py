"""A member of the cluster, as the registry holds it.

Its own module because both registries hand it out: the replicated one
(`taskorg.dns.replicated`) and the SQLite one an older cluster is carried
over from (`taskorg.dns.store`). Names are stable: an identity (MAC address,
or MAC@address where machines share a MAC, as loopback test nodes do) keeps
its node number forever.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Member:
    number: int
    identity: str
    address: str
    labels: dict[str, str]
    state: str  # active | draining | left

    @property
    def node(self) -> str:
        return f"node{self.number}"

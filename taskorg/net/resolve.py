"""Find the master the way any tool would: ask the cluster DNS for `master.<suffix>`.

Queries go straight to the cluster DNS server with dnspython: no system
resolver, no cache, so a rewritten record is seen on the next query.
"""

from __future__ import annotations

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import dns.rcode

from taskorg.config import Config


class ResolveError(Exception):
    """The cluster DNS did not answer, or had no record for the name."""


def resolve_all(config: Config, name: str, timeout: float = 0.5) -> list[str]:
    """Every A record for `name` at the cluster DNS server (a UDP query, no cache)."""
    query = dns.message.make_query(name, dns.rdatatype.A)
    try:
        response = dns.query.udp(query, config.dns_address, port=config.dns_port, timeout=timeout)
    except (dns.exception.Timeout, OSError) as exc:
        raise ResolveError(f"cluster DNS {config.dns_address}:{config.dns_port} did not answer for {name}: {exc}") from None
    if response.rcode() != dns.rcode.NOERROR:
        raise ResolveError(f"{name}: {dns.rcode.to_text(response.rcode())} from {config.dns_address}")
    addresses = [item.address for rrset in response.answer if rrset.rdtype == dns.rdatatype.A for item in rrset]
    if not addresses:
        raise ResolveError(f"{name}: no address at {config.dns_address}")
    return addresses


def resolve_master(config: Config, timeout: float = 0.5) -> str:
    """The master's address; ResolveError when there is none or DNS is down."""
    return resolve_all(config, config.master_name, timeout)[0]

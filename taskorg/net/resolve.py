"""Find the master the way any tool would: ask the cluster DNS for `master.<suffix>`.

Queries go straight to the cluster's DNS servers with dnspython: no system
resolver, no cache, so a rewritten record is seen on the next query. Every
machine runs a DNS server with the same zone; this machine's own
(`dns_address`) is asked first and the others (`dns_servers`) in turn when it
does not answer, so losing any one machine, the DNS node included, leaves
names resolving.
"""

from __future__ import annotations

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import dns.rcode

from taskorg.config import Config


class ResolveError(Exception):
    """No cluster DNS server answered, or the answer had no record for the name."""


class Unanswered(ResolveError):
    """No cluster DNS server answered at all (a timeout, an unreachable server): says nothing about
    the record, unlike an answer without it."""


def resolve_at(config: Config, server: str, name: str, timeout: float = 0.5) -> list[str]:
    """Every A record for `name` at one DNS server (a UDP query, no cache)."""
    query = dns.message.make_query(name, dns.rdatatype.A)
    try:
        response = dns.query.udp(query, server, port=config.dns_port, timeout=timeout)
    except (dns.exception.Timeout, OSError) as exc:
        raise Unanswered(f"cluster DNS {server}:{config.dns_port} did not answer for {name}: {exc}") from None
    if response.rcode() != dns.rcode.NOERROR:
        raise ResolveError(f"{name}: {dns.rcode.to_text(response.rcode())} from {server}")
    addresses = [item.address for rrset in response.answer if rrset.rdtype == dns.rdatatype.A for item in rrset]
    if not addresses:
        raise ResolveError(f"{name}: no address at {server}")
    return addresses


def resolve_all(config: Config, name: str, timeout: float = 0.5) -> list[str]:
    """Every A record for `name`: from the first DNS server in `config.dns_server_list` that answers."""
    errors, answered = [], False
    for server in config.dns_server_list:
        try:
            return resolve_at(config, server, name, timeout)
        except ResolveError as exc:
            errors.append(str(exc))
            answered = answered or not isinstance(exc, Unanswered)
    raise (ResolveError if answered else Unanswered)("; ".join(errors))


def resolve_master(config: Config, timeout: float = 0.5) -> str:
    """The master's address; ResolveError when there is none or no DNS server answers."""
    return resolve_all(config, config.master_name, timeout)[0]

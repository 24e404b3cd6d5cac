"""Two listeners for the master and the DNS service: one for clients, one for the cluster itself.

The cluster-internal routes (reports, role, replication, registration,
heartbeats, leases: every route `taskorg.security.policy` marks `node`)
are served only on an internal port with worker threads of their own, and
the client routes only on the public port. So clients, however many and
however slow (event followers, long polls), cannot take the threads that
renew the lease or take reports.

Callers do not pick the port: `route` sends a call for an internal route
to the internal port of the service whose public port the URL names, from
the same route table the servers check. The port pairs come from this
process's settings (`use`, at start), the defaults until then.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable
from urllib.parse import urlsplit, urlunsplit

from taskorg.config import Config
from taskorg.security.policy import NODE, required

ENVIRON_KEY = "taskorg.listener"  # set on every request a listener serves: "client" or "internal"
OTHER_PORT_KEY = "taskorg.other_port"  # the port of the other listener, for the refusal's message
CLIENT = "client"
INTERNAL = "internal"


def port_pairs(config: Config) -> dict[int, tuple[str, int]]:
    """Public port -> (service, internal port), for the services that listen twice."""
    return {config.master_port: ("master", config.master_internal_port),
            config.dns_api_port: ("dns", config.dns_internal_port)}


_pairs = port_pairs(Config())


def use(config: Config) -> None:
    """This process's port pairs (its settings)."""
    global _pairs
    _pairs = port_pairs(config)


def route(url: str, method: str, path: str) -> str:
    """`url` (a service's base URL on its public port) or, for an internal route, the same host
    on that service's internal port."""
    parts = urlsplit(url)
    found = _pairs.get(parts.port or 0)
    if found is None:
        return url
    service, internal = found
    if required(service, method, path.split("?", 1)[0]) != NODE:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]:{internal}" if ":" in host else f"{host}:{internal}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def tagged(app: WsgiApp, listener: str, other_port: int) -> WsgiApp:
    """`app` with every request marked as served by `listener` (checked by `taskorg.security.auth`)."""
    def serve_tagged(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ[ENVIRON_KEY] = listener
        environ[OTHER_PORT_KEY] = other_port
        return app(environ, start_response)
    return serve_tagged

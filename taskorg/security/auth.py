"""Deciding a request: which credential it carries, and whether that opens the route.

Credentials, strongest first:
- a node certificate of this cluster (verified by the TLS handshake): every `node` route;
- the cluster secret as a Bearer token: the `admin` role, kept during the
  transition to user tokens (the webview and old scripts use it); over plain
  HTTP (`tls: false`) it opens the `node` routes too, as it always did;
- a user token as a Bearer token: its role's routes, never a `node` route.

`open` routes need nothing; `monitor` routes (`/metrics`) take a `read`
token, a node certificate, or a source address in `metrics_open_networks`.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from taskorg.net import listeners
from taskorg.security.policy import MONITOR, NODE, OPEN, required
from taskorg.security.tokens import TokenError, TokenStore, role_includes

_store: TokenStore | None = None
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_metrics_open: tuple[Network, ...] = ()


def use_tokens(path: str | Path | None) -> None:
    """The token file this process's services accept (None: no user tokens)."""
    global _store
    _store = TokenStore(path) if path else None


def open_metrics_to(networks: tuple[str, ...]) -> None:
    """The networks whose hosts may read `/metrics` without a credential (setting `metrics_open_networks`)."""
    global _metrics_open
    _metrics_open = tuple(ipaddress.ip_network(n, strict=False) for n in networks)


def _in_open_network(source: object) -> bool:
    if not _metrics_open or not isinstance(source, str):
        return False
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return False
    return any(address.version == net.version and address in net for net in _metrics_open)


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str


def bearer_token(header: str | None) -> str:
    if not header or not header.startswith("Bearer "):
        return ""
    return header[len("Bearer "):].strip()


def check_secret(given: str, secret: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), secret.encode())


def user_role(given: str, secret: str) -> str | None:
    """The role the Bearer token grants: admin for the cluster secret, a user token's own, else None."""
    found = user_login(given, secret)
    return found[0] if found else None


def token_still_valid(token_id: str) -> bool:
    """Whether the user token with this id is still in the store (not revoked)."""
    if _store is None:
        return False
    try:
        return any(t.id == token_id for t in _store.tokens())
    except TokenError:
        return False


def user_login(given: str, secret: str) -> tuple[str, str | None] | None:
    """(role, token id) for the cluster secret (admin, no id) or a user token; None if neither."""
    if check_secret(given, secret):
        return "admin", None
    return token_login(given)


def token_login(given: str) -> tuple[str, str | None] | None:
    """(role, token id) of the user token `given`, or None (no store, unknown, or unreadable store)."""
    if _store is None or not given:
        return None
    try:
        token = _store.check(given)
    except TokenError:
        return None  # an unreadable store opens nothing (the error is the operator's to see in `token list`)
    return (token.role, token.id) if token else None


def wrong_listener(need: str, environ: Mapping[str, object]) -> Refusal | None:
    """A 404 for a route this listener does not serve: internal routes only on the internal
    listener, client routes and `/metrics` only on the client one (the probes on both). A request with no
    listener mark was not served by a listener (an in-process test client) and is not refused."""
    listener = environ.get(listeners.ENVIRON_KEY)
    other = environ.get(listeners.OTHER_PORT_KEY)
    if listener == listeners.CLIENT and need == NODE:
        return Refusal(404, f"not found here: this endpoint is cluster-internal and served only on this "
                            f"service's internal port ({other}), to node certificates")
    if listener == listeners.INTERNAL and need not in (NODE, OPEN):
        return Refusal(404, f"not found here: this is the internal port, for nodes of the cluster; "
                            f"client endpoints are served on port {other}")
    return None


def decide(service: str, method: str, path: str, environ: Mapping[str, object],
           authorization: str | None, secret: str) -> Refusal | None:
    """None when the request may go on; otherwise the answer that refuses it."""
    need = required(service, method, path)
    wrong = wrong_listener(need, environ)
    if wrong is not None:
        return wrong
    if need == OPEN:
        return None
    given = bearer_token(authorization)
    over_tls = environ.get("wsgi.url_scheme") == "https"
    if need == MONITOR:
        if (over_tls and environ.get("SSL_CLIENT_VERIFY") == "SUCCESS") or _in_open_network(environ.get("REMOTE_ADDR")):
            return None
        need = "read"
    if need == NODE:
        if over_tls:
            if environ.get("SSL_CLIENT_VERIFY") == "SUCCESS":
                return None
            if user_role(given, secret) is not None:
                return Refusal(403, "forbidden: this endpoint is cluster-internal: it needs a node certificate "
                                    "of this cluster (a user token or the secret never opens it)")
            return Refusal(401, "unauthorized: this endpoint is cluster-internal: it needs a node certificate "
                                "of this cluster")
        if check_secret(given, secret):
            return None
        return Refusal(401, "unauthorized: this endpoint requires the cluster secret")
    role = user_role(given, secret)
    if role is None:
        return Refusal(401, f"unauthorized: this endpoint needs a user token with role '{need}' "
                            "(or the cluster secret)")
    if not role_includes(role, need):
        return Refusal(403, f"forbidden: {method} {path} needs role '{need}', this token has '{role}'")
    return None

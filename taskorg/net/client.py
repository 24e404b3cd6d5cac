"""A thin authenticated JSON client for talking to taskorg services.

A call to an internal route of the master or the DNS service goes to that
service's internal port (`taskorg.net.listeners`). An `https://` URL is verified against the cluster CA and presents this
process's node certificate, both from the TLS material the process
configured at start (`taskorg.security.tls`), or the `tls` given here.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from taskorg.net import listeners
from taskorg.security import tls as tls_material


class ServiceError(Exception):
    """A service answered with an error status; `message` is its own words."""

    def __init__(self, status: int, message: str, payload: dict[str, Any] | None = None) -> None:
        super().__init__(f"{message} (HTTP {status})")
        self.status = status
        self.message = message
        self.payload = payload or {}


def service_error(status: int, body: bytes) -> ServiceError:
    """An error answer as the service put it: its JSON `error` (and the whole payload), else its text."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = {"error": body.decode(errors="replace").strip()[:500]}
    message = payload.get("error", "error") if isinstance(payload, dict) else str(payload)
    return ServiceError(status, message, payload if isinstance(payload, dict) else None)


class ServiceUnavailable(Exception):
    """The service could not be reached at all (refused, timed out)."""


# How long to wait for a TCP connection. On a LAN a live service accepts within milliseconds,
# and a powered-off host never answers: without this, a call to a dead master or slave waited
# its whole read timeout (a slave's reports to a dead master held its next report, to the new
# master, back by 4 s on the testbed).
CONNECT_TIMEOUT = 0.5


class ServiceClient:
    def __init__(self, base_url: str, secret: str, timeout: float = 5.0,
                 connect_timeout: float = CONNECT_TIMEOUT, tls: tls_material.TlsMaterial | None = None,
                 pool_size: int | None = None) -> None:
        """`pool_size`: connections kept per host, for callers that send many requests at once."""
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {secret}"
        # Cluster traffic is LAN-local: never route it through a proxy.
        self.session.trust_env = False
        pool = {"pool_connections": 1, "pool_maxsize": pool_size} if pool_size else {}
        if pool:
            self.session.mount("http://", HTTPAdapter(**pool))
        tls_material.mount(self.session, urlsplit(self.base_url).hostname or "", tls, **pool)

    def request(self, method: str, path: str, *, timeout: float | tuple[float, float] | None = None,
                **kwargs: Any) -> Any:
        url = f"{listeners.route(self.base_url, method, path)}{path}"
        limit = timeout or self.timeout
        if not isinstance(limit, tuple):
            limit = (min(self.connect_timeout, limit), limit)
        response = self._send(method, url, limit, kwargs)
        if kwargs.get("stream"):
            return response  # open: the caller reads it as it comes, and closes it
        if not response.content:
            return None
        if response.headers.get("Content-Type", "").startswith("application/json"):
            return response.json()
        return response.text

    def _send(self, method: str, url: str, limit: tuple[float, float], kwargs: dict[str, Any]) -> requests.Response:
        try:
            response = self.session.request(method, url, timeout=limit, **kwargs)
        except requests.RequestException as exc:
            raise ServiceUnavailable(f"{url}: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 400:
            try:
                raise service_error(response.status_code, response.content)
            finally:
                response.close()
        return response

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, json=json, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)

    def close(self) -> None:
        self.session.close()

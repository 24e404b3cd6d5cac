"""A kept-alive connection to one peer service, for a steady stream of small calls.

The replication sender posts a batch to its standby on every commit, on the
acknowledgement path of every submission. Through requests, each call cost
about 0.68 ms of CPU on the sending side, twice what urllib3's pool takes
for the same call (0.36 ms; docs/bench.md, "Throughput"): the session's
layers (request preparation, header merging, adapters) cost more than the
call. This talks to urllib3 directly, with the same credentials, TLS
material, internal-port routing and errors as `taskorg.net.client`, so a
caller swaps one for the other. urllib3 notices a kept connection the peer
closed while idle and opens another before sending, so an idle stream's
next batch does not fail.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import urllib3

from taskorg.net import listeners
from taskorg.net.client import CONNECT_TIMEOUT, ServiceUnavailable, service_error
from taskorg.security import tls as tls_material


class PeerConnection:
    def __init__(self, base_url: str, secret: str, timeout: float = 5.0,
                 connect_timeout: float = CONNECT_TIMEOUT, tls: tls_material.TlsMaterial | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.headers = {"Authorization": f"Bearer {secret}"}
        self.host = urlsplit(self.base_url).hostname or ""
        self.material = tls or tls_material.material_for(self.host)
        self.pools: dict[tuple[str, int], urllib3.HTTPConnectionPool] = {}  # one per port (public, internal)

    def _pool(self, url: str) -> urllib3.HTTPConnectionPool:
        parts = urlsplit(url)
        key = (parts.scheme, parts.port or (443 if parts.scheme == "https" else 80))
        pool = self.pools.get(key)
        if pool is None:
            if parts.scheme == "https":
                if self.material is None:
                    raise ServiceUnavailable(f"{url}: no TLS material for {self.host}")
                pool = urllib3.HTTPSConnectionPool(self.host, key[1], maxsize=1, block=False,
                                                   ssl_context=self.material.client_context(),
                                                   cert_reqs="CERT_REQUIRED")
            else:
                pool = urllib3.HTTPConnectionPool(self.host, key[1], maxsize=1, block=False)
            self.pools[key] = pool
        return pool

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                timeout: float | None = None) -> Any:
        """The answer's JSON (or text, or None when empty); ServiceError for an error status,
        ServiceUnavailable when the peer cannot be reached or the call broke."""
        url = f"{listeners.route(self.base_url, method, path)}{path}"
        limit = timeout or self.timeout
        try:
            response = self._pool(url).urlopen(
                method, path, body=body, headers={**self.headers, **(headers or {})}, retries=False,
                redirect=False, timeout=urllib3.Timeout(connect=min(self.connect_timeout, limit), read=limit))
        except urllib3.exceptions.HTTPError as exc:
            raise ServiceUnavailable(f"{url}: {type(exc).__name__}: {exc}") from None
        data = response.data
        is_json = response.headers.get("Content-Type", "").startswith("application/json")
        if response.status >= 400:
            raise service_error(response.status, data)
        if not data:
            return None
        return json.loads(data) if is_json else data.decode(errors="replace")

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, data: bytes, **kwargs: Any) -> Any:
        return self.request("POST", path, body=data, **kwargs)

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()

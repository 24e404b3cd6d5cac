"""Relaying a request to the arbiter: any DNS service takes any request.

Only the arbiter (the DNS service that leads the consensus group) grants
leases and makes decisions; every other DNS service passes such requests on
to it once, as they came (the caller's own credentials), and answers with
its answer. A relayed request is marked, so a service that is no longer the
arbiter when the relay lands refuses it instead of relaying it again.

Every node's heartbeats (several a second) come this way, so the hop to the
arbiter keeps its connection: a new TLS handshake per heartbeat was the
largest part of an idle DNS service's CPU, on both ends (bench/profile.py).
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import Response, request

from taskorg.net import listeners
from taskorg.net.server import ApiError
from taskorg.security import tls as tls_material

RELAYED_HEADER = "X-Taskorg-Relayed-By"
POOL_SIZE = 8  # relays at once to one arbiter (the server's request threads)


class _Sessions:
    """One kept-alive session to the current arbiter; a new arbiter's replaces (and closes) the old one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.url: str | None = None
        self.session: requests.Session | None = None

    def to(self, arbiter_url: str) -> requests.Session:
        with self.lock:
            if self.session is None or self.url != arbiter_url:
                if self.session is not None:
                    self.session.close()
                session = requests.Session()
                session.trust_env = False  # cluster traffic never goes through a proxy
                # Over TLS this hop is made by this DNS service, a node: its own certificate, the arbiter checked.
                tls_material.mount(session, urlsplit(arbiter_url).hostname or "", None,
                                   pool_connections=1, pool_maxsize=POOL_SIZE)
                self.url, self.session = arbiter_url, session
            return self.session

    def drop(self, arbiter_url: str) -> None:
        """Forget a session whose connection failed: the next relay dials afresh."""
        with self.lock:
            if self.url == arbiter_url and self.session is not None:
                self.session.close()
                self.url, self.session = None, None


_sessions = _Sessions()


def relay(arbiter_url: str, me: str, timeout: float) -> Response:
    """Send the current Flask request to the arbiter; its answer, or 503 naming why not."""
    if request.headers.get(RELAYED_HEADER):
        raise ApiError(503, f"the DNS service at {me} is not the arbiter (a relay from "
                            f"{request.headers[RELAYED_HEADER]} came while the group changes leader); try again")
    headers: dict[str, Any] = {"Authorization": request.headers.get("Authorization", ""), RELAYED_HEADER: me,
                               "Content-Type": request.headers.get("Content-Type", "application/json")}
    try:
        path = request.full_path.rstrip('?')
        answer = _sessions.to(arbiter_url).request(
            request.method, f"{listeners.route(arbiter_url, request.method, path)}{path}",
            data=request.get_data(), headers=headers, timeout=(0.3, timeout))
    except requests.RequestException as exc:
        _sessions.drop(arbiter_url)
        raise ApiError(503, f"the arbiter at {arbiter_url} does not answer ({type(exc).__name__})") from None
    return Response(answer.content, status=answer.status_code,
                    content_type=answer.headers.get("Content-Type", "application/json"))

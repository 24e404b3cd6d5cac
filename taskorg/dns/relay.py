"""Relaying a request to the arbiter: any DNS service takes any request.

Only the arbiter (the DNS service that leads the consensus group) grants
leases and makes decisions; every other DNS service passes such requests on
to it once, as they came (the caller's own credentials), and answers with
its answer. A relayed request is marked, so a service that is no longer the
arbiter when the relay lands refuses it instead of relaying it again.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests
from flask import Response, request

from taskorg.net import listeners
from taskorg.net.server import ApiError
from taskorg.security import tls as tls_material

RELAYED_HEADER = "X-Taskorg-Relayed-By"


def relay(arbiter_url: str, me: str, timeout: float) -> Response:
    """Send the current Flask request to the arbiter; its answer, or 503 naming why not."""
    if request.headers.get(RELAYED_HEADER):
        raise ApiError(503, f"the DNS service at {me} is not the arbiter (a relay from "
                            f"{request.headers[RELAYED_HEADER]} came while the group changes leader); try again")
    headers: dict[str, Any] = {"Authorization": request.headers.get("Authorization", ""), RELAYED_HEADER: me,
                               "Content-Type": request.headers.get("Content-Type", "application/json")}
    session = requests.Session()
    session.trust_env = False  # cluster traffic never goes through a proxy
    # Over TLS this hop is made by this DNS service, a node: its own certificate, the arbiter checked.
    tls_material.mount(session, urlsplit(arbiter_url).hostname or "", None)
    try:
        path = request.full_path.rstrip('?')
        answer = session.request(request.method, f"{listeners.route(arbiter_url, request.method, path)}{path}",
                                  data=request.get_data(), headers=headers, timeout=(0.3, timeout))
    except requests.RequestException as exc:
        raise ApiError(503, f"the arbiter at {arbiter_url} does not answer ({type(exc).__name__})") from None
    finally:
        session.close()
    return Response(answer.content, status=answer.status_code,
                    content_type=answer.headers.get("Content-Type", "application/json"))

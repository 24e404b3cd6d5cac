"""Any node answers: a standby forwards client requests to the active master.

A user may point a tool at any regular node's API; the standby passes the
request on (secret, body and idempotency key included) and streams the
master's answer back. Cluster-internal endpoints are never forwarded, and a
forwarded request is never forwarded again. `X-Taskorg-No-Forward: 1` asks a
standby to answer for itself (409 naming the master).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests
from flask import Flask, Response, jsonify, request

from taskorg.client import Client

if TYPE_CHECKING:
    from taskorg.master.engine import Engine

FORWARDED = "X-Taskorg-Forwarded"
NO_FORWARD = "X-Taskorg-No-Forward"
CLIENT_PATHS = ("/v1/jobs", "/v1/tasks", "/v1/events", "/v1/members", "/v1/nodes")
PASSED_HEADERS = ("authorization", "content-type", "idempotency-key", "last-event-id", "accept")
HOP_HEADERS = {"content-length", "transfer-encoding", "connection", "content-encoding", "keep-alive"}
# How long a node that DNS already names as master waits for its own activation before it answers
# "not the master". Election to activation takes one heartbeat and a role push (~0.2 s).
ACTIVATION_WAIT = 2.0


def install_forwarding(app: Flask, engine: "Engine") -> None:
    clients: list[Client] = []  # made at the first forward: one kept-alive client for the process

    @app.before_request
    def _forward() -> Any:
        if not request.path.startswith(CLIENT_PATHS) or engine.role.valid():
            return None
        if request.headers.get(FORWARDED) or request.headers.get(NO_FORWARD):
            return None
        if engine.still_named() or engine.named_master_by_dns():
            # Elected, and the client found us through DNS, but our role has not arrived yet (or our lease
            # is a renewal late): forwarding to the master we knew would wait on a dead host. Answer here
            # once we are active.
            engine.wait_active(ACTIVATION_WAIT)
            return None
        node, address = engine.current_master()
        if not address:
            return None  # the view answers 409: no master right now
        headers = {k: v for k, v in request.headers.items() if k.lower() in PASSED_HEADERS}
        headers[FORWARDED] = engine.role.node or "standby"
        try:
            if not clients:
                clients.append(Client(engine.config, engine.secret))
            upstream = clients[0].relay(address, request.method, request.full_path.rstrip("?"), request.get_data(),
                                    headers)
        except requests.RequestException as exc:
            return jsonify(error=f"not the master, and the master {node} ({address}) did not answer: "
                                 f"{type(exc).__name__}", master=node, address=address), 503
        return Response(upstream.iter_content(chunk_size=None), status=upstream.status_code,
                        headers=[(k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS])

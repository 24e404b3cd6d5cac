"""`/metrics`, `/healthz`, `/readyz` on a Flask app, and its request counters.

Who may read which route is the route table's word (taskorg/security/policy.py):
the probes are open, `/metrics` needs a `read` token, a node certificate or
an open network. Apps made by `create_service_app` check that already; the
webview (its own login) asks `authorize=True`. Requests are counted by the
route's rule, never its concrete path, so a task id never becomes a label.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from flask import Flask, Response, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from taskorg.metrics.registry import Families, app_registry
from taskorg.security import auth

REQUESTS = Counter("taskorg_http_requests", "HTTP requests answered, by route rule, method and status code",
                   ["route", "method", "code"])
REQUEST_SECONDS = Histogram("taskorg_http_request_seconds", "Time to answer an HTTP request (to its first byte)",
                            ["route"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
PROBES = ("/metrics", "/healthz", "/readyz")

# A readiness check: None when ready, else the reason in words.
Readiness = Callable[[], "str | None"]


def install(app: Flask, service: str, ready: Readiness, sources: dict[str, Families] | None = None,
            authorize: bool = False, secret: str = "") -> None:
    """Add the probe routes and request counting to `app` (the `service` of the route table)."""
    registry = app_registry(sources or {})

    def _started() -> None:
        g.metrics_started = time.perf_counter()

    # First of all before_request hooks: a refused request is timed and counted too.
    app.before_request_funcs.setdefault(None, []).insert(0, _started)

    @app.after_request
    def _count(response: Response) -> Response:
        rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        REQUESTS.labels(rule, request.method, str(response.status_code)).inc()
        started = g.get("metrics_started")
        if started is not None:
            REQUEST_SECONDS.labels(rule).observe(time.perf_counter() - started)
        return response

    if authorize:
        @app.before_request
        def _authorize_probes() -> Any:
            if request.path not in PROBES:
                return None
            refusal = auth.decide(service, request.method, request.path, request.environ,
                                  request.headers.get("Authorization"), secret)
            return None if refusal is None else (jsonify(error=refusal.message), refusal.status)

    @app.get("/metrics", endpoint="metrics")
    def metrics() -> Any:
        return Response(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.get("/healthz", endpoint="healthz")
    def healthz() -> Any:
        return jsonify(ok=True, service=service)

    @app.get("/readyz", endpoint="readyz")
    def readyz() -> Any:
        try:
            reason = ready()
        except Exception as exc:
            reason = f"readiness check failed: {type(exc).__name__}: {exc}"
        if reason:
            return jsonify(ready=False, service=service, reason=reason), 503
        return jsonify(ready=True, service=service)

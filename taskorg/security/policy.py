"""Which credential each route needs: the one table, keyed by service, method and path pattern.

Needs are a user role (`read` < `submit` < `admin`) or `node`: a node
certificate of this cluster, for the cluster-internal endpoints (reports,
role, replication, slave commands, registration, heartbeats). A user token
never opens a `node` route. A route the table does not name needs `node`, so
a new endpoint is internal until someone lists it here as a client route.
Two more: `open` (anyone: liveness and readiness probes) and `monitor` (the
Prometheus scrape: a `read` token, a node certificate, or a source address in
the setting `metrics_open_networks`).

Patterns are paths whose `*` segments match any one segment.
"""

from __future__ import annotations

NODE = "node"
OPEN = "open"
MONITOR = "monitor"
SERVICES = ("master", "dns", "slave", "node", "webview")

# (service, method, pattern) -> need
CLIENT_ROUTES: dict[tuple[str, str, str], str] = {
    # master: users read tasks and events, submit and cancel; internal routes fall to NODE
    ("master", "POST", "/v1/jobs"): "submit",
    ("master", "GET", "/v1/jobs"): "read",
    ("master", "DELETE", "/v1/jobs/*"): "submit",
    ("master", "POST", "/v1/prune"): "admin",
    ("master", "GET", "/v1/tasks"): "read",
    ("master", "GET", "/v1/tasks/*"): "read",
    ("master", "GET", "/v1/tasks/*/logs"): "read",
    ("master", "DELETE", "/v1/tasks/*"): "submit",
    ("master", "POST", "/v1/tasks/*/restart"): "submit",
    ("master", "GET", "/v1/jobs/*"): "read",
    ("master", "POST", "/v1/jobs/*/rollback"): "submit",
    ("master", "GET", "/v1/events"): "read",
    ("master", "GET", "/v1/events/stream"): "read",
    ("master", "GET", "/v1/members"): "read",
    ("master", "GET", "/v1/nodes/*/history"): "read",
    ("master", "GET", "/v1/status"): "read",
    # DNS service: membership reads; handover and node drain/activate/leave are admin work
    ("dns", "GET", "/v1/members"): "read",
    ("dns", "GET", "/v1/master"): "read",
    ("dns", "GET", "/v1/events"): "read",
    ("dns", "GET", "/v1/services"): "read",
    ("dns", "POST", "/v1/master"): "admin",
    ("dns", "POST", "/v1/members/*/drain"): "admin",
    ("dns", "POST", "/v1/members/*/activate"): "admin",
    ("dns", "POST", "/v1/members/*/leave"): "admin",
    # slave and node services: internal only (no entries)
}
# Every service: metrics for Prometheus, liveness and readiness for systemd, load balancers and tests, and
# its OpenAPI description (it says what the API is, nothing of the cluster's state).
for _service in SERVICES:
    CLIENT_ROUTES[(_service, "GET", "/openapi.json")] = OPEN
    CLIENT_ROUTES[(_service, "GET", "/metrics")] = MONITOR
    CLIENT_ROUTES[(_service, "GET", "/healthz")] = OPEN
    CLIENT_ROUTES[(_service, "GET", "/readyz")] = OPEN


def _matches(pattern: str, path: str) -> bool:
    wanted = pattern.strip("/").split("/")
    given = path.strip("/").split("/")
    return len(wanted) == len(given) and all(w == "*" or w == g for w, g in zip(wanted, given))


def required(service: str, method: str, path: str) -> str:
    """The credential `method path` on `service` needs: a role name, or NODE."""
    method = "GET" if method.upper() == "HEAD" else method.upper()
    for (svc, verb, pattern), need in CLIENT_ROUTES.items():
        if svc == service and verb == method and _matches(pattern, path):
            return need
    return NODE

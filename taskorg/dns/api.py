"""The DNS service's HTTP API (docs/api.md, "DNS service").

Its own module, as the master's is: the routes only decode requests and
call the service. Requests that need a decision (registration, heartbeats,
leases, membership changes) are relayed to the arbiter by any other DNS
service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask, Response, jsonify, request

from taskorg.dns.relay import relay
from taskorg.metrics import dns as dns_metrics, http as probes
from taskorg.net.server import ApiError, create_service_app, json_body, typed_body, whole_number
from taskorg.protocol import Heartbeat, ProtocolError, Registration, ServiceNames, checked_address, encode

if TYPE_CHECKING:
    from taskorg.dns.service import DnsService

RELAY_TIMEOUT = 2.0


def needs_arbiter(method: str, path: str) -> bool:
    """Requests only the arbiter answers (decisions, leases, liveness): any other DNS service relays them."""
    return path in ("/v1/register", "/v1/heartbeat", "/v1/members") \
        or (path == "/v1/services" and method == "PUT") or path.startswith("/v1/members/") \
        or (path == "/v1/master" and method == "POST")


def _address(text: str, what: str) -> str:
    try:
        return checked_address(text, what)
    except ProtocolError as exc:
        raise ApiError(400, str(exc)) from None


def create_app(service: DnsService) -> Flask:
    app = create_service_app("dns", service.secret)

    @app.before_request
    def _relay_to_arbiter() -> Any:
        if needs_arbiter(request.method, request.path) and not service.is_arbiter():
            return relay(service.arbiter_url(), service.config.dns_address, RELAY_TIMEOUT)
        return None

    @app.post("/v1/register")
    def register() -> Any:
        message = typed_body(Registration, "registration")
        return jsonify(service.register(message.identity, _address(message.address, "registration"),
                                        dict(message.labels)))

    @app.post("/v1/heartbeat")
    def heartbeat() -> Any:
        return Response(encode(service.heartbeat_message(typed_body(Heartbeat, "heartbeat"))),
                        mimetype="application/json")

    @app.get("/v1/members")
    def members() -> Any:
        """`?since=VERSION&wait=SECONDS`: a long poll, answered when the membership moves past
        VERSION or after at most 1.5 s (taskorg.dns.watch); without them, at once."""
        since_text, wait_text = request.args.get("since"), request.args.get("wait", "0")
        since = whole_number(since_text) if since_text is not None else None
        if since_text is not None and since is None:
            raise ApiError(400, f"since: expected a version (a whole number), got {since_text!r:.40}")
        try:
            wait = float(wait_text)
        except ValueError:
            wait = -1.0
        if not 0 <= wait <= 60:
            raise ApiError(400, f"wait: expected seconds from 0 to 60, got {wait_text!r:.40}")
        if since is not None:
            service.wait_for_members(since, wait)
        return jsonify(service.members_view())

    @app.get("/v1/master")
    def master() -> Any:
        """From this replica: what this machine's dnsmasq answers (no arbiter needed)."""
        return jsonify(service.master_view())

    @app.get("/v1/consensus")
    def consensus() -> Any:
        return jsonify(service.dns_servers_view())

    @app.post("/v1/master")
    def handover() -> Any:
        return jsonify(service.handover(str(json_body(("node",))["node"])))

    @app.post("/v1/members/<node>/drain")
    def drain(node: str) -> Any:
        return jsonify(service.set_state(node, "draining"))

    @app.post("/v1/members/<node>/activate")
    def activate(node: str) -> Any:
        return jsonify(service.set_state(node, "active"))

    @app.post("/v1/members/<node>/leave")
    def leave(node: str) -> Any:
        return jsonify(service.set_state(node, "left"))

    @app.put("/v1/services")
    def set_services() -> Any:
        message = typed_body(ServiceNames, "service names")
        return jsonify(service.set_services(message.epoch, dict(message.names)))

    @app.get("/v1/services")
    def services() -> Any:
        """From this replica: the service names this machine's dnsmasq answers."""
        return jsonify(names=service.registry.services())

    @app.get("/v1/events")
    def events() -> Any:
        since_text = request.args.get("since", "0")
        since = whole_number(since_text)
        if since is None:
            raise ApiError(400, f"since: expected an event id (a whole number), got {since_text!r:.40}")
        return jsonify(events=service.registry.events(since))

    probes.install(app, "dns", service.not_ready, {"dns": lambda: dns_metrics.read(service)})
    return app

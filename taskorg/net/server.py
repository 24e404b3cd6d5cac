"""Flask app helpers shared by every service: auth, JSON errors, WSGI serving.

Every endpoint requires the cluster secret as `Authorization: Bearer <secret>`;
a request without it gets 401 and never reaches a view.
"""

from __future__ import annotations

import hmac
from typing import Any, Callable, TypeVar

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from taskorg.logs import get_logger
from taskorg.protocol import ProtocolError, decode

T = TypeVar("T")

log = get_logger("http")


class ApiError(Exception):
    """An error a view raises to answer the caller with a JSON body."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def bearer_token(header: str | None) -> str:
    if not header or not header.startswith("Bearer "):
        return ""
    return header[len("Bearer "):].strip()


def create_service_app(name: str, secret: str) -> Flask:
    """A Flask app that checks the secret on every request and answers errors as JSON."""
    app = Flask(f"taskorg.{name}")
    app.config["TASKORG_SERVICE"] = name
    app.json.sort_keys = False  # type: ignore[attr-defined]
    expected = secret.encode()

    @app.before_request
    def _require_secret() -> Any:
        given = bearer_token(request.headers.get("Authorization")).encode()
        if not hmac.compare_digest(given, expected):
            return jsonify(error="unauthorized: this endpoint requires the cluster secret"), 401
        return None

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Any:
        return jsonify(error=exc.message, **exc.extra), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        return jsonify(error=f"{exc.name}: {exc.description}"), exc.code or 500

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unhandled error", extra={"service": name, "path": request.path})
        return jsonify(error=f"internal error in {name} service: {type(exc).__name__}: {exc}"), 500

    return app


def json_body(required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The request's JSON object; a 400 that names what is missing otherwise."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "expected a JSON object in the request body")
    missing = [key for key in required if key not in data]
    if missing:
        raise ApiError(400, f"missing field(s): {', '.join(missing)}")
    return data


def typed_body(kind: type[T], what: str) -> T:
    """The request's JSON body as a `kind` message; a 400 that names the bad field otherwise."""
    try:
        return decode(request.get_data(), kind, what)
    except ProtocolError as exc:
        raise ApiError(400, str(exc)) from None


def serve(app: Flask, host: str, port: int, threads: int = 8,
          on_ready: Callable[[], None] | None = None) -> None:
    """Serve with waitress (never Flask's development server)."""
    from waitress.server import create_server

    # connection_limit: waitress's default of 100 open connections starves the
    # DNS service of a 100-node cluster (every node heartbeats and polls it).
    server = create_server(app, host=host, port=port, threads=threads, connection_limit=1000,
                           channel_timeout=30, ident=None, clear_untrusted_proxy_headers=True)
    if on_ready:
        on_ready()
    server.run()

"""Flask app helpers shared by every service: auth, JSON errors, WSGI serving.

Every request is checked against the route policy (`taskorg.security.policy`)
before it reaches a view: cluster-internal endpoints need a node certificate
(or, with TLS off, the cluster secret), client endpoints a user token of the
right role or the cluster secret. Refusals are 401 (no valid credential) or
403 (a credential that does not open this route).
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from taskorg import openapi
from taskorg.logs import get_logger
from taskorg.net import listeners
from taskorg.protocol import ProtocolError, decode
from taskorg.security import auth, tls

T = TypeVar("T")

log = get_logger("http")


class ApiError(Exception):
    """An error a view raises to answer the caller with a JSON body."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def create_service_app(name: str, secret: str) -> Flask:
    """A Flask app that checks every request's credential against the route policy and answers errors as JSON."""
    if not secret.strip():
        raise ValueError(f"{name} service: the cluster secret is empty or only whitespace; refusing to start")
    app = Flask(f"taskorg.{name}")
    app.config["TASKORG_SERVICE"] = name
    app.json.sort_keys = False  # type: ignore[attr-defined]

    @app.before_request
    def _authorize() -> Any:
        refusal = auth.decide(name, request.method, request.path, request.environ,
                              request.headers.get("Authorization"), secret)
        if refusal is not None:
            return jsonify(error=refusal.message), refusal.status
        return None

    openapi.install(app, name)

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Any:
        # A refusal that says when to ask again says it in the header HTTP clients read, too.
        headers = {"Retry-After": str(exc.extra["retry_after"])} if "retry_after" in exc.extra else {}
        return jsonify(error=exc.message, **exc.extra), exc.status, headers

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        return jsonify(error=f"{exc.name}: {exc.description}"), exc.code or 500

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        # The text stays in the log: it may quote rows, paths or settings the caller should not see.
        log.exception("unhandled error", extra={"service": name, "path": request.path})
        return jsonify(error=f"internal error in {name} service ({type(exc).__name__}); its log has the details"), 500

    return app


# The largest whole number a query may carry: SQLite's integers are 64-bit.
MAX_WHOLE = 2 ** 63 - 1


def whole_number(text: str) -> int | None:
    """`text` as a whole number from 0 to MAX_WHOLE, or None. ASCII digits only: `'³'.isdigit()` is true
    but int() refuses it, and a number past 64 bits overflows SQLite (both were 500s)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if value <= MAX_WHOLE else None


def request_json() -> Any:
    """The request's body as JSON, None when it is not JSON. A body nested deeper than the decoder can
    recurse (a few KiB of `[`) is a 400 saying so, not a RecursionError answered 500."""
    try:
        return request.get_json(silent=True)
    except RecursionError:
        raise ApiError(400, "the JSON body nests too deeply") from None


def json_body(required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The request's JSON object; a 400 that names what is missing otherwise."""
    data = request_json()
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
          on_ready: Callable[[], None] | None = None, internal_port: int | None = None,
          internal_threads: int = 8, material: tls.TlsMaterial | None = None) -> None:
    """Serve with cheroot (never Flask's development server): TLS with this process's node
    certificate when TLS is configured (`taskorg.security.process`), plain HTTP otherwise.

    With `internal_port`, two listeners with worker threads of their own: client routes on `port`,
    cluster-internal routes on `internal_port` (`taskorg.net.listeners`). `material`: a certificate
    other than the node's (the webview's, when the operator supplies one)."""
    from taskorg.net.httpd import run_servers

    if internal_port is None:
        run_servers([_server(app, host, port, threads, material)], on_ready)
        return
    run_servers([_server(listeners.tagged(app, listeners.CLIENT, internal_port), host, port, threads),
                 _server(listeners.tagged(app, listeners.INTERNAL, port), host, internal_port, internal_threads)],
                on_ready)


def _server(app: Any, host: str, port: int, threads: int, material: tls.TlsMaterial | None = None) -> Any:
    from taskorg.net.httpd import make_server

    material = material or tls.server_material()
    if material is None:
        log.warning("serving plain HTTP: TLS is off", extra={"address": f"{host}:{port}"})
        return make_server(app, host, port, threads, None)
    return make_server(app, host, port, threads, material.server_context(), material.cert_file, material.key_file)

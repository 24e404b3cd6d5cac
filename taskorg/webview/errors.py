"""Friendly answers for everything that goes wrong: never a traceback.

Pages get a short HTML page, `/api/` gets JSON, and anything unexpected is
logged here, not shown (it could carry details a user should not see).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from taskorg.logs import get_logger
from taskorg.net.client import ServiceError
from taskorg.webview.cluster import DnsUnavailable, MasterUnavailable

log = get_logger("webview")


def _answer(status: int, title: str, message: str) -> Any:
    if request.path.startswith("/api/"):
        return jsonify(error=message), status
    return render_template("message.html", page="message", title=title, message=message), status


def register(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> Any:
        return _answer(400, "Form refused",
                       "This form was not sent by a page of this webview, or the page is too old "
                       f"({exc.description}). Go back, reload the page and try again.")

    @app.errorhandler(MasterUnavailable)
    def _master(exc: MasterUnavailable) -> Any:
        return _answer(503, "Master changing over", exc.message)

    @app.errorhandler(DnsUnavailable)
    def _dns(exc: DnsUnavailable) -> Any:
        return _answer(503, "DNS node unreachable", str(exc))

    @app.errorhandler(ServiceError)
    def _service(exc: ServiceError) -> Any:
        return _answer(502, "The cluster refused", exc.message)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        return _answer(exc.code or 500, exc.name, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unhandled error", extra={"path": request.path})
        return _answer(500, "Something went wrong",
                       "The webview hit an unexpected error; it is logged on this node. Reload to try again.")

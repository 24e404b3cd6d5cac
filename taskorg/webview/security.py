"""Login checks, keys derived from the cluster secret, and response headers.

The webview's only credential is the cluster secret itself: whoever holds it
can already run containers as root on every node, so a separate user
database would add nothing but another thing to leak.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, current_app, jsonify, redirect, request, session, url_for
from werkzeug.wrappers import Response

# Endpoints a logged-out browser may reach.
# The probes (`/metrics`, `/healthz`, `/readyz`) check their own credential: the route table's
# (taskorg/metrics/http.py), a `read` token or a node certificate rather than a browser's login.
PUBLIC_ENDPOINTS = {"auth.login", "static", "api.healthz", "metrics", "healthz", "readyz"}

# Everything the page needs ships with the package: no other origin, no
# inline script or style, no framing (clickjacking on the cancel buttons).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


def derive_key(secret: str, purpose: str) -> bytes:
    """A key for one purpose, derived with HMAC so it never reveals the secret."""
    return hmac.new(secret.encode(), f"taskorg-webview/{purpose}".encode(), hashlib.sha256).digest()


def _verifier(secret: str) -> bytes:
    return hashlib.sha256(b"taskorg-webview/login\0" + secret.encode()).digest()


def store_verifier(app: Flask, secret: str) -> None:
    """Keep a hash to check logins against, not the secret itself."""
    app.extensions["taskorg_login_verifier"] = _verifier(secret)


def secret_matches(given: str) -> bool:
    """Constant-time comparison of a typed secret with the cluster's."""
    expected: bytes = current_app.extensions["taskorg_login_verifier"]
    return hmac.compare_digest(_verifier(given.strip()), expected)


def logged_in() -> bool:
    return session.get("auth") == "cluster"


def log_in() -> None:
    session.clear()  # a fresh session (and CSRF token) for the new login
    session.permanent = True
    session["auth"] = "cluster"


def log_out() -> None:
    session.clear()


def safe_next(target: str | None) -> str:
    """Where to go after login: a path on this site only (no open redirect)."""
    if not target:
        return url_for("pages.dashboard")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("pages.dashboard")
    return target


def _require_login() -> Any:
    if request.endpoint in PUBLIC_ENDPOINTS or logged_in():
        return None
    if request.path.startswith("/api/"):
        return jsonify(error="login required"), 401
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("auth.login", next=target))


def _harden(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "static":
        # Pages show live cluster state behind a login: never cache them.
        response.headers["Cache-Control"] = "no-store"
    return response


def install(app: Flask) -> None:
    """Every request needs a login (except the login page itself); every answer is hardened."""
    app.before_request(_require_login)
    app.after_request(_harden)

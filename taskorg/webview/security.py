"""Login checks, roles, keys derived from the cluster secret, and response headers.

A person logs in with a user token (`taskorg token create NAME --role R`),
whose role decides which buttons work: `read` looks, `submit` also submits,
cancels and restarts, `admin` also drains and activates nodes. The cluster
secret still logs in as `admin` during the transition to tokens. A session
made from a token ends when the token is revoked; a logout is remembered
until the cookie would have expired, so a copied cookie stops working too.
Failed logins are throttled per source address.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, jsonify, redirect, request, session, url_for
from werkzeug.wrappers import Response

from taskorg.security import auth
from taskorg.security.tokens import role_includes
from taskorg.webview.logins import EndedSessions, LoginThrottle

# Endpoints a logged-out browser may reach.
# The probes (`/metrics`, `/healthz`, `/readyz`) check their own credential: the route table's
# (taskorg/metrics/http.py), a `read` token or a node certificate rather than a browser's login.
PUBLIC_ENDPOINTS = {"auth.login", "static", "api.healthz", "metrics", "healthz", "readyz", "openapi"}

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


def login_role(given: str) -> tuple[str, str | None] | None:
    """(role, token id) for what was typed at the login form: the cluster secret or a user token."""
    if secret_matches(given):
        return "admin", None
    return auth.token_login(given.strip())


def install_bookkeeping(app: Flask, lifetime: float) -> None:
    app.extensions["taskorg_login_throttle"] = LoginThrottle()
    app.extensions["taskorg_ended_sessions"] = EndedSessions(lifetime)


def throttle() -> LoginThrottle:
    return current_app.extensions["taskorg_login_throttle"]  # type: ignore[no-any-return]


def _ended() -> EndedSessions:
    return current_app.extensions["taskorg_ended_sessions"]  # type: ignore[no-any-return]


def logged_in() -> bool:
    if session.get("auth") != "user" or _ended().ended(session.get("sid", "")):
        return False
    token_id = session.get("token")
    return token_id is None or auth.token_still_valid(token_id)


def current_role() -> str:
    return str(session.get("role", "")) if logged_in() else ""


def log_in(role: str, token_id: str | None) -> None:
    session.clear()  # a fresh session (and CSRF token) for the new login
    session.permanent = True
    session.update(auth="user", role=role, token=token_id, sid=secrets.token_urlsafe(16))


def log_out() -> None:
    if session.get("sid"):
        _ended().end(session["sid"], time.time())
    session.clear()


Handler = TypeVar("Handler", bound=Callable[..., Any])


def needs_role(role: str) -> Callable[[Handler], Handler]:
    """A view that only a session with `role` (or a stronger one) may use: else 403, naming both."""
    def wrap(view: Handler) -> Handler:
        def checked(*args: Any, **kwargs: Any) -> Any:
            have = current_role()
            if not role_includes(have, role):
                abort(403, description=f"this needs role '{role}'; you are logged in as '{have}'")
            return view(*args, **kwargs)
        checked.__name__ = view.__name__
        checked.__doc__ = view.__doc__
        return checked  # type: ignore[return-value]
    return wrap


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

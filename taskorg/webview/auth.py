"""Log in with a user token (or the cluster secret), throttled per source; log out for good."""

from __future__ import annotations

import math
import time
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from taskorg.webview import security

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    target = security.safe_next(request.values.get("next"))
    if request.method == "GET":
        if security.logged_in():
            return redirect(target)
        return render_template("login.html", next=target, error="")
    source, now = request.remote_addr or "?", time.time()
    wait = security.throttle().wait_before_next(source, now)
    if wait > 0:
        seconds = math.ceil(wait)
        answer = render_template("login.html", next=target,
                                 error=f"Too many failed logins from {source}: try again in {seconds} s.")
        return answer, 429, {"Retry-After": str(seconds)}
    found = security.login_role(request.form.get("secret", ""))
    if found is not None:
        security.throttle().succeeded(source)
        security.log_in(*found)
        return redirect(target)
    security.throttle().failed(source, now)
    # Never echo what was typed: it may be a near-miss of the real secret.
    return render_template("login.html", next=target,
                           error="That is neither a user token of this cluster nor the cluster secret."), 401


@bp.post("/logout")
def logout() -> Any:
    security.log_out()
    flash("Logged out.", "info")
    return redirect(url_for("auth.login"))

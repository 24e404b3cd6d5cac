"""Log in with the cluster secret; log out."""

from __future__ import annotations

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
    if security.secret_matches(request.form.get("secret", "")):
        security.log_in()
        return redirect(target)
    # Never echo what was typed: it may be a near-miss of the real secret.
    return render_template("login.html", next=target,
                           error="That is not the cluster secret."), 401


@bp.post("/logout")
def logout() -> Any:
    security.log_out()
    flash("Logged out.", "info")
    return redirect(url_for("auth.login"))

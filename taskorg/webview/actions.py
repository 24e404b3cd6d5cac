"""Buttons that change the cluster: cancel or restart a task, drain a node.

Each is a POST form with a CSRF token; the outcome is a flash message on
the page the user came from. Tasks need the `submit` role, nodes `admin`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, request, url_for

from taskorg.net.client import ServiceError
from taskorg.webview.cluster import ClusterApi, DnsUnavailable, MasterUnavailable
from taskorg.webview.security import needs_role, safe_next
from taskorg.webview.views import NODE_NAME, TASK_ID

bp = Blueprint("actions", __name__)


def _api() -> ClusterApi:
    return current_app.extensions["taskorg_api"]  # type: ignore[no-any-return]


def _back(default: str) -> Any:
    return redirect(safe_next(request.form.get("next")) if request.form.get("next") else default)


def _attempt(what: str, call: Any, done: str) -> None:
    """Run one action and say how it went, in words, never as a traceback."""
    try:
        call()
    except MasterUnavailable as exc:
        flash(f"Could not {what}: {exc.message}", "error")
    except DnsUnavailable as exc:
        flash(f"Could not {what}: {exc}", "error")
    except ServiceError as exc:
        flash(f"Could not {what}: {exc.message}", "error")
    else:
        flash(done, "ok")


@bp.post("/tasks/<task_id>/cancel")
@needs_role("submit")
def cancel(task_id: str) -> Any:
    if not TASK_ID.match(task_id):
        abort(404)
    _attempt(f"cancel {task_id}", lambda: _api().cancel(task_id), f"Cancelled {task_id}.")
    return _back(url_for("pages.task", task_id=task_id))


@bp.post("/tasks/<task_id>/restart")
@needs_role("submit")
def restart(task_id: str) -> Any:
    if not TASK_ID.match(task_id):
        abort(404)
    _attempt(f"restart {task_id}", lambda: _api().restart(task_id), f"Restarting {task_id}.")
    return _back(url_for("pages.task", task_id=task_id))


@bp.post("/members/<node>/drain")
@needs_role("admin")
def drain(node: str) -> Any:
    if not NODE_NAME.match(node):
        abort(404)
    _attempt(f"drain {node}", lambda: _api().drain(node),
             f"{node} is draining: it gets no new work.")
    return _back(url_for("pages.dashboard"))


@bp.post("/members/<node>/activate")
@needs_role("admin")
def activate(node: str) -> Any:
    if not NODE_NAME.match(node):
        abort(404)
    _attempt(f"activate {node}", lambda: _api().activate(node), f"{node} takes new work again.")
    return _back(url_for("pages.dashboard"))

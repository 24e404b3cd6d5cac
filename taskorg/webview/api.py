"""Small JSON endpoints that the page polls for live updates.

Each answers `{cluster: {state, master, epoch, ...}, fragments: {region: html}}`
with status 200 even while the master changes over: the state says so, and
the page keeps polling until it is `ok` again.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, jsonify, render_template, request

from taskorg.net.server import whole_number
from taskorg.webview import views
from taskorg.webview.pages import after_cache, before_arg, history_cache, site
from taskorg.webview.cluster import ClusterApi

bp = Blueprint("api", __name__, url_prefix="/api")


def _api() -> ClusterApi:
    return current_app.extensions["taskorg_api"]  # type: ignore[no-any-return]


def _answer(model: dict[str, Any]) -> Any:
    return jsonify(cluster=views.public_header(model["cluster"]),
                   fragments=views.render_fragments(model["page"], model, render_template),
                   status=(model.get("task") or {}).get("status"))


@bp.get("/healthz")
def healthz() -> Any:
    """For systemd, Ansible and tests: the webview process answers (says nothing else)."""
    return jsonify(ok=True)


@bp.get("/cluster")
def cluster() -> Any:
    return jsonify(cluster=views.public_header(views.cluster_header(_api())), fragments={})


@bp.get("/dashboard")
def dashboard() -> Any:
    return _answer(views.dashboard_model(_api(), site(), history_cache()))


@bp.get("/jobs")
def jobs_list() -> Any:
    return _answer(views.jobs_model(_api(), before_arg()))


@bp.get("/jobs/<job_id>")
def job(job_id: str) -> Any:
    if not views.JOB_ID.match(job_id):
        abort(404)
    return _answer(views.job_model(_api(), job_id, after_cache()))


@bp.get("/failover")
def failover() -> Any:
    return _answer(views.failover_model(_api(), site()))


@bp.get("/tasks")
def tasks() -> Any:
    return _answer(views.tasks_model(_api(), views.task_filters(request.args)))


@bp.get("/tasks/<task_id>")
def task(task_id: str) -> Any:
    if not views.TASK_ID.match(task_id):
        abort(404)
    index = whole_number(request.args.get("index", "0")) or 0
    return _answer(views.task_model(_api(), task_id, index, with_logs=False))

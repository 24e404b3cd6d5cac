"""The HTML pages: dashboard, task list, task, submit."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from taskorg.net.client import ServiceError
from taskorg.net.server import whole_number
from taskorg.security.tokens import role_includes
from taskorg.webview import jobs, security, views
from taskorg.webview.cluster import ClusterApi, MasterUnavailable
from taskorg.webview.history import HistoryCache
from taskorg.webview.submit import SpecInputError, annotate, read_spec

bp = Blueprint("pages", __name__)


def _api() -> ClusterApi:
    return current_app.extensions["taskorg_api"]  # type: ignore[no-any-return]


def site() -> views.Site:
    config = current_app.config["TASKORG_CONFIG"]
    return views.Site(config.witness_address, config.address or None)


def after_cache() -> jobs.AfterCache:
    return current_app.extensions["taskorg_after_cache"]  # type: ignore[no-any-return]


def history_cache() -> HistoryCache:
    return current_app.extensions["taskorg_history_cache"]  # type: ignore[no-any-return]


def before_arg() -> float | None:
    """The jobs list's paging point: a submission time, or None for the newest."""
    try:
        return float(request.args.get("before", ""))
    except ValueError:
        return None


def _index_arg() -> int:
    return whole_number(request.args.get("index", "0")) or 0


def _one(template: str, model: dict[str, Any]) -> Any:
    """A page about one thing: 404 when the master says it does not exist (not during a failover)."""
    return render_template(template, **model), (200 if model["found"] else 404)


@bp.get("/")
def dashboard() -> Any:
    return render_template("dashboard.html", **views.dashboard_model(_api(), site(), history_cache()))


@bp.get("/jobs")
def jobs_list() -> Any:
    return render_template("jobs.html", **views.jobs_model(_api(), before_arg()))


@bp.get("/jobs/<job_id>")
def job(job_id: str) -> Any:
    if not views.JOB_ID.match(job_id):
        abort(404)
    return _one("job.html", views.job_model(_api(), job_id, after_cache()))


@bp.get("/failover")
def failover() -> Any:
    return render_template("failover.html", **views.failover_model(_api(), site()))


@bp.get("/tasks")
def tasks() -> Any:
    return render_template("tasks.html", **views.tasks_model(_api(), views.task_filters(request.args)))


@bp.get("/tasks/<task_id>")
def task(task_id: str) -> Any:
    if not views.TASK_ID.match(task_id):
        abort(404)
    return _one("task.html", views.task_model(_api(), task_id, _index_arg()))


@bp.route("/submit", methods=["GET", "POST"])
def submit() -> Any:
    """Paste or upload a spec; preview where it would run, or submit it."""
    model: dict[str, Any] = {"page": "submit", "cluster": views.cluster_header(_api(), ask_master=False),
                             "spec": "", "source": "", "annotated": None, "error": "", "placements": None,
                             "maybe_applied": False}
    if request.method == "GET":
        return render_template("submit.html", **model)
    dry_run = request.form.get("action") == "preview"
    if not dry_run and not role_includes(security.current_role(), "submit"):
        model["error"] = f"Submitting needs role 'submit'; you are logged in as '{security.current_role()}'."
        return render_template("submit.html", **model), 403
    try:
        text, source = read_spec(request.form, request.files)
    except SpecInputError as exc:
        model["error"] = str(exc)
        return render_template("submit.html", **model), 400
    model.update(spec=text, source=source)
    if not text.strip():
        model["error"] = "The spec is empty: paste YAML or choose a file."
        return render_template("submit.html", **model), 400
    try:
        result = _api().submit(text, source, dry_run=dry_run)
    except MasterUnavailable as exc:
        model.update(error=exc.message, maybe_applied=exc.maybe_applied)
        return render_template("submit.html", **model), 503
    except ServiceError as exc:
        if exc.status == 503 and exc.payload.get("tasks"):
            # Stored on the master, not yet on a standby: accepted, with a caveat.
            flash(f"Warning: {exc.message}", "error")
            return _after_submit(exc.payload)
        model["error"] = f"The master refused the spec: {exc.message}"
        return render_template("submit.html", **model), 502 if exc.status >= 500 else 400
    if not result.ok:
        model["error"] = result.body.get("error") or "The spec is not valid."
        model["annotated"] = annotate(text, list(result.body.get("problems") or []), source)
        return render_template("submit.html", **model), 400
    if dry_run:
        model["placements"] = result.body.get("placements") or {}
        return render_template("submit.html", **model)
    return _after_submit(result.body)


def _after_submit(body: dict[str, Any]) -> Any:
    """Go where the user wants to look next: the task, or the job's page."""
    created = body.get("tasks") or []
    job = body.get("job") or ""
    names = ", ".join(str(t.get("name")) for t in created) or "no tasks"
    if body.get("update") == "rolling":
        flash(f"Updating job {job} in place (a rolling update): {names}.", "ok")
    elif body.get("update") == "unchanged":
        flash(f"Job {job} already runs this spec: nothing changed.", "ok")
    else:
        flash(f"Submitted job {job}: {names}.", "ok")
    if len(created) == 1 and created[0].get("id"):
        return redirect(url_for("pages.task", task_id=created[0]["id"]))
    return redirect(url_for("pages.job", job_id=job) if job else url_for("pages.tasks"))

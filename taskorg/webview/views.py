"""View models: what each page shows, built from the cluster's APIs.

A page renders its model whole; the JSON endpoint the page polls renders the
same model's fragments, so the first paint and every live update come from
one template each. Nothing here raises on a failover: an unreachable master
or DNS service becomes a notice in the model.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from taskorg.logstream import strip_stamps
from taskorg.net.client import ServiceError
from taskorg.webview import history, jobs, layout, timeline, topology
from taskorg.webview.cluster import ClusterApi, DnsUnavailable, MasterUnavailable

TASK_STATES = ("pending", "starting", "running", "succeeded", "failed", "cancelled")
FINISHED_STATES = {"succeeded", "failed", "cancelled"}
TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
JOB_ID = TASK_ID
JOBS_PER_PAGE = 50
NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

DNS_DOWN = ("The DNS node does not answer: no master can be elected until it is back. "
            "Containers that run keep running.")
CHANGING = "Master changing over, retrying…"

# Which partial template fills which live region of each page.
FRAGMENTS: dict[str, dict[str, str]] = {
    "dashboard": {"summary": "_summary.html", "picture": "_cluster_picture.html", "members": "_members.html"},
    "jobs": {"jobs": "_jobs.html"},
    "job": {"job-head": "_job_head.html", "graph": "_job_graph.html", "tasks": "_tasks.html"},
    "failover": {"timeline": "_timeline.html", "picture": "_cluster_picture.html"},
    "tasks": {"tasks": "_tasks.html"},
    # The log tab is not polled: it streams (server-sent events, webview/log_stream.py).
    "task": {"task-head": "_task_head.html", "instances": "_instances.html", "history": "_history.html"},
}


def cluster_header(api: ClusterApi, ask_master: bool = True) -> dict[str, Any]:
    """Master, epoch and health of the control plane, for the banner on every page.

    Membership and the master's name come from the DNS service, which answers
    even while no master is active, so the header survives a failover.
    `ask_master=False` skips the master (pages that do not need its counts).
    """
    header: dict[str, Any] = {"state": "ok", "master": None, "epoch": None, "master_address": None,
                              "message": "", "counts": None, "dns": None, "status": None}
    try:
        dns = api.dns_members()
        header["dns"] = dns
        header["master"], header["epoch"] = dns.get("master"), dns.get("epoch")
        header["master_address"] = next((m.get("address") for m in dns.get("members", [])
                                         if m.get("node") == header["master"]), None)
    except DnsUnavailable:
        header.update(state="dns-down", message=DNS_DOWN)
    if not ask_master:
        return header
    try:
        status = api.status()
    except MasterUnavailable:
        if header["state"] == "ok":
            header.update(state="changing", message=CHANGING)
        return header
    except ServiceError as exc:
        header.update(state="changing", message=f"The master answered with an error: {exc.message}")
        return header
    if header["master"] is None:
        header["master"], header["epoch"] = status.get("master"), status.get("epoch")
    if status.get("active") is False and header["state"] == "ok":
        header.update(state="changing", message=CHANGING)
    header["counts"] = status.get("counts") or {}
    header["status"] = status
    return header


def public_header(header: dict[str, Any]) -> dict[str, Any]:
    """The header as sent to the browser's poller (no bulky member list)."""
    return {key: header[key] for key in ("state", "master", "epoch", "master_address", "message")}


def master_ok(header: dict[str, Any]) -> bool:
    return header["counts"] is not None


def count_rows(counts: dict[str, int] | None) -> list[tuple[str, int]]:
    """Every known state in lifecycle order (zeros too), then any others."""
    counts = counts or {}
    rows = [(state, int(counts.get(state, 0))) for state in TASK_STATES]
    rows += [(state, int(n)) for state, n in sorted(counts.items()) if state not in TASK_STATES]
    return rows


def merge_members(dns: dict[str, Any] | None, master: dict[str, Any] | None) -> list[dict[str, Any]]:
    """DNS membership (always there) joined with the master's telemetry and task counts."""
    extra = {m.get("node"): m for m in (master or {}).get("members", []) if isinstance(m, dict)}
    rows = []
    for member in (dns or master or {}).get("members", []):
        row = {**extra.get(member.get("node"), {}), **member}
        if dns:
            row["role"] = "master" if member.get("node") == dns.get("master") else "standby"
            # The master says which of the others it streams to (its standby set) and which are spares.
            if row["role"] == "standby" and extra.get(member.get("node"), {}).get("role") == "spare":
                row["role"] = "spare"
        rows.append(row)
    return rows


@dataclass(frozen=True)
class Site:
    """Where this webview stands: the DNS node's address and its own node's (marked on the picture)."""

    dns_address: str
    here: str | None = None


def dashboard_model(api: ClusterApi, site: Site, histories: history.HistoryCache | None = None) -> dict[str, Any]:
    """The cluster at a glance: summary, picture, and each member with telemetry and its last hour drawn."""
    header = cluster_header(api)
    master_members = None
    notice = "" if master_ok(header) else header["message"]
    if master_ok(header):
        try:
            master_members = histories.members(api) if histories else api.members()
        except (MasterUnavailable, ServiceError):
            notice = "Telemetry is unavailable while the master changes over."
    members = merge_members(header["dns"], master_members)
    for member in members:
        member["sparks"] = history.sparklines(member.pop("history", None))
    return {"page": "dashboard", "cluster": header, "counts": count_rows(header["counts"]),
            "members": members, "notice": notice, "picture": cluster_picture(header, members, site)}


def cluster_picture(header: dict[str, Any], members: list[dict[str, Any]], site: Site) -> topology.Picture:
    """Who is witness, master and standby, from views the header already holds (no extra request)."""
    return topology.build(header["dns"], header["status"], members, site.dns_address, site.here,
                          header["epoch"], header["master"])


def task_filters(args: Any) -> dict[str, str]:
    """The filters the task list understands, from a query string."""
    return {key: str(args.get(key, "")).strip()[:64] for key in ("state", "node", "name", "job")}


def tasks_model(api: ClusterApi, filters: dict[str, str]) -> dict[str, Any]:
    header = cluster_header(api)
    model: dict[str, Any] = {"page": "tasks", "cluster": header, "filters": filters, "tasks": None,
                             "notice": "", "nodes": [m.get("node") for m in (header["dns"] or {}).get("members", [])],
                             "states": TASK_STATES}
    if not master_ok(header):
        model["notice"] = header["message"]
        return model
    try:
        model["tasks"] = api.tasks(**filters)
    except MasterUnavailable as exc:
        model["notice"] = exc.message
    except ServiceError as exc:
        model["notice"] = f"The master refused the list: {exc.message}"
    return model


def task_nodes(task: dict[str, Any]) -> list[str]:
    """Where a task runs: its instances' nodes, or the summary's list."""
    nodes = task.get("nodes")
    if isinstance(nodes, list):
        return [str(n) for n in nodes if n]
    return sorted({str(i["node"]) for i in task.get("instances") or [] if i.get("node")})


def task_model(api: ClusterApi, task_id: str, index: int = 0, with_logs: bool = True) -> dict[str, Any]:
    """One task. `found` False means the master said 404 (not a failover). `with_logs`: the last lines
    (the page's first paint; its log tab then streams from the last line's timestamp)."""
    header = cluster_header(api)
    model: dict[str, Any] = {"page": "task", "cluster": header, "task_id": task_id, "task": None,
                             "found": True, "notice": "", "index": index, "logs": None, "logs_error": ""}
    if not master_ok(header):
        model["notice"] = header["message"]
        return model
    try:
        model["task"] = api.task(task_id)
    except MasterUnavailable as exc:
        model["notice"] = exc.message
        return model
    except ServiceError as exc:
        if exc.status == 404:
            model["found"] = False
        model["notice"] = exc.message
        return model
    instances = model["task"].get("instances") or []
    if instances and index not in {i.get("index") for i in instances}:
        model["index"] = index = instances[0].get("index", 0)
    if not with_logs:
        return model
    try:
        text, last = strip_stamps(api.logs(task_id, index).get("logs") or "")
        model["logs"] = {"logs": text, "last": last}
    except MasterUnavailable as exc:
        model["logs_error"] = exc.message
    except ServiceError as exc:
        model["logs_error"] = exc.message
    return model


def jobs_model(api: ClusterApi, before: float | None = None) -> dict[str, Any]:
    """A page of jobs, newest first; `before` (a submission time) pages back."""
    header = cluster_header(api)
    model: dict[str, Any] = {"page": "jobs", "cluster": header, "jobs": None, "notice": "", "before": before,
                             "older": None}
    if not master_ok(header):
        model["notice"] = header["message"]
        return model
    try:
        rows = api.jobs(JOBS_PER_PAGE + 1, before)
    except (MasterUnavailable, ServiceError) as exc:
        model["notice"] = exc.message
        return model
    model["jobs"] = rows[:JOBS_PER_PAGE]
    if len(rows) > JOBS_PER_PAGE:
        model["older"] = rows[JOBS_PER_PAGE - 1]["submitted_at"]
    return model


def job_model(api: ClusterApi, job_id: str, after_cache: jobs.AfterCache) -> dict[str, Any]:
    """One job: its tasks (one request) and their dependency graph (specs read once, then cached)."""
    header = cluster_header(api)
    model: dict[str, Any] = {"page": "job", "cluster": header, "job_id": job_id, "job": None, "tasks": None,
                             "graph": None, "graph_error": "", "notice": "", "found": True,
                             "filters": {"job": job_id}}
    if not master_ok(header):
        model["notice"] = header["message"]
        return model
    try:
        summaries = api.tasks(job=job_id)
        if not summaries:
            model.update(found=False, notice=f"no job {job_id}")
            return model
        model["tasks"] = summaries
        shown = [jobs.graph_task(t, jobs.after_names(t["after"]) if "after" in t else after_cache.get(t["id"], api.task))
                 for t in summaries]
    except (MasterUnavailable, ServiceError) as exc:
        model["notice"] = exc.message
        return model
    model["job"] = jobs.job_rows(summaries, 1)[0]
    try:
        model["graph"] = graph = jobs.graph(sorted(shown, key=lambda t: t.name))
    except layout.CycleError as exc:
        model["graph_error"] = str(exc)
        return model
    # The list below the graph in the graph's order: dependencies first.
    where = {name: (box.layer, box.slot) for name, box in graph.wide.boxes.items()}
    model["tasks"] = sorted(summaries, key=lambda t: where.get(t["name"], (0, 0)))
    return model


def failover_model(api: ClusterApi, site: Site) -> dict[str, Any]:
    """The last change of master as a timeline, read from the end of the event history (a few pages at most)."""
    header = cluster_header(api)
    members = merge_members(header["dns"], None)
    model: dict[str, Any] = {"page": "failover", "cluster": header, "timeline": None, "notice": "",
                             "members": members, "picture": cluster_picture(header, members, site),
                             "searched": 0}
    if not master_ok(header):
        model["notice"] = header["message"]
        return model
    last = int(header["status"].get("last_event") or 0)
    events: list[dict[str, Any]] = []
    try:
        for since in timeline.windows(last):
            page = [e for e in api.events(since) if not events or e["id"] < events[0]["id"]]
            events = page + events
            model["searched"] = len(events)
            if timeline.last_change(page) is not None:
                break
    except (MasterUnavailable, ServiceError) as exc:
        model["notice"] = exc.message
        return model
    model["timeline"] = timeline.build(events, (header["dns"] or {}).get("members"), time.time())
    return model


def render_fragments(page: str, model: dict[str, Any], render: Any) -> dict[str, str]:
    """Each live region of `page`, rendered from the model."""
    return {region: render(template, **model) for region, template in FRAGMENTS.get(page, {}).items()}

"""The webview in real headless Chromium against a real local cluster.

dnsmasq, the DNS service and three nodes (node, master, slave and webview
processes each) on their own loopback /24, real containers in the
machine's dockerd (the `cluster_pool` fixture of tests/conftest.py).
Screenshots land in artifacts/screenshots/ at laptop and phone widths.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from taskorg.client import Client
from taskorg.devtools.localcluster import LocalCluster
from tests.conftest import ClusterPool
from tests.webview.browser import (LAPTOP, PHONE, goto, horizontal_overflow, launch, log_in, screenshot,
                                  screenshot_path)

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
STATUS = "[data-live='task-head'] .badge"

LONG_SPEC = """\
name: sleeper
image: taskorg/busybox:latest
command: ["sh", "-c", "echo sleeping; while sleep 1; do echo still sleeping; done"]
restart: never
resources:
  cpus: 0.1
  memory: 16M
"""

# The bad field is on line 6: the page must flag line 6, not another.
BROKEN_SPEC = """\
name: broken
image: taskorg/busybox:latest
command: ["echo", "hi"]
restart: never
resources:
  memory: lots-of-it
  cpus: 0.1
"""
BROKEN_LINE = 6

# A job whose graph shows what the layout does: a fan-out with a parallel task, a join, and an
# edge that skips two layers (fetch -> audit). audit runs longest, so the graph shows mixed states.
GRAPH_SPEC = """\
job: graph-demo
tasks:
  - name: fetch
    image: taskorg/busybox:latest
    command: ["sh", "-c", "echo fetched"]
  - name: resize
    image: taskorg/busybox:latest
    after: [fetch]
    parallel: 4
    command: ["sh", "-c", "echo resized part $TASKORG_INDEX"]
  - name: index
    image: taskorg/busybox:latest
    after: [fetch]
    command: ["sh", "-c", "echo indexed"]
  - name: publish
    image: taskorg/busybox:latest
    after: [resize, index]
    command: ["sh", "-c", "echo published"]
  - name: audit
    image: taskorg/busybox:latest
    after: [fetch, publish]
    command: ["sh", "-c", "echo auditing; sleep 12; echo audited"]
"""


@pytest.fixture(scope="module")
def cluster(cluster_pool: ClusterPool) -> Iterator[LocalCluster]:
    """This module's own cluster, with webviews: its last test kills the master node."""
    # A history point every 2 s (10 s by default): the sparklines have a line to show within a minute.
    own = cluster_pool.make(3, webview=True, settings={"telemetry_history_step": 2, "report_resync_interval": 1})
    yield own
    cluster_pool.stop(own)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    # The webview serves HTTPS with its node certificate, signed by the test cluster's own CA.
    ctx = browser.new_context(viewport=LAPTOP, ignore_https_errors=True)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.on("dialog", lambda dialog: dialog.accept())  # the confirm() before cancel/drain
    return page


def master_index(cluster: LocalCluster) -> int:
    return cluster.index_of(cluster.wait_master())


def other_index(cluster: LocalCluster, index: int) -> int:
    return next(n for n in range(1, cluster.nodes + 1) if n != index)


def submit_spec(page: Page, base: str, text: str, action: str = "#submit-button") -> None:
    goto(page, base + "/submit")
    page.fill("#spec", text)
    page.click(action)


def test_login(cluster: LocalCluster, page: Page) -> None:
    base = cluster.webview_url(1)
    goto(page, base + "/tasks")
    expect(page).to_have_url(re.compile(r"/login\?next=/tasks"))
    page.fill("#secret", "not-the-secret-at-all")
    page.click("form button[type=submit]")
    expect(page.locator(".flash-error")).to_contain_text("neither a user token of this cluster nor the cluster secret")
    page.fill("#secret", cluster.secret)
    page.click("form button[type=submit]")
    expect(page).to_have_url(base + "/tasks")
    goto(page, base + "/")
    expect(page.locator("table.members tbody tr")).to_have_count(3)
    master = cluster.client().dns_members()["master"]
    expect(page.locator("#summary-master")).to_have_text(master)
    expect(page.locator(f"#member-{master} .role-master")).to_be_visible()
    assert cluster.secret not in page.content()


def test_submit_example_reaches_succeeded(cluster: LocalCluster, page: Page) -> None:
    base = cluster.webview_url(2)
    log_in(page, base, cluster.secret)
    submit_spec(page, base, (REPO / "examples" / "hello.yaml").read_text())
    expect(page).to_have_url(re.compile(r"/tasks/t-[0-9a-f]+"))
    expect(page.locator(".flash-ok")).to_contain_text("Submitted job")
    # No reload: the page's live polling brings the status, its log stream the logs.
    expect(page.locator(STATUS)).to_have_text("succeeded", timeout=30_000)
    expect(page.locator("pre.logs")).to_contain_text("hello from taskorg", timeout=10_000)
    expect(page.locator("table.instances tbody tr")).to_have_count(1)


def test_submit_running_then_cancel(cluster: LocalCluster, page: Page) -> None:
    base = cluster.webview_url(3)
    log_in(page, base, cluster.secret)
    submit_spec(page, base, LONG_SPEC)
    expect(page).to_have_url(re.compile(r"/tasks/t-[0-9a-f]+"))
    task_id = page.url.rsplit("/", 1)[-1]
    expect(page.locator(STATUS)).to_have_text("running", timeout=30_000)
    expect(page.locator("pre.logs")).to_contain_text("sleeping", timeout=10_000)
    # Later lines come over the log tab's server-sent events (the polling no longer renders logs);
    # the first may already be in the first paint when the container starts before the page loads.
    expect(page.locator("body")).to_have_attribute("data-log-lines", re.compile(r"^[1-9]"))
    for size in (LAPTOP, PHONE):
        page.set_viewport_size(size)
        page.wait_for_timeout(300)
        screenshot(page, "task")
        assert horizontal_overflow(page) <= 0
    page.set_viewport_size(LAPTOP)
    page.click("#cancel-task")
    expect(page.locator(".flash-ok")).to_contain_text(f"Cancelled {task_id}")
    expect(page.locator(STATUS)).to_have_text("cancelled", timeout=15_000)
    assert Client(cluster.config, cluster.secret).task(task_id)["status"] == "cancelled"
    # The task list filters by state and shows it.
    goto(page, base + "/tasks?state=cancelled")
    expect(page.locator(f"tr[data-task='{task_id}']")).to_be_visible()
    goto(page, base + "/tasks?state=running")
    expect(page.locator(f"tr[data-task='{task_id}']")).to_have_count(0)


def test_broken_spec_shows_the_error_at_its_line(cluster: LocalCluster, page: Page) -> None:
    base = cluster.webview_url(1)
    log_in(page, base, cluster.secret)
    for size in (LAPTOP, PHONE):
        page.set_viewport_size(size)
        submit_spec(page, base, BROKEN_SPEC)
        bad = page.locator("#listing li.bad")
        expect(bad).to_have_count(1)
        expect(bad).to_have_attribute("id", f"line-{BROKEN_LINE}")
        expect(bad.locator(".problem")).to_contain_text("resources.memory")
        expect(bad.locator(".text")).to_have_text("  memory: lots-of-it")
        expect(page.locator(f".gutter .bad")).to_have_text(str(BROKEN_LINE))
        expect(page.locator("#spec")).to_have_value(BROKEN_SPEC)  # the text is kept to fix it
        screenshot(page, "submit-error")
        assert horizontal_overflow(page) <= 0
    tasks = Client(cluster.config, cluster.secret).tasks(name="broken")
    assert tasks == []  # nothing half-applied


def test_preview_shows_where_it_would_run(cluster: LocalCluster, page: Page) -> None:
    base = cluster.webview_url(1)
    log_in(page, base, cluster.secret)
    submit_spec(page, base, (REPO / "examples" / "hello.yaml").read_text(), action="#preview-button")
    row = page.locator("#placements tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("hello")
    expect(row.locator(".chip")).to_have_text(re.compile(r"node\d"))


def test_form_without_csrf_token_is_refused(cluster: LocalCluster, page: Page) -> None:
    base = cluster.webview_url(1)
    log_in(page, base, cluster.secret)
    submit_spec(page, base, LONG_SPEC.replace("sleeper", "csrf-target"))
    expect(page.locator(STATUS)).to_have_text(re.compile("starting|running"), timeout=30_000)
    task_id = page.url.rsplit("/", 1)[-1]
    # A form like another site would send: the session cookie, but no token.
    page.evaluate("""(action) => {
        const form = document.createElement('form');
        form.method = 'post';
        form.action = action;
        document.body.appendChild(form);
        form.submit();
    }""", f"/tasks/{task_id}/cancel")
    expect(page.locator("h1")).to_have_text("Form refused")
    answer = page.request.post(base + f"/tasks/{task_id}/cancel", form={"x": "1"})
    assert answer.status == 400
    time.sleep(1)
    assert Client(cluster.config, cluster.secret).task(task_id)["status"] in ("starting", "running")


def test_dashboard_screenshots(cluster: LocalCluster, page: Page) -> None:
    base = cluster.webview_url(1)
    log_in(page, base, cluster.secret)
    expect(page.locator("table.members tbody tr .health.ok")).to_have_count(3)
    expect(page.locator("table.members tbody tr").first).to_contain_text("%", timeout=10_000)  # telemetry
    master = cluster.client().dns_members()["master"]
    for size, drawing in ((LAPTOP, "pic-wide"), (PHONE, "pic-narrow")):
        page.set_viewport_size(size)
        picture = page.locator(f"#cluster-picture svg.{drawing}")
        expect(picture).to_be_visible()
        # The witness and three nodes, all healthy; the master streams to both standbys.
        expect(picture.locator("g.machine[data-health=ok]")).to_have_count(4)
        expect(picture.locator(f"g.machine-master[data-node={master}]")).to_contain_text("master")
        expect(picture.locator(f"path.link-replication[data-from={master}]")).to_have_count(2)
        expect(picture.locator("path.link-heartbeat.link-down")).to_have_count(0)
        expect(picture.locator("g.machine-here")).to_contain_text("this webview")
        page.wait_for_timeout(300)
        screenshot(page, "dashboard")
        assert horizontal_overflow(page) <= 0


def test_drain_and_undrain_a_node(cluster: LocalCluster, page: Page) -> None:
    target = cluster.node_name(other_index(cluster, master_index(cluster)))
    base = cluster.webview_url(1)
    log_in(page, base, cluster.secret)
    row = page.locator(f"#member-{target}")
    row.get_by_role("button", name="Drain").click()
    expect(page.locator(".flash-ok")).to_contain_text(f"{target} is draining")
    expect(row.locator(".role-draining")).to_have_text("draining")
    members = {m["node"]: m for m in cluster.client().dns_members()["members"]}
    assert members[target]["state"] == "draining"
    row.get_by_role("button", name="Undrain").click()
    expect(row.locator(".role-draining")).to_have_count(0)
    expect(row.get_by_role("button", name="Drain")).to_be_visible()


def test_task_page_shows_the_result(cluster: LocalCluster, page: Page) -> None:
    client = Client(cluster.config, cluster.secret)
    job = client.submit((REPO / "examples" / "montecarlo-pi.yaml").read_text(), source="pi.yaml")
    merge = next(t["id"] for t in job["tasks"] if t["name"] == "merge")
    base = cluster.webview_url(1)
    log_in(page, base, cluster.secret)
    goto(page, f"{base}/tasks/{merge}")
    expect(page.locator(STATUS)).to_have_text("succeeded", timeout=60_000)
    page.reload()
    expect(page.locator("#task-result")).to_contain_text('"pi": 3.1')


def test_job_page_draws_the_dependency_graph(cluster: LocalCluster, page: Page) -> None:
    job = Client(cluster.config, cluster.secret).submit(GRAPH_SPEC, source="graph-demo.yaml")
    ids = {t["name"]: t["id"] for t in job["tasks"]}
    base = cluster.webview_url(2)
    log_in(page, base, cluster.secret)
    goto(page, base + "/jobs")
    page.locator(f"tr[data-job='{job['job']}'] a").click()
    expect(page).to_have_url(f"{base}/jobs/{job['job']}")
    graph = page.locator("#job-graph .pic-wide")
    expect(graph.locator("a.gnode")).to_have_count(5)
    for source, target in (("fetch", "resize"), ("fetch", "index"), ("resize", "publish"), ("index", "publish"),
                           ("publish", "audit"), ("fetch", "audit")):
        expect(graph.locator(f"path.edge[data-from={source}][data-to={target}]")).to_have_count(1)
    expect(graph.locator(f"a.gnode[data-task='{ids['resize']}'] rect.pip")).to_have_count(4)  # one per part
    # The live poll brings each task's state onto the graph, in words as well as colour.
    expect(graph.locator(f"a.gnode[data-task='{ids['audit']}']")).to_have_attribute("data-status", "running",
                                                                                    timeout=90_000)
    expect(graph.locator("a.gnode[data-status=succeeded]")).to_have_count(4)
    expect(graph.locator(f"a.gnode[data-task='{ids['publish']}']")).to_contain_text("✓ succeeded")
    expect(graph.locator(f"a.gnode[data-task='{ids['resize']}']")).to_contain_text("4/4 done")
    for size, drawing in ((LAPTOP, "pic-wide"), (PHONE, "pic-narrow")):
        page.set_viewport_size(size)
        expect(page.locator(f"#job-graph .{drawing} a.gnode")).to_have_count(5)
        page.wait_for_timeout(300)
        screenshot(page, "job-graph")
        assert horizontal_overflow(page) <= 0
    page.locator(f"#job-graph .pic-narrow a.gnode[data-task='{ids['audit']}']").click()
    expect(page).to_have_url(f"{base}/tasks/{ids['audit']}")
    expect(page.locator("pre.logs")).to_contain_text("auditing")
    expect(page.locator(STATUS)).to_have_text("succeeded", timeout=30_000)


def test_sparklines_disks_and_dns_servers(cluster: LocalCluster, page: Page) -> None:
    """Every node's last hour drawn as four sparklines from the master's history, its disk, and the
    DNS services' roles on the cluster picture; screenshots at laptop and phone widths."""
    base = cluster.webview_url(1)
    log_in(page, base, cluster.secret)
    rows = page.locator("table.members tbody tr")
    expect(rows).to_have_count(3)
    for row in rows.all():
        for figure in ("cpu", "memory", "disk", "temperature"):
            expect(row.locator(f"svg.spark-{figure}")).to_have_count(1)
        # A point per 2 s: wait for the live updates to bring at least ten (the step being filled is one).
        for figure in ("cpu", "memory", "disk"):
            expect(row.locator(f"svg.spark-{figure}")).to_have_attribute("data-points", re.compile(r"^(\d\d+)$"),
                                                                         timeout=60_000)
            expect(row.locator(f"svg.spark-{figure} path.spark-line")).not_to_have_count(0)
            expect(row.locator(f"svg.spark-{figure}")).to_have_attribute("aria-label", re.compile(r" now; .* in the last \d+ min$"))
        expect(row.locator(".disk[data-holds*=state] meter")).to_have_count(1)
    # Each sparkline's line stays inside its box.
    boxes = page.evaluate("""() => [...document.querySelectorAll('svg.spark')].map(svg => {
        const box = svg.getBoundingClientRect();
        return [...svg.querySelectorAll('path.spark-line')].every(path => {
            const r = path.getBoundingClientRect();
            return r.left >= box.left - 1 && r.right <= box.right + 1 && r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
        });
    })""")
    assert boxes and all(boxes)
    # The same history through the API, as the master keeps it: real disks and CPU, a point per 2 s.
    node = cluster.node_name(1)
    kept = cluster.client().node_history(node)
    assert (kept["node"], kept["step"], kept["span"]) == (node, 2.0, 3600.0)
    assert len(kept["points"]) >= 10 and all(0 < p["disk"] < 100 for p in kept["points"][-5:])
    assert [p["time"] for p in kept["points"]] == sorted(p["time"] for p in kept["points"])
    voters = cluster.client().dns_members()["dns_servers"]["voters"]
    picture = page.locator("#cluster-picture svg.pic-wide")
    expect(picture.locator("g.machine[data-dns=voter]")).to_have_count(len(voters))
    expect(page.locator("#dns-summary")).to_contain_text(f"DNS servers: {len(voters)} voters")
    for size in (LAPTOP, PHONE):
        page.set_viewport_size(size)
        expect(rows.first.locator("svg.spark-cpu")).to_be_visible()
        page.wait_for_timeout(300)
        screenshot(page, "sparklines")
        members = screenshot_path("sparklines-members", size["width"])
        # The live region's own box: its table is swapped for a fresh one every poll, which an
        # element screenshot would lose between finding it and taking the picture.
        page.locator('[data-live="members"]').screenshot(path=str(members))
        assert horizontal_overflow(page) <= 0


def test_kill_master_and_the_page_recovers(cluster: LocalCluster, page: Page) -> None:
    """Runs last in this module: it leaves the cluster one node short."""
    old = master_index(cluster)
    old_name = cluster.node_name(old)
    watcher = other_index(cluster, old)
    base = cluster.webview_url(watcher)
    # One replica per node (placement spreads them): the master's own must move when it dies.
    spec = LONG_SPEC.replace("sleeper", "survivor").replace("restart: never", "restart: always\nreplicas: 3")
    job = cluster.client().submit(spec, source="survivor.yaml")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        instances = cluster.client().task(job["tasks"][0]["id"])["instances"]
        if [i["status"] for i in instances] == ["running"] * 3:
            break
        time.sleep(0.2)
    log_in(page, base, cluster.secret)
    expect(page.locator("#summary-master")).to_have_text(old_name)
    expect(page.locator("body[data-polled]")).to_have_count(1)  # the live poll is running
    cluster.kill_node(old)
    banner = page.locator("#master-changed")
    expect(banner).to_be_visible(timeout=20_000)
    expect(banner).to_contain_text(f"The master changed: {old_name} \u2192 node")
    new_name = cluster.client().dns_members()["master"]
    assert new_name != old_name
    expect(banner).to_contain_text(new_name)
    expect(page.locator("#summary-master")).to_have_text(new_name)
    expect(page.locator('#master-pill [data-field="master"]')).to_have_text(new_name)
    expect(page.locator("#summary-state")).to_have_text("healthy", timeout=20_000)
    expect(page.locator("#cluster-state")).to_be_hidden()
    expect(page.locator(f"#member-{old_name} .health.down")).to_be_visible(timeout=10_000)
    screenshot(page, "dashboard-after-failover")
    # Every page works against the new master, and the notice follows the user.
    goto(page, base + "/tasks")
    expect(page.locator(f"tr[data-task='{job['tasks'][0]['id']}']")).to_be_visible()
    expect(page.locator("#master-changed")).to_be_visible()
    assert "Traceback" not in page.content()
    # The timeline of this failover: elected, placed again, back running; the picture shows the dead node.
    goto(page, base + "/failover")
    summary = page.locator("#timeline-summary")
    expect(summary).to_contain_text(f"{old_name} → {new_name}: every task back", timeout=30_000)
    for kind in ("heard", "elected", "rescheduled", "back"):
        expect(page.locator(f"#timeline .pic-wide g.step[data-kind={kind}]")).to_have_count(1)
    expect(page.locator(f"#cluster-picture .pic-wide g.machine[data-node={old_name}][data-health=down]")).to_have_count(1)
    for size in (LAPTOP, PHONE):
        page.set_viewport_size(size)
        page.wait_for_timeout(300)
        screenshot(page, "failover")
        assert horizontal_overflow(page) <= 0

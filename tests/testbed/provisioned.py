"""A provisioned testbed for a test module: hosts booted, the real playbook run, the task image loaded.

Each testbed module gets its own (module scope), so its failures start from a known cluster;
the timings of each step are printed at the end, and the journals when a test failed.
"""

from __future__ import annotations

import os
import time
from typing import Any, Iterator

import pytest

from .checks import require_tools
from .hosts import Testbed, log
from .image import ensure_image
from .wheelhouse import build_wheelhouse

TASK_IMAGE = "taskorg/busybox:latest"
# Every machine logs each lease it holds here (setting `lease_log`): tests check no two overlap.
LEASE_LOG = "/var/lib/taskorg/lease.log"


def sleepers_job(name: str, replicas: int) -> str:
    """A job of `replicas` sleepers that stop at once on SIGTERM and always restart."""
    return (f"job: {name}\ntasks:\n  - name: sleeper\n    image: {TASK_IMAGE}\n"
            f"    command: [sh, -c, \"trap 'exit 0' TERM; while true; do sleep 1; done\"]\n"
            f"    replicas: {replicas}\n    restart: always\n")


def provisioned_testbed(request: pytest.FixtureRequest, variables: dict[str, Any] | None = None) -> Iterator[Testbed]:
    """Yield a testbed the playbook provisioned (inventory `variables` added), then remove it."""
    require_tools()
    from taskorg.devtools.images import ensure_busybox_image

    started = time.monotonic()
    image = ensure_image()
    bed = Testbed(image)
    timings = bed.timings
    timings["host image (build or reuse)"] = time.monotonic() - started
    failed_before = request.session.testsfailed
    try:
        mark = time.monotonic()
        bed.up()
        timings["4 hosts boot, sshd answering"] = time.monotonic() - mark
        mark = time.monotonic()
        build_wheelhouse(bed.workdir / "wheelhouse")
        timings["wheelhouse"] = time.monotonic() - mark
        bed.write_inventory(variables)
        run = bed.run_playbook()
        timings["first playbook run"] = run.seconds
        assert run.returncode == 0 and run.recap, f"the playbook failed:\n{run.output[-6000:]}"
        assert all(c["failed"] == 0 and c["unreachable"] == 0 for c in run.recap.values()), run.recap
        mark = time.monotonic()
        ensure_busybox_image()
        bed.load_image(TASK_IMAGE, [h.name for h in bed.node_hosts])
        timings["task image into 3 hosts"] = time.monotonic() - mark
        yield bed
    finally:
        if request.session.testsfailed > failed_before:
            bed.dump_journals()
        for name, seconds in timings.items():
            log(f"timing: {name}: {seconds:.1f}s")
        if os.environ.get("TASKORG_TESTBED_KEEP"):
            log(f"TASKORG_TESTBED_KEEP: testbed left running, state in {bed.workdir}")
        else:
            bed.teardown()

"""Fixtures for tiers that need a running local cluster.

`cluster` is one 3-node cluster shared by the tests that leave it as they
found it; `cluster_factory` makes fresh ones for tests that kill, restart or
partition nodes. Each cluster has its own loopback /24, directory and
container label, and is stopped (processes by pid, containers by label) at
the end.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from taskorg.localcluster import LocalCluster
from tests.helpers import free_loopback_block

_counter = itertools.count(30)


@pytest.fixture(scope="session")
def busybox_tag() -> str:
    from taskorg.images import ensure_busybox_image

    return ensure_busybox_image()


@pytest.fixture(scope="session")
def cluster_factory(busybox_tag: str) -> Iterator[Callable[..., LocalCluster]]:
    created: list[LocalCluster] = []

    def make(nodes: int = 3, webview: bool = False, settings: dict[str, Any] | None = None,
             node_labels: dict[int, dict[str, str]] | None = None) -> LocalCluster:
        address = free_loopback_block(start=next(_counter))
        workdir = Path(tempfile.mkdtemp(prefix="taskorg-test-", dir="/tmp"))
        cluster = LocalCluster(workdir, nodes=nodes, dns_address=address, name=f"test-{workdir.name[-8:]}",
                               settings=settings, webview=webview, node_labels=node_labels)
        created.append(cluster)
        try:
            cluster.start(timeout=60)
        except Exception:
            logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in (workdir / "logs").glob("*.log"))
            raise AssertionError(f"local cluster did not start:\n{logs}")
        return cluster

    yield make
    artifacts = Path(__file__).resolve().parents[1] / "artifacts" / "cluster-logs"
    if os.environ.get("TASKORG_TEST_KEEP_CLUSTERS"):
        return  # debugging: leave them running (`taskorg cluster down --dir DIR` stops one)
    for cluster in created:
        cluster.stop()
        # Keep the services' logs as test artifacts (git-ignored), then clean up.
        shutil.copytree(cluster.workdir / "logs", artifacts / cluster.name, dirs_exist_ok=True)
        shutil.rmtree(cluster.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster(cluster_factory: Callable[..., LocalCluster]) -> LocalCluster:
    """A shared 3-node cluster; node 2 carries the label gpu=true."""
    return cluster_factory(3, node_labels={2: {"gpu": "true"}})

"""Fixtures for tiers that need a running local cluster.

`cluster_pool` starts and stops clusters; `cluster_factory` makes fresh ones
for a test that kills, restarts or partitions nodes, stopped when that test
ends. Each cluster has its own loopback /24, directory and container label,
and is stopped by pid and by label, never by name.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from taskorg.devtools.localcluster import LocalCluster
from tests.helpers import free_loopback_block

_counter = itertools.count(30)


@pytest.fixture(scope="session")
def busybox_tag() -> str:
    from taskorg.devtools.images import ensure_busybox_image

    return ensure_busybox_image()


class ClusterPool:
    """Starts test clusters and stops them (processes by pid, containers by label).

    A cluster lives as long as the fixture that asked for it: a test's own
    clusters stop when the test ends, so a chaos test's dozens of containers
    do not weigh on dockerd for the rest of the suite.
    """

    def __init__(self) -> None:
        self.running: list[LocalCluster] = []
        self.made: list[LocalCluster] = []
        self.artifacts = Path(__file__).resolve().parents[1] / "artifacts" / "cluster-logs"
        self.keep = bool(os.environ.get("TASKORG_TEST_KEEP_CLUSTERS"))  # debugging: leave them running

    def make(self, nodes: int = 3, webview: bool = False, settings: dict[str, Any] | None = None,
             node_labels: dict[int, dict[str, str]] | None = None,
             node_env: dict[int, dict[str, str]] | None = None,
             before_start: Callable[[Path], None] | None = None) -> LocalCluster:
        """`node_env`: extra environment per node (e.g. a PATH with a fake nvidia-smi); `before_start(workdir)`
        prepares the cluster's directory first (e.g. a tmpfs as a node's state dir)."""
        address = free_loopback_block(start=next(_counter))
        workdir = Path(tempfile.mkdtemp(prefix="taskorg-test-", dir="/tmp"))
        if before_start:
            before_start(workdir)
        cluster = LocalCluster(workdir, nodes=nodes, dns_address=address, name=f"test-{workdir.name[-8:]}",
                               settings=settings, webview=webview, node_labels=node_labels,
                               node_env=node_env)
        self.running.append(cluster)
        self.made.append(cluster)
        try:
            cluster.start(timeout=60)
        except Exception:
            logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in (workdir / "logs").glob("*.log"))
            raise AssertionError(f"local cluster did not start:\n{logs}")
        return cluster

    def stop(self, cluster: LocalCluster) -> None:
        if cluster not in self.running or self.keep:
            return  # kept: `taskorg cluster down --dir DIR` stops one
        self.running.remove(cluster)
        cluster.stop()
        # Keep the services' logs as test artifacts (git-ignored), then clean up.
        shutil.copytree(cluster.workdir / "logs", self.artifacts / cluster.name, dirs_exist_ok=True)
        shutil.rmtree(cluster.workdir, ignore_errors=True)

    def stop_all(self) -> None:
        for cluster in list(self.running):
            self.stop(cluster)
        if not self.keep:
            # A container whose create dockerd finished after its cluster's own sweeps (a slave
            # killed mid-create, under load) is left "Created": ours by label, so removed here.
            for cluster in self.made:
                cluster.remove_containers()


@pytest.fixture(scope="session")
def cluster_pool(busybox_tag: str) -> Iterator[ClusterPool]:
    pool = ClusterPool()
    yield pool
    pool.stop_all()


@pytest.fixture
def cluster_factory(cluster_pool: ClusterPool) -> Iterator[Callable[..., LocalCluster]]:
    """Fresh clusters for one test (it may kill, restart or partition them); stopped when it ends."""
    mine: list[LocalCluster] = []

    def make(*args: Any, **kwargs: Any) -> LocalCluster:
        cluster = cluster_pool.make(*args, **kwargs)
        mine.append(cluster)
        return cluster

    yield make
    for cluster in mine:
        cluster_pool.stop(cluster)

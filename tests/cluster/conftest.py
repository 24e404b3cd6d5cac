"""Fixtures for the local-cluster tier: a real dockerd and the locally built busybox image."""

from __future__ import annotations

from typing import Iterator

import docker
import pytest

from taskorg.devtools.images import ensure_busybox_image
from taskorg.devtools.localcluster import LocalCluster
from tests.conftest import ClusterPool


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """The local engine; the cluster tier needs it running (a failure, not a skip)."""
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        pytest.fail(f"cluster tests need a running dockerd (`nohup dockerd >/var/log/dockerd.log 2>&1 &`): {exc}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def busybox_image(docker_client: docker.DockerClient) -> str:
    """`taskorg/busybox:latest`, built once (cached by content across runs)."""
    return ensure_busybox_image(docker_client)


@pytest.fixture(scope="package")
def cluster(cluster_pool: ClusterPool) -> Iterator[LocalCluster]:
    """A 3-node cluster shared by this tier's tests that leave it as they found it; node 2 has gpu=true."""
    shared = cluster_pool.make(3, node_labels={2: {"gpu": "true"}})
    yield shared
    cluster_pool.stop(shared)

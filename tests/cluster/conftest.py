"""Fixtures for the local-cluster tier: a real dockerd and the locally built busybox image."""

from __future__ import annotations

from typing import Iterator

import docker
import pytest

from taskorg.images import ensure_busybox_image


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

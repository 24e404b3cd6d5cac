"""Sweeping the local cluster's containers off this machine's dockerd, by the cluster's label
(and a node's): the only way the local cluster touches docker itself."""

from __future__ import annotations

import time
from typing import Callable


def sweep_containers(cluster: str, kill_only: bool, node: str | None = None) -> int:
    """Kill (`kill_only`: the running ones) or remove every container labelled with the cluster
    (and the node); how many there were."""
    import docker

    client = docker.from_env()
    labels = [f"taskorg.cluster={cluster}"] + ([f"taskorg.node={node}"] if node else [])
    found = client.containers.list(all=True, filters={"label": labels}, ignore_removed=True)
    for container in found:
        try:
            if kill_only:
                if container.status == "running":
                    container.kill()
            else:
                container.remove(force=True)
        except docker.errors.APIError:
            pass
    client.close()
    return len(found)


def sweep_until_empty(sweep: Callable[[], int], rounds: int = 3, pause: float = 0.5) -> None:
    """dockerd may finish a create that a slave asked for just before it died: sweep again until a
    listing comes back empty (bounded)."""
    for _ in range(rounds):
        if not sweep():
            break
        time.sleep(pause)

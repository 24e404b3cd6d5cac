"""GPUs and machine labels in placement on a real local cluster (issue 16).

Node 2's processes find a fake `nvidia-smi` first on their PATH, so its
telemetry reports one GPU; the other nodes report none. A task asking for a
GPU goes to node 2 only. This machine has no NVIDIA runtime, so Docker
refuses to start a container whose HostConfig carries a DeviceRequest for
GPUs: that refusal, in the instance's error, is Docker's own proof that the
request reached it (the create arguments are unit-tested in
tests/unit/test_create_args.py). Every node's automatic `arch` label is
usable in a constraint.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import pytest

from taskorg.devtools.localcluster import LocalCluster
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster
FAKE_NVIDIA_SMI = "#!/bin/sh\n# a fake GPU for placement tests: name, memory.total [MiB], memory.used [MiB], " \
                  "utilization [%]\necho 'Fake GPU 0, 8192, 0, 0'\n"


def fake_gpu_path(directory: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    binary = directory / "nvidia-smi"
    binary.write_text(FAKE_NVIDIA_SMI)
    binary.chmod(0o755)
    return f"{directory}:{os.environ.get('PATH', '/usr/bin:/bin')}"


def instances(cluster: LocalCluster, task_id: str) -> list[dict[str, Any]]:
    return list(cluster.client().task(task_id)["instances"])


def test_a_gpu_task_goes_only_to_the_node_with_a_gpu_and_its_request_reaches_docker(
        cluster_factory: Any, busybox_image: str, tmp_path: Path) -> None:
    cluster: LocalCluster = cluster_factory(3, node_env={2: {"PATH": fake_gpu_path(tmp_path / "fake-gpu")}})
    gpu_node = cluster.node_name(2)
    wait_until(lambda: {m["node"]: len((m.get("telemetry") or {}).get("gpus") or ())
                        for m in cluster.client().members()["members"]}.get(gpu_node) == 1, 30,
               f"{gpu_node}'s telemetry to report its GPU", interval=0.3)
    client = cluster.client()
    job = client.submit(f"""
job: gpu
tasks:
  - name: train
    image: {busybox_image}
    command: [sh, -c, 'exit 0']
    restart: never
    replicas: 2
    gpus: 1
  - name: on-this-arch
    image: {busybox_image}
    command: [sleep, '300']
    constraints: {{rules: ['node.platform.arch == {platform.machine()}', 'node.labels.arch != sparc']}}
  - name: on-another-arch
    image: {busybox_image}
    command: [sleep, '300']
    constraints: {{rules: ['node.labels.arch == sparc']}}
""", source="gpu.yaml")
    ids = {t["name"]: t["id"] for t in job["tasks"]}
    try:
        # Two replicas, one GPU in the cluster: one is placed on the GPU node, the other waits for a free
        # GPU and says why (the first holds it until Docker's refusal ends it, then the second goes there).
        reasons: set[str] = set()

        def settled() -> list[dict[str, Any]] | None:
            task = client.task(ids["train"])
            if task.get("reason"):
                reasons.add(task["reason"])
            found = list(task["instances"])
            return found if all(i["status"] in ("failed", "error") for i in found) else None
        done = wait_until(settled, 90, "both GPU replicas to end", interval=0.1)
        assert {i["node"] for i in done} == {gpu_node}
        errors = [i["error"] or "" for i in done]
        print(f"GPU replicas: {[(i['node'], i['status'], i['error']) for i in done]}; reasons seen: {reasons}")
        assert all("could not select device driver" in e and "gpu" in e for e in errors), errors
        history = client.task(ids["train"])["history"]
        assert {h["node"] for h in history if h.get("node")} <= {gpu_node}

        wait_until(lambda: [i["status"] for i in instances(cluster, ids["on-this-arch"])] == ["running"], 60,
                   "the task constrained to this machine's arch to run", interval=0.3)
        waiting = client.task(ids["on-another-arch"])
        assert [i["status"] for i in waiting["instances"]] == ["pending"]
        assert "node.labels.arch == sparc wanted, node has arch=" in (waiting.get("reason") or "")
    finally:
        for task_id in ids.values():
            client.cancel(task_id)

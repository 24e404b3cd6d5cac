"""A start order -> docker's create arguments (taskorg/slave/runner/create_args.py), without dockerd.

Proves: the container carries the cluster's, node's and instance's labels
(the task's own labels too, never over taskorg's) and the task's environment
(order env over spec env, taskorg's own last); every spec field that means
something to Docker reaches its create argument (health check in ns, stop
grace and signal, limits but not reservations, devices, GPUs as a
DeviceRequest, capabilities, tmpfs with its size, secrets and configs as
read-only files, host_ip, platform, user, working_dir, entrypoint); every
container gets the defaults (no-new-privileges, a pids limit, NET_RAW
dropped unless added back, a memory limit); ports bind to the node's own
address unless the spec names one; the job's shared directory is mounted at
/shared only when the cluster has one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from taskorg import labels
from taskorg.protocol import StartOrder
from taskorg.slave.runner import OrderError
from taskorg.slave.runner.create_args import (SHARED_TARGET, Site, container_files_dir, create_args,
                                              shared_job_dir)
from taskorg.spec import (Device, FileMount, GpuRequest, HealthCheck, Port, Resources, TaskSpec, Volume,
                          parse_spec_text)

SITE = Site("unit", "node2", "127.0.9.2", files_dir="/state/slave/files", memory_limit=256 * 2**20,
            pids_limit=100)
BASE = TaskSpec(name="t", image="img:1", env={"A": "true", "B": "spec", "C": ""})


def order(job: str = "j-7", **changes: Any) -> StartOrder:
    return StartOrder(epoch=4, task_id="t-1", index=2, attempt=3, job=job, env={"B": "order"},
                      spec=replace(BASE, **changes))


def test_labels_and_environment() -> None:
    args = create_args(order(labels={"team": "lab", labels.NODE: "forged"}), "tk-x", SITE)
    assert args["labels"] == {"team": "lab", labels.CLUSTER: "unit", labels.NODE: "node2", labels.TASK: "t-1",
                              labels.INSTANCE: "t-1/2", labels.EPOCH: "4", labels.ATTEMPT: "3", labels.JOB: "j-7",
                              labels.STOP_GRACE: "10"}
    env = args["environment"]
    assert (env["A"], env["B"], env["C"]) == ("true", "order", "")
    assert (env["TASKORG_TASK_ID"], env["TASKORG_INDEX"], env["TASKORG_NODE"], env["TASKORG_ATTEMPT"]) == \
        ("t-1", "2", "node2", "3")
    assert (args["name"], args["image"], args["network_mode"], args["init"]) == ("tk-x", "img:1", "bridge", True)
    assert "nano_cpus" not in args and "ports" not in args and "healthcheck" not in args


def test_every_container_gets_the_defaults() -> None:
    args = create_args(order(), "tk-x", SITE)
    assert args["security_opt"] == ["no-new-privileges"]
    assert (args["pids_limit"], args["mem_limit"], args["cap_drop"]) == (100, 256 * 2**20, ["NET_RAW"])
    assert "stop_signal" not in args and "cap_add" not in args
    added_back = create_args(order(cap_add=("NET_RAW",), cap_drop=("MKNOD",)), "tk-x", SITE)
    assert (added_back["cap_add"], added_back["cap_drop"]) == (["NET_RAW"], ["MKNOD"])


def test_ports_bind_to_the_node_address_or_their_own_and_limits_are_enforced_reservations_not() -> None:
    args = create_args(order(ports=(Port(80, 8080), Port(53, None, "udp"), Port(81, 8081, "tcp", "127.0.9.9")),
                             resources=Resources(cpus=0.5, memory=64 * 2**20),
                             reservations=Resources(cpus=0.25, memory=32 * 2**20)), "tk-x", SITE)
    assert args["ports"] == {"80/tcp": ("127.0.9.2", 8080), "53/udp": ("127.0.9.2",),
                             "81/tcp": ("127.0.9.9", 8081)}
    assert (args["nano_cpus"], args["mem_limit"]) == (500_000_000, 64 * 2**20)
    assert "mem_reservation" not in args and "cpu_shares" not in args
    assert "ports" not in create_args(order(network="host", ports=(Port(80),)), "tk-x", SITE)


def test_a_health_check_reaches_docker_in_nanoseconds() -> None:
    check = HealthCheck(test=("CMD-SHELL", "wget -q -O- localhost"), interval=2.5, timeout=1.0, retries=4,
                        start_period=3.0, start_interval=0.5)
    assert create_args(order(healthcheck=check), "tk-x", SITE)["healthcheck"] == {
        "Test": ["CMD-SHELL", "wget -q -O- localhost"], "Interval": 2_500_000_000, "Timeout": 1_000_000_000,
        "Retries": 4, "StartPeriod": 3_000_000_000, "StartInterval": 500_000_000}
    off = create_args(order(healthcheck=HealthCheck(test=("NONE",))), "tk-x", SITE)
    assert off["healthcheck"] == {"Test": ["NONE"]}


def test_lifecycle_identity_and_platform_fields() -> None:
    args = create_args(order(stop_grace_period=29.5, stop_signal="SIGINT", user="1000:1000", workdir="/work",
                             entrypoint=("/bin/sh", "-c"), command=("echo hi",), platform="linux/arm64"),
                       "tk-x", SITE)
    assert (args["labels"][labels.STOP_GRACE], args["stop_signal"], args["user"], args["working_dir"]) == \
        ("30", "SIGINT", "1000:1000", "/work")  # a grace period is never cut short
    assert (args["entrypoint"], args["command"], args["platform"]) == (["/bin/sh", "-c"], ["echo hi"], "linux/arm64")


def test_devices_and_gpus() -> None:
    args = create_args(order(devices=(Device("/dev/ttyUSB0", "/dev/ttyS9", "rw"),), gpus=GpuRequest(count=2)),
                       "tk-x", SITE)
    assert args["devices"] == ["/dev/ttyUSB0:/dev/ttyS9:rw"]
    [request] = args["device_requests"]
    assert (request["Count"], request["Capabilities"], request["DeviceIDs"]) == (2, [["gpu"]], [])
    [by_id] = create_args(order(gpus=GpuRequest(device_ids=("GPU-1",), driver="nvidia")), "tk-x",
                          SITE)["device_requests"]
    assert (by_id["Driver"], by_id["DeviceIDs"], by_id["Count"]) == ("nvidia", ["GPU-1"], 0)
    assert create_args(order(gpus=GpuRequest(count=-1)), "tk-x", SITE)["device_requests"][0]["Count"] == -1


def test_volumes_tmpfs_secrets_and_configs() -> None:
    spec_volumes = (Volume("data", "/data"), Volume("", "/run", type="tmpfs", size=65536),
                    Volume("", "/scratch", type="tmpfs", read_only=True))
    secret = FileMount("db_password", "/run/secrets/db_password", "s3cret")
    config = FileMount("app", "/etc/app.conf", "x=1", mode=0o440)
    args = create_args(order(volumes=spec_volumes, secrets=(secret,), configs=(config,)), "tk-x", SITE)
    assert args["tmpfs"] == {"/run": "size=65536", "/scratch": "ro"}
    mounts = [(m["Type"], m["Source"], m["Target"], m["ReadOnly"]) for m in args["mounts"]]
    folder = container_files_dir(SITE, "tk-x")
    assert str(folder) == "/state/slave/files/tk-x"
    assert mounts == [("volume", "data", "/data", False),
                      ("bind", f"{folder}/secret-0", "/run/secrets/db_password", True),
                      ("bind", f"{folder}/config-0", "/etc/app.conf", True)]
    assert args["mounts"][0]["VolumeOptions"]["Labels"] == {labels.CLUSTER: "unit"}


def test_the_shared_directory_only_when_the_cluster_has_one() -> None:
    assert shared_job_dir(SITE, order()) is None
    shared = replace(SITE, shared_dir="/srv/shared")
    args = create_args(order(), "tk-x", shared)
    assert [(m["Target"], m["Source"]) for m in args["mounts"]] == [(SHARED_TARGET, "/srv/shared/j-7")]
    assert args["environment"]["TASKORG_SHARED"] == SHARED_TARGET
    with pytest.raises(OrderError, match="order field 'job': job id '../x' cannot name a directory"):
        create_args(order(job="../x"), "tk-x", shared)


def test_a_compose_service_maps_field_for_field() -> None:
    """From the user's words to Docker's: a compose service through the spec, the wire and create_args."""
    job = parse_spec_text(
        "services:\n"
        "  web:\n"
        "    image: img:1\n"
        "    healthcheck: {test: [CMD, 'true'], interval: 5s, timeout: 2s, retries: 2}\n"
        "    stop_grace_period: 1m30s\n"
        "    labels: {tier: front}\n"
        "    working_dir: /srv\n"
        "    ports: ['127.0.9.5:8000:80']\n"
        "    deploy: {resources: {limits: {memory: 128M}, reservations: {memory: 64M}}}\n", "c.yml")
    args = create_args(StartOrder(epoch=1, task_id="t-2", index=0, attempt=0, spec=job.task("web")), "tk-w", SITE)
    assert args["healthcheck"]["Interval"] == 5 * 10**9 and args["healthcheck"]["Retries"] == 2
    assert (args["labels"][labels.STOP_GRACE], args["working_dir"], args["labels"]["tier"]) == ("90", "/srv", "front")
    assert (args["mem_limit"], args["ports"]) == (128 * 2**20, {"80/tcp": ("127.0.9.5", 8000)})

"""Benchmarks on the multi-host testbed (tests/testbed): taskorg as Ansible installs it.

One DNS host and three regular hosts (Debian containers booting systemd,
each with its own dockerd) on a private `--internal` docker network that the
testbed creates; the real playbook provisions them with its defaults. A
failure is `docker kill` of a host container: power loss, containers and all.

Used by `bench/failover.py --testbed` and `bench/peer_swarm.py`; run.py
shares one testbed between them in full mode.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from bench.common import BUSYBOX, docker_time, log, probe_spec
from taskorg.client import Client
from taskorg.config import load_config
from taskorg.net.client import ServiceClient
from taskorg.net.resolve import resolve_master

REPLICAS = 6
# Each replica reserves 30 % of a host's CPUs (every testbed host sees this machine's CPUs), so a
# host holds at most 3 of the 6 and every host that is killed holds 3: without it, placement
# stacked every replica on two hosts and half the node rounds had nothing to move. As in the local
# failover bench, the replicas only sleep; the reservation is bookkeeping. Swarm gets the same.
REPLICA_CPUS = round(0.3 * (os.cpu_count() or 1), 2)
JOB = f"""\
job: bench-peer
tasks:
  - name: sleeper
    image: {BUSYBOX}
    command: [sh, -c, "trap 'exit 0' TERM; while true; do sleep 1; done"]
    replicas: {REPLICAS}
    restart: always
    resources: {{cpus: {REPLICA_CPUS}, memory: 8M}}
"""


class TestbedUnavailable(RuntimeError):
    """The testbed could not be brought up here; the message says why."""


# The slower profile ansible/group_vars/all.yml names for Wi-Fi or stalling machines, for
# `--slow-timings` (the playbook's defaults are the code's own).
SLOW_TIMINGS = {"taskorg_heartbeat_interval": 0.5, "taskorg_lease_timeout": 2.0, "taskorg_lease_margin": 0.5,
                "taskorg_node_dead_after": 3.0}


@contextlib.contextmanager
def provisioned_testbed(variables: dict[str, Any] | None = None) -> Iterator[Any]:
    """A testbed, provisioned by the playbook, with the task image in every regular host's dockerd.

    `variables` go into the inventory (e.g. SLOW_TIMINGS); by default the playbook's own defaults.
    """
    import shutil

    missing = [t for t in ("docker", "debootstrap", "ansible-playbook", "ssh", "ssh-keygen") if not shutil.which(t)]
    if missing:
        raise TestbedUnavailable(f"missing tools: {', '.join(missing)}")
    try:
        from tests.testbed.hosts import Testbed
        from tests.testbed.image import ensure_image
        from tests.testbed.wheelhouse import build_wheelhouse
    except ImportError as exc:
        raise TestbedUnavailable(f"tests/testbed cannot be imported: {exc}") from None
    from taskorg.devtools.images import ensure_busybox_image

    started = time.monotonic()
    bed = Testbed(ensure_image())
    try:
        bed.up()
        build_wheelhouse(bed.workdir / "wheelhouse")
        bed.write_inventory(variables)
        run = bed.run_playbook()
        if run.returncode != 0:
            raise TestbedUnavailable(f"the playbook failed (rc {run.returncode}): {run.output[-1500:]}")
        ensure_busybox_image()
        bed.load_image(BUSYBOX, [h.name for h in bed.node_hosts])
        bed.timings["bench: testbed up and provisioned"] = time.monotonic() - started
        log(f"testbed {bed.run_id} provisioned in {time.monotonic() - started:.0f} s")
        yield bed
    finally:
        if os.environ.get("TASKORG_TESTBED_KEEP"):
            log(f"TASKORG_TESTBED_KEEP: testbed left running in {bed.workdir}")
        else:
            bed.teardown()


def client(bed: Any, **kwargs: Any) -> Client:
    from tests.testbed.hosts import SUFFIX

    config = load_config(overrides={"dns_address": bed.dns_host.address, "suffix": SUFFIX, "cluster": "testbed",
                                    "secret_file": str(Path(bed.workdir) / "secret")}, environ={})
    bed.use_tls()
    return Client(config, bed.secret, **kwargs)


def service(bed: Any, address: str, port: int) -> ServiceClient:
    return ServiceClient(f"https://{address}:{port}", bed.secret, timeout=2.0, tls=bed.use_tls())


def master_host(bed: Any) -> Any:
    api = client(bed)
    return bed.host_by_address(resolve_master(api.config, timeout=1.0))


def node_of_host(bed: Any) -> dict[str, str]:
    """host name -> taskorg node name."""
    return {h.name: service(bed, h.address, 23336).get("/v1/identity")["node"] for h in bed.node_hosts}


def running_instances(api: Client, reasons: list[list[Any]] | None = None,
                      since: float | None = None) -> dict[str, str]:
    """'<task id>/<index>' -> node, for instances the active master says are running.

    With `reasons`, a new reason the master gives for not placing the replicas (e.g. no room) is
    appended as [seconds after `since`, reason]: the part of a slow round that history does not show."""
    tasks = api.call("GET", "/v1/tasks", retry=False)["tasks"]
    if reasons is not None and since is not None:
        for t in tasks:
            reason = t.get("reason")
            if t["name"] == "sleeper" and reason and (not reasons or reasons[-1][1] != reason) and len(reasons) < 20:
                reasons.append([round(time.monotonic() - since, 3), str(reason)[:200]])
    return {f"{t['id']}/{i['index']}": i["node"] for t in tasks if t["name"] == "sleeper"
            for i in t["instances"] if i["status"] == "running"}


CONTROL_STEPS = (("elected", "taskorg-dns", "master elected"), ("role", "taskorg-node", "role changed"),
                 ("active", "taskorg-master", "master active"))


def control_timeline(bed: Any, killed_at: float) -> dict[str, float]:
    """Where a master round's control-plane time went, in seconds after the kill, from the hosts'
    journals (their logfmt `ts=`; the hosts share this machine's clock): the arbiter's election, the
    new master's node service taking the role, and its master service active. The first line of each
    kind after the kill, on any living host."""
    found: dict[str, float] = {}
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(killed_at - 1))
    units = " ".join(f"-u {unit}" for _, unit, _ in CONTROL_STEPS)
    for host in [bed.dns_host] + list(bed.node_hosts):
        try:  # one journal read per host, every step's units at once
            out = bed.exec(host.name, f"journalctl --no-pager -o cat {units} --since '{since}'", check=False,
                           timeout=15)
        except Exception:
            continue  # the killed host
        for line in out.splitlines():
            step = next((step for step, _, text in CONTROL_STEPS if text in line), None)
            stamp = next((part[3:] for part in line.split() if part.startswith("ts=")), None)
            if step is None or stamp is None:
                continue
            try:
                at = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()
            except ValueError:
                continue
            if at >= killed_at and (step not in found or at - killed_at < found[step]):
                found[step] = round(at - killed_at, 3)
    return found


def timeline(bed: Any, api: Client, node: str, killed_at: float) -> dict[str, Any]:
    """Where a round's time went, in seconds after the kill (wall clock: the testbed hosts share
    this machine's clock): the master's history of the replicas (declared dead and placed again,
    running as the start answer said) and, from each survivor's own dockerd, when their new
    containers were created and started. Spans are [first, last]."""
    events: dict[str, list[float]] = {"rescheduled": [], "placed": [], "running": []}
    task_ids = [t["id"] for t in api.tasks(name="sleeper") if t["desired"] != "cancelled"]
    for task_id in task_ids:
        for event in api.task(task_id)["history"]:
            if event["time"] >= killed_at and event["event"] in events and event["index"] is not None:
                if event["event"] != "rescheduled" or event["node"] == node:
                    events[event["event"]].append(event["time"] - killed_at)
    created: list[float] = []
    started: list[float] = []
    for host in bed.node_hosts:
        try:
            ids = bed.exec(host.name, f"docker ps -aq --no-trunc --filter label=taskorg.task={task_ids[0]}",
                           check=False, timeout=15).split() if task_ids else []
            if not ids:
                continue
            out = bed.exec(host.name, "docker inspect --format '{{json .Created}} {{json .State.StartedAt}}' "
                           + " ".join(ids), check=False, timeout=15)
        except Exception:
            continue  # the killed host: nothing to ask
        for line in out.splitlines():
            parts = line.split()
            if len(parts) != 2:
                continue
            made, began = (docker_time(json.loads(x)) for x in parts)
            if made and made >= killed_at:
                created.append(made - killed_at)
                if began:
                    started.append(began - killed_at)

    def span(values: list[float]) -> list[float] | None:
        return [round(min(values), 3), round(max(values), 3)] if values else None

    return {**{k: span(v) for k, v in events.items()}, "created": span(created), "started": span(started)}



def wait(what: str, check: Any, timeout: float, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}; last: {last!r}")


def cancel_replicas(bed: Any) -> None:
    api = client(bed)
    for task in api.tasks(name="sleeper"):
        if task["desired"] != "cancelled":
            api.cancel(task["id"])


def submit_replicas(bed: Any) -> None:
    cancel_replicas(bed)
    api = client(bed)
    api.submit(JOB, source="bench-peer.yaml")
    wait(f"{REPLICAS} taskorg replicas running", lambda: len(running_instances(api)) == REPLICAS, 120)


def wait_healthy(bed: Any, timeout: float = 120) -> None:
    """Every regular host alive at the DNS service and reporting to an active master."""
    api = client(bed, failover_wait=2)

    def healthy() -> bool:
        members = api.members()["members"]
        return len(members) == len(bed.node_hosts) and all(m["alive"] and m["telemetry"] for m in members)

    wait("every testbed node alive and reporting", healthy, timeout, 0.5)


def restart_host(bed: Any, name: str) -> None:
    bed.start(name)
    bed.wait_booted(name, timeout=120)


def taskorg_master_round(bed: Any) -> dict[str, Any]:
    """Kill the host of the active master (it runs replicas too): until a submission is acknowledged,
    and until every replica runs again on the survivors (as the new master reports it)."""
    # A short connect timeout: a powered-off host does not refuse connections, it just never answers
    # (the product's Client uses one 15 s timeout for connect and read; see docs/bench.md).
    api = client(bed, failover_wait=0, timeout=(0.5, 5.0))
    victim = master_host(bed)
    node = node_of_host(bed)[victim.name]
    before = running_instances(api)
    on_victim = sorted(i for i, n in before.items() if n == node)
    started, killed_at = time.monotonic(), time.time()
    bed.kill(victim.name)
    acked = dns_moved = back = None
    refusals: list[list[Any]] = []
    reasons: list[list[Any]] = []
    key = uuid.uuid4().hex
    while time.monotonic() - started < 120 and acked is None:
        if dns_moved is None:
            try:
                if resolve_master(api.config, timeout=0.3) != victim.address:
                    dns_moved = time.monotonic() - started
            except Exception:
                pass
        try:
            api.call("POST", "/v1/jobs", retry=False, params={"source": "bench"}, data=probe_spec(key),
                     headers={"Content-Type": "application/yaml", "Idempotency-Key": key})
            acked = time.monotonic() - started
        except Exception as exc:
            # Why a submission failed after DNS had moved: the timeline of a slow round.
            if dns_moved is not None and len(refusals) < 20:
                refusals.append([round(time.monotonic() - started, 3), f"{type(exc).__name__}: {exc}"[:200]])
            time.sleep(0.02)
    while acked is not None and time.monotonic() - started < 180:
        try:
            running = running_instances(api, reasons, started)
            if len(running) == REPLICAS and node not in running.values():
                back = time.monotonic() - started
                break
        except Exception:
            pass
        time.sleep(0.05)
    steps = timeline(bed, api, node, killed_at) if back is not None and on_victim else None
    control = control_timeline(bed, killed_at)
    log(f"testbed taskorg: killed {victim.name} ({node}, master, {len(on_victim)} replicas): DNS moved "
        f"{_r(dns_moved)} s, submission acknowledged {_r(acked)} s, replicas running again {_r(back)} s; "
        f"control plane {control}; {steps}")
    restart_host(bed, victim.name)
    wait_healthy(bed)
    return {"host": victim.name, "replicas_on_host": len(on_victim), "dns_moved": dns_moved, "seconds": acked,
            "replicas_back": back, "refused_after_dns_moved": refusals, "timeline": steps, "control": control,
            "not_placed_because": reasons}


def taskorg_node_round(bed: Any) -> dict[str, Any]:
    """Kill a regular host that is not the master and runs replicas: until they all run again."""
    api = client(bed, failover_wait=5, timeout=(0.5, 5.0))
    master = master_host(bed)
    nodes = node_of_host(bed)
    running = wait(f"{REPLICAS} replicas running", lambda: (lambda r: r if len(r) == REPLICAS else None)(
        running_instances(api)), 60)
    candidates = [h for h in bed.node_hosts if h.name != master.name]
    victim = max(candidates, key=lambda h: sum(1 for n in running.values() if n == nodes[h.name]))
    node = nodes[victim.name]
    moved = sum(1 for n in running.values() if n == node)
    if not moved:
        return {"host": victim.name, "seconds": None, "skipped": "every replica ran on the master host"}
    started, killed_at = time.monotonic(), time.time()
    bed.kill(victim.name)
    back = None
    reasons: list[list[Any]] = []
    while time.monotonic() - started < 120:
        try:
            now = running_instances(api, reasons, started)
            if len(now) == REPLICAS and node not in now.values():
                back = time.monotonic() - started
                break
        except Exception:
            pass
        time.sleep(0.05)
    steps = timeline(bed, api, node, killed_at) if back is not None else None
    log(f"testbed taskorg: killed {victim.name} ({node}, {moved} replicas): running again after {_r(back)} s {steps}")
    restart_host(bed, victim.name)
    wait_healthy(bed)
    return {"host": victim.name, "replicas_on_host": moved, "seconds": back, "timeline": steps,
            "not_placed_because": reasons}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def playbook_timings(bed: Any) -> dict[str, Any]:
    """The timing settings the playbook installed (what a user of the playbook gets)."""
    text = bed.exec(bed.node_hosts[0].name, "cat /etc/taskorg/taskorg.yaml", check=False)
    import yaml

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        return {}
    keys = ("heartbeat_interval", "lease_timeout", "lease_margin", "node_dead_after", "report_resync_interval",
            "report_interval")
    return {k: data.get(k) for k in keys if k in data}

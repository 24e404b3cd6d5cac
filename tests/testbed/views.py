"""The testbed cluster as its API and its hosts' dockerds show it: who is master, what runs where."""

from __future__ import annotations

from typing import Iterator

from .checks import resolve
from .hosts import SUFFIX, Host, Testbed, wait_for


def master_host(bed: Testbed) -> Host | None:
    addresses = resolve(bed, f"master.{SUFFIX}")
    if len(addresses) != 1:
        return None
    return bed.host_by_address(addresses[0])


def client(bed: Testbed, host: Host, port: int = 23335):
    from taskorg.net.client import ServiceClient

    return ServiceClient(f"https://{host.address}:{port}", bed.secret, timeout=2.0, tls=bed.use_tls())


def node_names(bed: Testbed) -> dict[str, Host]:
    """taskorg node name (nodeN, given by the DNS service) -> host."""
    names = {}
    for host in bed.node_hosts:
        names[client(bed, host, 23336).get("/v1/identity")["node"]] = host
    return names


def running_instances(bed: Testbed, master: Host) -> dict[str, str]:
    """'<task id>/<index>' -> node, for instances the active master says are running."""
    tasks = client(bed, master).get("/v1/tasks")["tasks"]
    return {f"{t['id']}/{i['index']}": i["node"] for t in tasks for i in t["instances"] if i["status"] == "running"}


def containers_by_instance(bed: Testbed, hosts: list[Host]) -> dict[str, list[tuple[str, str]]]:
    """Running task containers in the hosts' own dockerds: instance -> [(host, container id)]."""
    found: dict[str, list[tuple[str, str]]] = {}
    for host in hosts:
        for row in bed.containers(host.name):
            if row["state"] == "running":
                found.setdefault(row["labels"].get("taskorg.instance", "?"), []).append((host.name, row["id"]))
    return found


def wait_no_duplicates(bed: Testbed, what: str, replicas: int, timeout: float = 90) -> dict[str, list[tuple[str, str]]]:
    """Every instance runs exactly once across all hosts, seen on 3 samples in a row."""
    streak = {"n": 0}

    def settled() -> dict | None:
        containers = containers_by_instance(bed, bed.node_hosts)
        ok = len(containers) == replicas and all(len(where) == 1 for where in containers.values())
        streak["n"] = streak["n"] + 1 if ok else 0
        return containers if streak["n"] >= 3 else None

    return wait_for(what, settled, timeout=timeout, interval=1.0)


def sleepers_running(bed: Testbed, name: str, replicas: int, probes_prefix: str | None = None) -> Iterator[dict]:
    """A module's steady job: `replicas` sleepers submitted and running, yielded (the submit answer);
    then the job cancelled, with every job named `probes_prefix...` when given, and their containers
    gone (test_testbed counts what runs on the shared testbed)."""
    from .provisioned import sleepers_job

    master = master_host(bed)
    assert master is not None
    answer = client(bed, master).request("POST", f"/v1/jobs?source={name}.yaml", data=sleepers_job(name, replicas),
                                         headers={"Content-Type": "application/yaml"}, timeout=10)
    wait_for(f"{replicas} sleepers running", lambda: len(running_instances(bed, master)) == replicas, timeout=90)
    yield answer
    master = wait_for("a master", lambda: master_host(bed), timeout=60)
    api = client(bed, master)
    doomed = [answer["job"]]
    if probes_prefix:
        doomed += [job["id"] for job in api.get("/v1/jobs", params={"limit": "1000"})["jobs"]
                   if job["name"].startswith(probes_prefix)]
    for job_id in doomed:
        api.request("DELETE", f"/v1/jobs/{job_id}", timeout=10)
    wait_for(f"the {name} job's containers gone", lambda: not containers_by_instance(bed, bed.node_hosts),
             timeout=90, interval=0.5)

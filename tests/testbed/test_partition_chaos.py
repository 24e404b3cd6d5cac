"""Chaos with partitions, on the testbed (issue 13): cuts with submissions in flight.

The local chaos test (tests/cluster/test_chaos.py) has every other round type: power losses of
the master, of another node and of the DNS node, hangs, restarts. It cannot cut one node off:
on loopback every service's outgoing connection comes from 127.0.0.1, so no firewall rule can
tell one node's packets from another's (and this machine's cgroups, which could mark them, are
read-only). Here every machine is a host of its own, so the rounds are real partitions:

- the master alone (every packet between its host and the others dropped inside its host);
- the witness alone, and one worker alone (`docker network disconnect`).

Each shape runs twice, in turn, for longer than a node takes to be declared dead, while a
submitter sends a probe job every 0.2 s to the regular hosts in turn (any host forwards to the
master). After each round heals: every acknowledged probe is in the master's job list exactly
once (none lost, none doubled), and no instance of the steady job runs twice. At the end, the
lease logs of all machines show no two leases overlapping. Bounded: 6 rounds, 10 minutes.

Run alone: `.venv/bin/python -m pytest -m testbed tests/testbed/test_partition_chaos.py -s`.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter
from typing import Any, Iterator

import pytest

from .checks import assert_all_units_active
from .hosts import Host, Testbed, log, wait_for
from .provisioned import TASK_IMAGE
from .test_quorum import leases_are_safe, wait_voting_again
from .views import client, master_host, sleepers_running, wait_no_duplicates

pytestmark = [pytest.mark.testbed, pytest.mark.timeout(1200)]

SHAPES = ("master_alone", "witness_alone", "one_worker_alone")
ROUNDS = 6
TIME_CAP = 600.0
CUT_SECONDS = 3.0  # longer than lease + margin (0.65 s) and node dead (1 s): the majority acts on it
REPLICAS = 3
PROBE = "name: {name}\nimage: " + TASK_IMAGE + "\ncommand: ['true']\nrestart: never\n"


@pytest.fixture(scope="module")
def bed(shared_testbed: Testbed) -> Testbed:
    return shared_testbed


@pytest.fixture(scope="module")
def steady(bed: Testbed) -> Iterator[dict[str, Any]]:
    """A job of REPLICAS sleepers running for the whole module; then it and every probe job removed."""
    yield from sleepers_running(bed, "partition-chaos", REPLICAS, probes_prefix="pc-")


class Submitter(threading.Thread):
    """A probe job every 0.2 s to the regular hosts in turn; remembers which were acknowledged."""

    def __init__(self, bed: Testbed, limit: int = 400) -> None:
        super().__init__(daemon=True)
        self.bed = bed
        self.limit = limit
        self.stop = threading.Event()
        self.hold = threading.Lock()  # held by the test while it checks a healed round
        self.acked: list[str] = []
        self.refused = 0

    def run(self) -> None:
        hosts = itertools.cycle(self.bed.node_hosts)
        for number in range(self.limit):
            if self.stop.wait(0.2):
                return
            with self.hold:
                name = f"pc-{number}"
                api = client(self.bed, next(hosts))
                try:
                    api.request("POST", f"/v1/jobs?source={name}.yaml", data=PROBE.format(name=name),
                                headers={"Content-Type": "application/yaml", "Idempotency-Key": uuid.uuid4().hex},
                                timeout=3.0)
                    self.acked.append(name)
                except Exception:  # noqa: BLE001 - refused or unreachable while a side is cut off
                    self.refused += 1
                finally:
                    api.close()


def cut(bed: Testbed, shape: str) -> tuple[Host, Any, Any]:
    """The host to cut off for `shape`, and how to cut and heal it."""
    master = master_host(bed)
    assert master is not None
    workers = [h for h in bed.node_hosts if h.name != master.name]
    isolated = {"master_alone": master, "witness_alone": bed.dns_host, "one_worker_alone": workers[-1]}[shape]
    if shape == "master_alone":
        return isolated, bed.isolate, bed.rejoin
    return isolated, bed.disconnect, bed.connect


def job_names(bed: Testbed) -> Counter[str]:
    master = wait_for("a master", lambda: master_host(bed), timeout=60)
    return Counter(j["name"] for j in client(bed, master).get("/v1/jobs", params={"limit": "1000"})["jobs"])


def test_partitions_with_submissions_in_flight(bed: Testbed, steady: dict[str, Any]) -> None:
    submitter = Submitter(bed)
    submitter.start()
    started = time.monotonic()
    done: list[str] = []
    try:
        for number in range(ROUNDS):
            if time.monotonic() - started > TIME_CAP:
                break
            shape = SHAPES[number % len(SHAPES)]
            isolated, cut_off, heal = cut(bed, shape)
            log(f"partition round {number + 1}/{ROUNDS}: {shape} ({isolated})")
            cut_off(isolated.name)
            try:
                time.sleep(CUT_SECONDS)
            finally:
                heal(isolated.name)
            with submitter.hold:
                if isolated.role == "node":
                    wait_for(f"{isolated} back", lambda: client(bed, isolated, 23336).get("/v1/role").get("role")
                             in ("standby", "master"), timeout=90)
                else:
                    wait_voting_again(bed, isolated, next(h for h in bed.node_hosts))
                wait_no_duplicates(bed, f"no instance running twice after round {number + 1} ({shape})", REPLICAS)
                def all_listed() -> Counter[str] | None:
                    names = job_names(bed)
                    return names if all(names[a] >= 1 for a in submitter.acked) else None

                names = wait_for("every acknowledged probe in the job list", all_listed, timeout=30)
                doubled = sorted(a for a in submitter.acked if names[a] > 1)
                assert not doubled, f"round {number + 1} ({shape}): probes listed twice: {doubled}"
            done.append(shape)
    finally:
        submitter.stop.set()
        submitter.join(10)
    wait_for("every unit active on every host", lambda: assert_all_units_active(bed) or True, timeout=60)
    epochs = leases_are_safe(bed, "the partition rounds")
    log(f"partition chaos: {len(done)} rounds ({', '.join(f'{s}={done.count(s)}' for s in SHAPES)}) in "
        f"{time.monotonic() - started:.0f} s; {len(submitter.acked)} probes acknowledged, {submitter.refused} "
        f"not; lease logs hold {epochs} epochs, none overlapping")
    assert len(done) == ROUNDS
    assert len(submitter.acked) >= 10

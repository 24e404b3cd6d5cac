"""An election on a full disk: no epoch is granted that is not persisted, and none is reused.

The voters' consensus journals (`<state_dir>/dns/raft`) are moved onto small
tmpfs mounts, which are then filled. The master's machine loses power, so
every voter left has a full disk: while they stay full, no node may hold a
lease of a new epoch (a decision must be persisted before anyone hears of
it). Once space is freed (and any DNS service that died of the full disk is
started again, as systemd would), a new master is elected with a higher
epoch; after a power loss of every voter the next election goes higher
still: no epoch is ever held by two nodes (the nodes' lease log). Real
PySyncObj, real files; the mounts are undone in cleanup.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from taskorg.devtools.localcluster import LocalCluster
from tests.cluster.test_chaos import check_leases
from tests.helpers import wait_until

pytestmark = pytest.mark.cluster

SLACK = 256 * 1024  # bytes of the tmpfs beyond what the journal already takes, filled at once
FULL_WINDOW = 6.0  # seconds with every remaining voter full: ~6 lease timeouts


def raft_dir(cluster: LocalCluster, key: str) -> Path:
    machine = key.rpartition("/")[0] or "dns"
    return cluster.workdir / machine / "dns" / "raft"


def move_onto_tmpfs(cluster: LocalCluster, key: str, mounts: list[Path]) -> Path:
    """Stop the DNS service `key`, put its journal on a small tmpfs, start it again."""
    folder = raft_dir(cluster, key)
    cluster.kill_service(key)
    backup = Path(tempfile.mkdtemp(prefix="taskorg-raft-", dir="/tmp"))
    shutil.copytree(folder, backup, dirs_exist_ok=True)
    used = sum(p.stat().st_size for p in backup.rglob("*") if p.is_file())
    size = (used + SLACK + 4095) // 4096 * 4096
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)], check=True)
    mounts.append(folder)
    shutil.copytree(backup, folder, dirs_exist_ok=True)
    shutil.rmtree(backup)
    cluster.start_service(key)
    return folder


def fill(folder: Path) -> Path:
    """Fill the tmpfs at `folder` (the service runs on it); the filler file."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as handle:  # until ENOSPC; bounded by the mount's size
        try:
            for _ in range(SLACK // 4096 + 16):
                handle.write(b"\0" * 4096)
        except OSError:
            pass
    assert shutil.disk_usage(folder).free < 4096, f"{folder} is not full"
    return filler


def use_up_the_slack(cluster: LocalCluster, master_index: int, full: list[str]) -> tuple[int, str]:
    """Commit membership changes (drain, activate a node that is not the master) until the journals
    need space they cannot get: a full voter stops or a change is refused (bounded: 300 changes,
    60 s). How many were committed, and why it stopped."""
    client = cluster.client(failover_wait=2)
    node = cluster.node_name(next(i for i in range(cluster.nodes, 0, -1) if i != master_index))
    deadline, done, why = time.monotonic() + 60, 0, "300 changes"
    try:
        for done in range(300):
            if time.monotonic() > deadline or not all(cluster.service_running(key) for key in full):
                why = "a full voter stopped" if time.monotonic() <= deadline else "60 s"
                break
            client.drain(node) if done % 2 == 0 else client.activate(node)
    except Exception as exc:  # the change was refused: the voters could not persist it
        why = f"refused: {exc}"
    finally:
        try:
            client.activate(node)
        except Exception:
            pass
    return done, why


def lease_epochs(path: Path) -> set[int]:
    return {int(line.split()[0]) for line in path.read_text().splitlines() if line.strip()}


def dns_view(cluster: LocalCluster) -> dict[str, Any]:
    return dict(cluster.client(failover_wait=2).dns_call("GET", "/v1/master"))


def test_an_election_on_full_disks_grants_no_unpersisted_epoch(cluster_factory: Any) -> None:
    handle, name = tempfile.mkstemp(prefix="taskorg-leases-", suffix=".log", dir="/tmp")
    os.close(handle)
    lease_log = Path(name)
    cluster: LocalCluster = cluster_factory(3, settings={"lease_log": str(lease_log)})
    master_index = cluster.index_of(cluster.wait_master())
    voters = ["dns"] + [f"node{i}/dns" for i in range(1, cluster.voters)]
    full = [key for key in voters if key != f"node{master_index}/dns"]
    mounts: list[Path] = []
    try:
        for key in full:  # one at a time: the others keep the quorum meanwhile
            move_onto_tmpfs(cluster, key, mounts)
            cluster.wait_master(timeout=20)
        fillers = [fill(folder) for folder in mounts]  # the disks fill up under running services
        before = max(lease_epochs(lease_log))
        changes, why = use_up_the_slack(cluster, master_index, full)

        cluster.kill_node(master_index)  # every voter left has a full disk
        time.sleep(FULL_WINDOW)
        granted = {e for e in lease_epochs(lease_log) if e > before}
        died = [key for key in full if not cluster.service_running(key)]
        print(f"\nfull disks on {', '.join(full)} ({changes} changes committed on them, then {why}): epoch before {before}, "
              f"epochs granted while full "
              f"{sorted(granted) or 'none'}, DNS services that stopped: {died or 'none'}")
        # Whatever a node held while the disks were full must have been persisted: it survives below.

        for filler in fillers:
            filler.unlink()
        for key in died:
            cluster.start_service(key)
        new_master = cluster.wait_master(timeout=30)
        elected = dns_view(cluster)
        assert cluster.index_of(new_master) != master_index
        assert elected["epoch"] > before
        assert elected["epoch"] >= max(granted, default=0), "an epoch granted while full was lost"

        # Power loss of every voter: what they persisted is all they know; the next epoch is higher.
        cluster.start_node(master_index)
        for key in voters:
            cluster.kill_service(key)
        for key in voters:
            cluster.start_service(key)
        cluster.kill_node(cluster.index_of(cluster.wait_master(timeout=30)))
        wait_until(lambda: dns_view(cluster)["epoch"] > elected["epoch"] and cluster.wait_master(timeout=5),
                   30, "an election after the voters' power loss")
        epochs, problems = check_leases(lease_log)
        print(f"then epoch {elected['epoch']} after freeing space, {dns_view(cluster)['epoch']} after "
              f"the voters' power loss; {epochs} epochs held in all")
        assert not problems, problems
    finally:
        for folder in mounts:
            subprocess.run(["umount", "-l", str(folder)], check=False)
        lease_log.unlink(missing_ok=True)

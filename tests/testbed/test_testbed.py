"""The multi-host testbed: real Debian hosts, the real playbook, real failures.

One DNS host and three regular hosts boot systemd in containers on a private
docker network, each with its own dockerd; `ansible-playbook site.yml`
provisions them over SSH. Then, in order:

1. the playbook succeeds; `master.<suffix>` at the DNS host names one regular
   host; every unit is active on every host;
2. tasks submitted through the API run inside the hosts' own dockerds;
3. `docker kill` of the master's host (power loss): `master.<suffix>` moves to
   a survivor and every task of the dead host runs again on the survivors
   (the time is printed); the host started again comes back as a standby,
   its stale containers removed, no task running twice, every unit active;
4. the master's host hung (`docker pause`) or cut off (`docker network
   disconnect`): a survivor takes over; when the host is back, it is a
   standby and the duplicates it kept running are removed;
5. a service frozen with SIGSTOP is restarted by its systemd watchdog;
6. a second playbook run changes nothing.
Along the way: every taskorg unit runs as the taskorg user, secrets are root:taskorg 0640,
and a container on the testbed network that is not in the inventory reaches no cluster port.

The provisioned hosts are shared with test_quorum.py (tests/testbed/conftest.py), which runs first
and leaves them as it found them.

Run alone: `.venv/bin/python -m pytest -m testbed tests/testbed -s`.
Keep the hosts afterwards: TASKORG_TESTBED_KEEP=1 (see `python -m tests.testbed`).
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from .checks import TASKORG_UNITS, assert_all_units_active, main_pid, reach_from_host, reach_from_outsider, unit_users
from .hosts import SUFFIX, Host, Testbed, log, wait_for
from .views import (client, containers_by_instance, master_host, node_names, running_instances,
                    wait_no_duplicates)
from .provisioned import sleepers_job

# The module fixture (image, boot, playbook) counts toward the first test: room for a busy machine.
pytestmark = [pytest.mark.testbed, pytest.mark.timeout(1500)]

REPLICAS = 6
# The failover targets (docs/bench.md: master p99 <= 2 s, tasks p99 <= 3 s), for one round on the testbed.
TARGET_MASTER_MOVED = 2.0
TARGET_TASKS_BACK = 3.0
WATCHDOG_SEC = 10.0  # the units' WatchdogSec

JOB = sleepers_job("testbed", REPLICAS)


@pytest.fixture(scope="module")
def testbed(shared_testbed: Testbed) -> Testbed:
    return shared_testbed


# ---- the tests, in order -----------------------------------------------------------

def test_playbook_provisions_a_cluster(testbed: Testbed) -> None:
    master = wait_for("master.<suffix> to name a regular host", lambda: master_host(testbed), timeout=60)
    assert master.role == "node", f"master.{SUFFIX} names {master}, not a regular host"
    log(f"master.{SUFFIX} -> {master}")
    wait_for("every unit active on every host", lambda: assert_all_units_active(testbed) or True, timeout=60)
    members = client(testbed, testbed.dns_host, 23333).get("/v1/members")["members"]
    assert sorted(m["address"] for m in members) == sorted(h.address for h in testbed.node_hosts)
    # The secret and the node key: root's, readable by the services' group only. The state directory is theirs.
    for host in testbed.hosts.values():
        modes = testbed.exec(host.name, "stat -c '%a %U %G' /etc/taskorg/secret /etc/taskorg/tls/node.key "
                                        "/var/lib/taskorg").splitlines()
        assert modes == ["640 root taskorg", "640 root taskorg", "700 taskorg taskorg"], f"{host}: {modes}"
    # No service runs as root: every taskorg unit's main process is the taskorg user's.
    users = {host.name: unit_users(testbed, host) for host in testbed.hosts.values()}
    wrong = {name: {u: user for u, user in units.items() if user != "taskorg"} for name, units in users.items()}
    assert not any(wrong.values()), f"units not running as taskorg: {wrong}"
    assert all(sorted(users[h.name]) == sorted(TASKORG_UNITS[h.role]) for h in testbed.hosts.values()), users


def test_firewall_opens_the_cluster_ports_to_members_only(testbed: Testbed) -> None:
    """A container on the testbed network that is not in the inventory reaches none of the cluster
    ports nor the cluster DNS, while a member (the DNS host) reaches them all."""
    # A consensus voter, so it listens on the Raft port too (the voters are not always the same
    # hosts: the quorum tests replace a dead voter with a living node).
    voters = set(client(testbed, testbed.dns_host, 23333).get("/v1/members")["dns_servers"]["voters"])
    target = next(h for h in testbed.node_hosts if h.address in voters)
    ports = [23333, 23334, 23335, 23336, 23337, 23380]
    name = f"master.{SUFFIX}"
    member = reach_from_host(testbed, testbed.dns_host, target, ports, name)
    outsider = reach_from_outsider(testbed, target, ports, name)
    log(f"from member {testbed.dns_host.name}: {member}; from an outsider: {outsider}")
    assert all(member[str(port)] == "open" for port in ports) and member["dns"] == "answered", member
    assert not any(outsider[str(port)] == "open" for port in ports) and outsider["dns"] != "answered", outsider
    tables = testbed.exec(target.name, "nft list tables")
    assert "table inet taskorg" in tables, tables


def test_tasks_run_in_the_hosts_dockerds(testbed: Testbed) -> None:
    master = master_host(testbed)
    answer = client(testbed, master).request("POST", "/v1/jobs?source=testbed.yaml", data=JOB,
                                             headers={"Content-Type": "application/yaml"}, timeout=10)
    assert [t["name"] for t in answer["tasks"]] == ["sleeper"], answer
    started = time.monotonic()

    def all_running() -> dict[str, str] | None:
        running = running_instances(testbed, master)
        return running if len(running) == REPLICAS else None

    running = wait_for(f"{REPLICAS} instances running", all_running, timeout=90)
    log(f"{REPLICAS} instances running after {time.monotonic() - started:.1f}s on {sorted(Counter(running.values()).items())}")
    containers = containers_by_instance(testbed, testbed.node_hosts)
    assert sorted(containers) == sorted(running), "the hosts' dockerds do not run what the master says"
    assert all(len(where) == 1 for where in containers.values()), f"an instance runs twice: {containers}"
    assert len(set(running.values())) >= 2, f"replicas are not spread over nodes: {running}"


def test_master_host_power_loss_and_return(testbed: Testbed) -> None:
    names = node_names(testbed)
    node_of = {host.name: node for node, host in names.items()}
    old_master = master_host(testbed)
    before = running_instances(testbed, old_master)
    lost = sorted(i for i, node in before.items() if node == node_of[old_master.name])
    # Its running task containers: those must go when it is back (finished ones, e.g. test_quorum's
    # probes on the shared testbed, stay for their logs as on any node).
    stale = {row["id"] for row in testbed.containers(old_master.name) if row["state"] == "running"}
    survivors = [h for h in testbed.node_hosts if h.name != old_master.name]
    log(f"killing the master host {old_master} ({node_of[old_master.name]}): it runs {len(lost)} instance(s)")

    killed_at = time.monotonic()
    testbed.kill(old_master.name)

    def new_master() -> Host | None:
        host = master_host(testbed)
        return host if host and host.name != old_master.name else None

    master = wait_for(f"master.{SUFFIX} to move to a survivor", new_master, timeout=60, interval=0.1)
    moved_after = time.monotonic() - killed_at

    def all_running_on_survivors() -> dict[str, str] | None:
        running = running_instances(testbed, master)
        on_dead = [i for i, node in running.items() if node == node_of[old_master.name]]
        return running if len(running) == REPLICAS and not on_dead else None

    running = wait_for("every instance running on the survivors", all_running_on_survivors, timeout=90, interval=0.2)
    recovered_after = time.monotonic() - killed_at
    containers = containers_by_instance(testbed, survivors)
    assert sorted(containers) == sorted(running), "the survivors' dockerds do not run what the master says"
    assert all(len(where) == 1 for where in containers.values()), f"an instance runs twice: {containers}"
    print(f"\nFAILOVER (docker kill of the master host {old_master.name}): master.{SUFFIX} moved to "
          f"{master.name} after {moved_after:.2f}s; all {len(lost)} task instance(s) of the killed host "
          f"running again on the survivors after {recovered_after:.2f}s")
    testbed.timings["failover: master moved"] = moved_after
    testbed.timings["failover: killed host's tasks running again"] = recovered_after
    assert moved_after <= TARGET_MASTER_MOVED, f"master moved after {moved_after:.2f}s (target {TARGET_MASTER_MOVED}s)"
    assert recovered_after <= TARGET_TASKS_BACK, \
        f"tasks running again after {recovered_after:.2f}s (target {TARGET_TASKS_BACK}s)"

    # Power back on: the host boots, its services rejoin, it stays a standby.
    returned_at = time.monotonic()
    testbed.start(old_master.name)
    testbed.wait_booted(old_master.name, timeout=120)
    wait_for(f"{old_master.name} to rejoin as a standby",
             lambda: client(testbed, old_master, 23336).get("/v1/role").get("role") == "standby", timeout=90)
    assert master_host(testbed).name == master.name, "the returning host took the master role back"

    def stale_removed() -> bool:
        present = {row["id"] for row in testbed.containers(old_master.name)}
        return not (present & stale)

    wait_for(f"the stale containers on {old_master.name} to be removed", stale_removed, timeout=90, interval=0.5)
    testbed.timings["killed host back as standby, stale containers removed"] = time.monotonic() - returned_at

    # Nothing runs twice, and it stays that way for a while.
    for _ in range(3):
        containers = containers_by_instance(testbed, testbed.node_hosts)
        twice = {i: where for i, where in containers.items() if len(where) > 1}
        assert not twice, f"instances running twice after the host came back: {twice}"
        assert len(containers) == REPLICAS, f"expected {REPLICAS} running instances, found {sorted(containers)}"
        time.sleep(1)
    wait_for("every unit active on every host", lambda: assert_all_units_active(testbed) or True, timeout=60)
    assert_all_units_active(testbed)


@pytest.mark.parametrize("cut", ["pause", "disconnect"])
def test_master_host_cut_off_then_back(testbed: Testbed, cut: str) -> None:
    """A hung master host (docker pause) or a cut cable (network disconnect): a survivor takes
    over and reruns its tasks; when the host is back, its master is fenced and steps down,
    and the duplicates it kept running are removed."""
    node_of = {host.name: node for node, host in node_names(testbed).items()}
    old_master = master_host(testbed)
    cut_off, restore = {"pause": (testbed.pause, testbed.unpause),
                        "disconnect": (testbed.disconnect, testbed.connect)}[cut]
    log(f"{cut}: cutting off the master host {old_master} ({node_of[old_master.name]})")
    started = time.monotonic()
    cut_off(old_master.name)
    try:
        master = wait_for(f"master.{SUFFIX} to move to a survivor",
                          lambda: (h := master_host(testbed)) and h.name != old_master.name and h, timeout=60,
                          interval=0.1)

        def all_running_elsewhere() -> dict[str, str] | None:
            running = running_instances(testbed, master)
            on_cut = [i for i, node in running.items() if node == node_of[old_master.name]]
            return running if len(running) == REPLICAS and not on_cut else None

        wait_for("every instance running away from the cut-off host", all_running_elsewhere, timeout=90,
                 interval=0.2)
        testbed.timings[f"{cut}: cut-off master's tasks running elsewhere"] = time.monotonic() - started
    finally:
        restore(old_master.name)
    wait_for(f"{old_master.name} to come back as a standby",
             lambda: client(testbed, old_master, 23336).get("/v1/role").get("role") == "standby", timeout=90)
    wait_no_duplicates(testbed, f"no instance running twice after the {cut} healed", REPLICAS)
    wait_for("every unit active on every host", lambda: assert_all_units_active(testbed) or True, timeout=60)
    assert_all_units_active(testbed)


def test_a_hung_service_is_restarted_by_its_watchdog(testbed: Testbed) -> None:
    """SIGSTOP freezes a service (no crash, no exit): its watchdog pings stop and systemd kills and
    restarts it within WatchdogSec + 5 s. The webview of a standby host: no failover is disturbed."""
    master = master_host(testbed)
    host = next(h for h in testbed.node_hosts if h.name != master.name)
    unit = "taskorg-webview"
    frozen = main_pid(testbed, host, unit)
    assert frozen > 0, f"{unit} on {host} has no main process"
    stopped_at = time.monotonic()
    testbed.exec(host.name, f"kill -STOP {frozen}")

    def restarted() -> int | None:
        pid = main_pid(testbed, host, unit)
        return pid if pid not in (0, frozen) else None

    new_pid = wait_for(f"{unit} on {host.name} to be restarted", restarted, timeout=WATCHDOG_SEC + 30, interval=0.5)
    restarted_after = time.monotonic() - stopped_at
    wait_for(f"{unit} on {host.name} to be active again",
             lambda: testbed.exec(host.name, f"systemctl is-active {unit}", check=False).strip() == "active",
             timeout=60, interval=0.5)
    serving_after = time.monotonic() - stopped_at
    journal = testbed.exec(host.name, f"journalctl --no-pager -n 40 -u {unit}", check=False)
    print(f"\nWATCHDOG: {unit} on {host.name} frozen (SIGSTOP pid {frozen}); restarted as pid {new_pid} after "
          f"{restarted_after:.1f}s, serving again after {serving_after:.1f}s (WatchdogSec {WATCHDOG_SEC:.0f}s)")
    testbed.timings["watchdog: SIGSTOP'd service restarted"] = restarted_after
    assert "watchdog timeout" in journal.lower(), journal
    assert restarted_after <= WATCHDOG_SEC + 5, f"restarted after {restarted_after:.1f}s, over WatchdogSec + 5 s"
    assert unit_users(testbed, host)[unit] == "taskorg"


def test_second_playbook_run_changes_nothing(testbed: Testbed) -> None:
    run = testbed.run_playbook()
    testbed.timings["second playbook run"] = run.seconds
    assert run.returncode == 0, run.output[-6000:]
    changed = {host: counts["changed"] for host, counts in run.recap.items() if counts["changed"]}
    assert not changed, f"a second run changed something: {changed}\n{run.output[-6000:]}"
    assert len(run.recap) == len(testbed.hosts)

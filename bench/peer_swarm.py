"""Docker Swarm side by side with taskorg: the same hosts, the same failure, one run.

On the multi-host testbed (tests/testbed: one DNS host and three regular
Debian hosts, each with its own dockerd, on a private docker network the
testbed creates; taskorg installed by the real playbook with its defaults):

  taskorg: a job of 6 replicas (`restart: always`, each reserving 30 % of a
           host's CPUs, so a host holds at most 3); `docker kill` the host of
           the active master (it runs replicas too); time until a
           submission is acknowledged again, and until all 6 replicas run
           again on the survivors (as the new master reports them).
  Swarm:   the three regular hosts' dockerds form a 3-manager swarm (Swarm
           needs 3 managers to survive the loss of one); a service of 6
           busybox replicas with the same CPU reservation; `docker kill` the
           host of the raft leader (it runs replicas too); time until `docker
           node ls` answers on a survivor (the swarm API needs a leader), and
           until `docker service ps` shows 6 replicas running on the
           survivors.

In the same run (bench/peer_ratios.py, issue 14): services created one at a
time (Swarm's Engine API timed inside a manager host, taskorg's client from
the runner), and the control plane's idle CPU and PSS (dockerd with the swarm
active minus inactive, against taskorg's services on the same host); each
with its ratio, target > 1 (taskorg ahead).

Both at their defaults: taskorg's playbook timings, Swarm's (dispatcher
heartbeat 5 s, raft election). The ratio is Swarm / taskorg (higher =
taskorg faster). After each round the killed host is started again and the
system must be healthy (3 managers / 3 alive nodes) before the next round.

    .venv/bin/python bench/peer_swarm.py [--rounds N] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import peer_ratios, tbcluster  # noqa: E402
from bench.common import BUSYBOX, figure, log, print_figures  # noqa: E402

SERVICE = "bench-peer"
REPLICAS = tbcluster.REPLICAS
ROUND_TIMEOUT = 240.0


# ---- Swarm ------------------------------------------------------------------------------------
def sh(bed: Any, host: str, command: str, check: bool = True, timeout: float = 60) -> str:
    return bed.exec(host, command, check=check, timeout=timeout)


def swarm_form(bed: Any, first_name: str | None = None) -> str:
    """A 3-manager swarm over the regular hosts' dockerds, initialised on `first_name` (it leads first)."""
    first = next((h for h in bed.node_hosts if h.name == first_name), bed.node_hosts[0])
    others = [h for h in bed.node_hosts if h.name != first.name]
    sh(bed, first.name, f"docker swarm init --advertise-addr {first.address} --listen-addr {first.address}:2377")
    token = sh(bed, first.name, "docker swarm join-token -q manager").strip()
    for host in others:
        sh(bed, host.name, f"docker swarm join --token {token} --advertise-addr {host.address} "
                           f"--listen-addr {host.address}:2377 {first.address}:2377", timeout=120)
    tbcluster.wait("3 swarm managers ready", lambda: swarm_healthy(bed, first.name), 120, 1.0)
    return first.name


def swarm_service(bed: Any, via: str) -> None:
    """The 6-replica service of the failover rounds, running."""
    # The image exists only in each host's dockerd (no registry): --no-resolve-image.
    sh(bed, via, f"docker service create --detach --name {SERVICE} --replicas {REPLICAS} "
                 f"--reserve-cpu {tbcluster.REPLICA_CPUS} --reserve-memory 8M "
                 f"--no-resolve-image --stop-grace-period 1s {BUSYBOX} sleep 3600", timeout=120)
    tbcluster.wait(f"{REPLICAS} swarm replicas running", lambda: len(swarm_running(bed, via)) == REPLICAS,
                   180, 1.0)


def swarm_setup(bed: Any, first_name: str | None = None) -> str:
    """A 3-manager swarm and a 6-replica service; the first leader."""
    first = swarm_form(bed, first_name)
    swarm_service(bed, first)
    return first


def swarm_leave(bed: Any) -> None:
    """Every node leaves the swarm (the service first), and no swarm container is left."""
    names = [h.name for h in bed.node_hosts]
    sh(bed, names[0], f"docker service rm {SERVICE}", check=False, timeout=60)
    for name in names:
        sh(bed, name, "docker swarm leave --force", check=False, timeout=120)

    def left() -> bool:
        return all(sh(bed, n, "docker info --format '{{.Swarm.LocalNodeState}}'", check=False).strip() == "inactive"
                   and not sh(bed, n, "docker ps -q --filter label=com.docker.swarm.service.name",
                              check=False).strip() for n in names)

    _attempt("leaving the swarm", lambda: tbcluster.wait("every host out of the swarm, no swarm container left",
                                                         left, 120, 1.0))


def swarm_running(bed: Any, via: str) -> list[str]:
    """Nodes (hostnames) of the service's replicas in state Running, asked of manager `via`."""
    out = sh(bed, via, f"docker service ps {SERVICE} --filter desired-state=running "
                       "--format '{{.Node}}|{{.CurrentState}}'", check=False, timeout=20)
    return [line.split("|")[0] for line in out.splitlines() if "|Running" in line]


def swarm_nodes(bed: Any, via: str) -> dict[str, tuple[str, str]]:
    """hostname -> (status, manager status), asked of manager `via`; raises when the API does not answer."""
    out = bed.exec(via, "docker node ls --format '{{.Hostname}}|{{.Status}}|{{.ManagerStatus}}'", check=True,
                   timeout=20)
    rows = [line.split("|") for line in out.splitlines() if line.count("|") == 2]
    return {r[0]: (r[1], r[2]) for r in rows}


def swarm_leader(bed: Any, alive: list[str]) -> str:
    for via in alive:
        try:
            nodes = swarm_nodes(bed, via)
        except Exception:
            continue
        leader = next((h for h, (_, manager) in nodes.items() if manager == "Leader"), None)
        if leader:
            return leader
    raise RuntimeError("no swarm manager names a leader")


def swarm_healthy(bed: Any, via: str) -> bool:
    nodes = swarm_nodes(bed, via)
    return (len(nodes) == len(bed.node_hosts) and all(s == "Ready" for s, _ in nodes.values())
            and all(m in ("Leader", "Reachable") for _, m in nodes.values()))


def swarm_round(bed: Any) -> dict[str, Any]:
    names = [h.name for h in bed.node_hosts]
    leader = swarm_leader(bed, names)
    survivor = next(n for n in names if n != leader)
    running = swarm_running(bed, survivor)
    on_leader = running.count(leader)
    started = time.monotonic()
    bed.kill(leader)
    api = back = None
    while time.monotonic() - started < ROUND_TIMEOUT and (api is None or back is None):
        if api is None:
            try:
                swarm_nodes(bed, survivor)
                api = time.monotonic() - started
            except Exception:
                pass
        if back is None:
            now = swarm_running(bed, survivor)
            if len(now) == REPLICAS and leader not in now:
                back = time.monotonic() - started
        time.sleep(0.1)
    log(f"swarm: killed {leader} (leader, {on_leader} replicas): API answered after {api} s, "
        f"replicas running again after {back} s")
    tbcluster.restart_host(bed, leader)
    tbcluster.wait(f"{leader} back in the swarm", lambda: swarm_healthy(bed, survivor), 180, 1.0)
    return {"host": leader, "replicas_on_host": on_leader, "api_back": api, "replicas_back": back}


# ---- both ----------------------------------------------------------------------------------------
def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


def measure(bed: Any, rounds: int, quick: bool = False) -> dict[str, Any]:
    count, window = (20, 10.0) if quick else (50, 30.0)
    tbcluster.wait_healthy(bed)
    master = tbcluster.master_host(bed).name
    # taskorg idle first (an empty cluster; no swarm yet: dockerd's baseline too), then its creation rate.
    before = peer_ratios.timed("idle window, taskorg", lambda: peer_ratios.idle_window(bed, window))
    after_idle = peer_ratios.wait_master(bed)
    if after_idle["waited_s"] > 1 or after_idle["master"] != master:
        log(f"peer: after the idle window the master answered after {after_idle['waited_s']} s, on "
            f"{after_idle['master']} (it was on {master}): an election during the window is in its figures")
    ours_rate = _attempt("taskorg creation rate", lambda: peer_ratios.taskorg_submit_rate(bed, count))
    tbcluster.submit_replicas(bed)
    taskorg_rounds = [tbcluster.taskorg_master_round(bed) for _ in range(rounds)]
    # Swarm next, on the same hosts: taskorg's replicas stop so both never compete. The swarm starts on
    # taskorg's master host, so the idle comparison puts leader beside master.
    tbcluster.cancel_replicas(bed)
    swarm_form(bed, master)
    time.sleep(5)
    leader = _attempt("swarm leader", lambda: swarm_leader(bed, [master]))
    leader = leader if isinstance(leader, str) else None
    active = peer_ratios.timed("idle window, swarm active", lambda: peer_ratios.idle_window(bed, window))
    swarm_rate = _attempt("swarm creation rate", lambda: peer_ratios.swarm_create_rate(bed, master, count))
    # Inactive right after, in the same dockerd processes (a failover round restarts the killed host's).
    swarm_leave(bed)
    time.sleep(5)
    inactive = peer_ratios.timed("idle window, swarm inactive", lambda: peer_ratios.idle_window(bed, window))
    swarm_form(bed, master)
    swarm_service(bed, master)
    swarm_rounds = [swarm_round(bed) for _ in range(rounds)]
    t_api, t_back = _median(taskorg_rounds, "seconds"), _median(taskorg_rounds, "replicas_back")
    s_api, s_back = _median(swarm_rounds, "api_back"), _median(swarm_rounds, "replicas_back")
    timings = tbcluster.playbook_timings(bed)
    figures = [
        figure("peer: taskorg, master host killed -> API answers", t_api, "s", None, None,
               f"median of {rounds}; a submission acknowledged; playbook timings {timings}"),
        figure("peer: Swarm, leader host killed -> API answers", s_api, "s", None, None,
               f"median of {rounds}; `docker node ls` on a survivor"),
        figure("peer: API back, Swarm / taskorg", round(s_api / t_api, 1) if s_api and t_api else None, "x",
               "> 1 (taskorg faster)", bool(s_api and t_api and s_api > t_api)),
        figure("peer: taskorg, replicas running again", t_back, "s", None, None,
               f"median of {rounds}; {REPLICAS} replicas, those of the killed host on survivors"),
        figure("peer: Swarm, replicas running again", s_back, "s", None, None,
               f"median of {rounds}; `docker service ps`, {REPLICAS} Running on survivors"),
        figure("peer: replicas back, Swarm / taskorg", round(s_back / t_back, 1) if s_back and t_back else None,
               "x", "> 1 (taskorg faster)", bool(s_back and t_back and s_back > t_back)),
    ]
    figures += peer_ratios.rate_figures(swarm_rate, ours_rate, count)
    figures += peer_ratios.idle_figures(master, before, active, inactive, bed.dns_host.name, leader, window)
    return {"figures": figures, "taskorg": taskorg_rounds, "swarm": swarm_rounds, "rounds": rounds,
            "playbook_timings": timings,
            "creation_rate": {"swarm": swarm_rate, "taskorg": ours_rate, "count": count},
            "idle": {"host": master, "swarm_leader": leader, "window_s": window, "after_taskorg_window": after_idle,
                     "taskorg_no_swarm": peer_ratios.per_host(before), "swarm_active": peer_ratios.per_host(active),
                     "swarm_inactive": peer_ratios.per_host(inactive)},
            "notes": ["testbed: 1 DNS host + 3 regular hosts (systemd + dockerd in containers, docker network of "
                      "their own); taskorg as the playbook installs it; Swarm with 3 managers on the same 3 hosts",
                      "failure: `docker kill` of the host container (power loss), leader/master host running replicas",
                      f"creation rate: {count} one at a time; Swarm timed inside {master} on dockerd's unix socket "
                      "(no network hop), taskorg from the runner over the testbed network (the network hop is "
                      "taskorg's); both create pending work that starts no container",
                      f"idle cost: {window:g} s windows on {master}; Swarm = dockerd with the swarm active minus "
                      "after every node left; taskorg = all its services there on an idle, empty cluster"]}


def _attempt(what: str, fn: Any) -> Any:
    """A measurement that must not cost the others: its failure becomes empty figures and a log line."""
    try:
        return fn()
    except Exception as exc:
        log(f"peer: {what} failed: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}


def unavailable(error: str) -> dict[str, Any]:
    """Figures that say exactly why the peer could not run here."""
    return {"figures": [figure("peer: Docker Swarm side by side", None, "s", "runs", False, error[:300])],
            "error": error,
            "notes": ["Swarm is not started on this machine's own dockerd instead: a single-node swarm cannot show "
                      "a failover, and `swarm init` on an engine other people's test clusters share would add the "
                      "ingress and docker_gwbridge networks under them"]}


def run(quick: bool = False, rounds: int | None = None, bed: Any = None) -> dict[str, Any]:
    rounds = rounds or (1 if quick else 3)
    if bed is not None:
        return measure(bed, rounds, quick)
    try:
        with tbcluster.provisioned_testbed() as fresh:
            return measure(fresh, rounds, quick)
    except tbcluster.TestbedUnavailable as exc:
        log(f"peer: testbed unavailable: {exc}")
        return unavailable(f"the testbed could not be brought up: {exc}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20 creations and 10 s idle windows (default 50, 30 s)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be between 1 and 20")
    result = run(quick=args.quick, rounds=args.rounds)
    print_figures("peer: Docker Swarm and taskorg on the testbed", result["figures"])
    for note in result.get("notes", []):
        print(f"  note: {note}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

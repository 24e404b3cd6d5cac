"""The Swarm comparison's figures (bench/peer_ratios.py): which side a ratio favours, and what is summed."""

from __future__ import annotations

from bench import peer_ratios


def groups(dockerd: float, master: float) -> dict:
    return {"groups": {"dockerd": {"cpu_pct": dockerd, "pss_mib": 40.0},
                       "taskorg-master.service": {"cpu_pct": master, "pss_mib": 30.0},
                       "taskorg-node.service": {"cpu_pct": 1.0, "pss_mib": 25.0}}}


def by_name(figures: list[dict]) -> dict[str, dict]:
    return {f["name"]: f for f in figures}


def test_taskorg_total_leaves_dockerd_out() -> None:
    assert peer_ratios.taskorg_total(groups(9.0, 2.0)["groups"], "cpu_pct") == 3.0


def test_idle_cost_is_swarm_active_minus_inactive_against_our_services() -> None:
    dns = {"groups": {"taskorg-dns.service": {"cpu_pct": 3.0, "pss_mib": 30.0}}}
    figures = by_name(peer_ratios.idle_figures("host1", {"host1": groups(0.5, 2.0), "dns1": dns},
                                               {"host1": groups(6.5, 2.0)}, {"host1": groups(0.5, 2.0)},
                                               "dns1", "host1", 30))
    assert figures["peer: Swarm control plane idle CPU (host1)"]["value"] == 6.0
    assert figures["peer: taskorg idle CPU (host1, master)"]["value"] == 3.0
    ratio = figures["peer: idle CPU, Swarm / taskorg"]
    assert ratio["value"] == 2.0 and ratio["met"] is True
    # No memory difference for Swarm: taskorg cannot be ahead.
    assert figures["peer: idle PSS, Swarm / taskorg"]["value"] == 0.0
    assert figures["peer: idle PSS, Swarm / taskorg"]["met"] is False
    assert figures["peer: taskorg DNS host idle CPU (dns1)"]["value"] == 3.0


def test_creation_ratio_is_taskorg_over_swarm_and_a_failed_side_gives_none() -> None:
    swarm = {"per_s": 100.0, "created": 50, "via": "host1", "p50_ms": 9.0}
    figures = by_name(peer_ratios.rate_figures(swarm, {"per_s": 50.0, "acknowledged": 50, "p50_ms": 20.0}, 50))
    assert figures["peer: creation rate, taskorg / Swarm"]["value"] == 0.5
    assert figures["peer: creation rate, taskorg / Swarm"]["met"] is False
    failed = by_name(peer_ratios.rate_figures(swarm, {"error": "boom"}, 50))
    assert failed["peer: creation rate, taskorg / Swarm"]["met"] is None
    assert "boom" in failed["peer: taskorg, submissions one at a time"]["detail"]

"""Lease logs (setting `lease_log`: one line per renewal, "epoch node start until" in the
monotonic clock the machines share) checked for a split brain: no epoch held by two nodes, and
no epoch's lease still running when the next epoch's began."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path


def check_leases(path: Path) -> tuple[int, list[str]]:
    """Leases by epoch: each epoch's last moment must come before the next epoch's first."""
    spans: dict[int, list[float]] = {}
    holders: dict[int, set[str]] = defaultdict(set)
    for line in path.read_text().splitlines():
        epoch_text, node, start_text, until_text = line.split()
        epoch, start, until = int(epoch_text), float(start_text), float(until_text)
        holders[epoch].add(node)
        span = spans.setdefault(epoch, [start, until])
        span[0], span[1] = min(span[0], start), max(span[1], until)
    problems = [f"epoch {e} held by {sorted(n)}" for e, n in holders.items() if len(n) > 1]
    epochs = sorted(spans)
    for older, newer in zip(epochs, epochs[1:]):
        if spans[older][1] > spans[newer][0]:
            problems.append(f"epoch {older} lease ran until {spans[older][1]:.3f}, "
                            f"epoch {newer} lease began at {spans[newer][0]:.3f}")
    return len(epochs), problems

"""Recovery at activation: a new master asks every living slave what it runs and reconciles.

The new master starts from its replica, which may not match what the slaves
run. So each living node is fenced with the new epoch, and its containers
and telemetry are fetched in parallel and used as each answers (a dead node
not yet declared so never holds up the living): the containers go through
`Engine.on_report` like any listing. Apart from the engine, whose `activate`
fences the store, commits and starts streaming first.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from taskorg.master.slaves import answers_as_they_come, quietly

if TYPE_CHECKING:
    from taskorg.master.engine import Engine


def recover(engine: "Engine", epoch: int) -> None:
    """Fence every living slave at `epoch` and fold each one's containers in as a report."""
    engine.members.refresh()
    living = engine.members.alive_nodes()
    for node in living:
        engine.pool.submit(quietly, engine.slaves.fence, node, epoch)
    # Each node's containers (to reconcile) and telemetry (placement needs it; the fence makes each slave
    # report at once too, but that report goes to whoever the cluster DNS names, which may lag), used as
    # each answers.
    calls: dict[tuple[str, str], Future[Any]] = {}
    for node in living:
        calls[(node, "telemetry")] = engine.pool.submit(engine.slaves.telemetry, node)
        calls[(node, "containers")] = engine.pool.submit(engine.slaves.containers, node)
    for (node, kind), answer in answers_as_they_come(calls):
        if kind == "telemetry":
            engine.telemetry_book.store(node, answer)
        else:
            engine.on_report(node, answer.containers, None)

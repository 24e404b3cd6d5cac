"""What the slave service and its reporter need from whatever runs task instances.

Two runners meet it: `DockerRunner` (containers on the local dockerd, the
product) and `StandInRunner` (taskorg/slave/standin.py: an in-memory table,
for control-plane load tests). The setting `runner` chooses one per node.
A state is the container state of docs/api.md's slave section.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Protocol

from taskorg.protocol import StartOrder

ContainerState = dict[str, Any]


class ChangeFeed(Protocol):
    """Ids of this node's containers as they start, die, stop, are removed or their health changes;
    blocks between changes until closed."""

    def __iter__(self) -> Iterator[str]: ...

    def close(self) -> None: ...


class Runner(Protocol):
    cluster: str
    node: str

    def start(self, order: StartOrder) -> ContainerState:
        """Start one attempt of one instance (idempotent); OrderError for an order it cannot run.
        The order was decoded (typed) and checked against the node's policy at the slave's door."""
        ...

    def list(self) -> list[ContainerState]:
        """Every container of this cluster and node, in any state (cheap: called on every report)."""
        ...

    def stop(self, container_ids: Iterable[str]) -> list[str]:
        """Stop and remove; the ids that are gone now (a missing one counts as gone)."""
        ...

    def stop_task(self, task_id: str) -> list[str]:
        """Stop and remove every container of one task on this node."""
        ...

    def logs(self, task_id: str, index: int, tail: int | None = 200, since: float | None = None,
             timestamps: bool = False) -> str:
        """The newest attempt's output (`tail` None: all of it; `since`: from that Unix time on);
        LookupError when the instance has none here."""
        ...

    def follow_logs(self, task_id: str, index: int, tail: int | None = None, since: float | None = None,
                    timestamps: bool = True) -> Any:
        """The newest attempt's output as it is written: bytes chunks, `close()` ends it early;
        LookupError when the instance has none here."""
        ...

    def changes(self) -> ChangeFeed:
        """A feed of this node's container changes, so the reporter reports at once rather than at
        its next resync."""
        ...

    def close(self) -> None:
        """Release what the runner holds (the docker client)."""
        ...

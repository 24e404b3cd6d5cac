"""What the slave service and its reporter need from whatever runs task instances.

Two runners meet it: `DockerRunner` (containers on the local dockerd, the
product) and `StandInRunner` (taskorg/slave/standin.py: an in-memory table,
for control-plane load tests). The setting `runner` chooses one per node.
A state is the container state of docs/api.md's slave section.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping, Protocol

ContainerState = dict[str, Any]


class DeathFeed(Protocol):
    """Ids of this node's containers as they die; blocks between deaths until closed."""

    def __iter__(self) -> Iterator[str]: ...

    def close(self) -> None: ...


class Runner(Protocol):
    cluster: str
    node: str

    def start(self, order: Mapping[str, Any]) -> ContainerState:
        """Start one attempt of one instance (idempotent); OrderError for a malformed order."""
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

    def logs(self, task_id: str, index: int, tail: int = 200) -> str:
        """The newest attempt's output; LookupError when the instance has none here."""
        ...

    def deaths(self) -> DeathFeed:
        """A feed of dying containers, so the reporter reports at once rather than on its next tick."""
        ...

    def close(self) -> None:
        """Release what the runner holds (the docker client)."""
        ...

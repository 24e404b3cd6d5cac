"""Write your own job scheduler: react to events, submit and cancel tasks, finish.

    from taskorg.client import Client
    from taskorg.scheduler import Scheduler

    class Doubler(Scheduler):
        def start(self):
            self.submit("name: seed\\nimage: taskorg/busybox:latest\\ncommand: 'true'\\nrestart: never\\n")
        def on_task_done(self, event, task):
            if task["name"] == "seed":
                self.finish()

    Doubler(Client.from_config(config)).run(timeout=300)

Events come from the master's stream (`GET /v1/events`), resumed by id
across a failover, so a scheduler sees every event exactly once and in order.
"""

from __future__ import annotations

import time
from typing import Any

from taskorg.client import Client


class Scheduler:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.finished = False
        self.mine: set[str] = set()  # task ids this scheduler submitted
        self.last_event = 0

    # ---- override these ----------------------------------------------------------------
    def start(self) -> None:
        """Called once before events flow: submit the first tasks here."""

    def on_task_done(self, event: dict[str, Any], task: dict[str, Any]) -> None:
        """A task of ours succeeded; `task` is its full record (with `result`)."""

    def on_task_failed(self, event: dict[str, Any], task: dict[str, Any]) -> None:
        """A task of ours failed for good (its restart policy gave up)."""

    def on_node_joined(self, event: dict[str, Any]) -> None:
        """A node joined or came back."""

    def on_node_dead(self, event: dict[str, Any]) -> None:
        """A node stopped heartbeating (its tasks are being placed elsewhere)."""

    def on_event(self, event: dict[str, Any]) -> None:
        """Every event, before the specific handlers."""

    # ---- actions -------------------------------------------------------------------------
    def submit(self, spec_text: str, source: str = "scheduler") -> dict[str, Any]:
        answer = self.client.submit(spec_text, source=source)
        self.mine.update(task["id"] for task in answer["tasks"])
        return answer

    def cancel(self, task_id: str) -> dict[str, Any]:
        return self.client.cancel(task_id)

    def finish(self) -> None:
        self.finished = True

    # ---- the loop ----------------------------------------------------------------------------
    def run(self, timeout: float = 3600.0) -> bool:
        """Handle events until `finish()` or `timeout` seconds; True when finished."""
        self.last_event = self.client.status().get("last_event", 0)
        self.start()
        deadline = time.monotonic() + timeout
        while not self.finished and time.monotonic() < deadline:
            for event in self.client.events(self.last_event, wait=min(5.0, max(0.1, deadline - time.monotonic()))):
                self.last_event = event["id"]
                self.dispatch(event)
                if self.finished:
                    break
        return self.finished

    def dispatch(self, event: dict[str, Any]) -> None:
        self.on_event(event)
        kind = event["kind"]
        if kind in ("task_finished", "task_failed") and event.get("task") in self.mine:
            task = self.client.task(event["task"])
            (self.on_task_done if kind == "task_finished" else self.on_task_failed)(event, task)
        elif kind == "node_joined":
            self.on_node_joined(event)
        elif kind == "node_dead":
            self.on_node_dead(event)

"""Small helpers shared by the test tiers: bounded waiting, free loopback blocks."""

from __future__ import annotations

import socket
import time
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # a service restarting mid-check
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def free_loopback_block(start: int = 30, end: int = 250) -> str:
    """A 127.0.X.1 address whose DNS port is free: each test cluster gets its own /24."""
    for third in range(start, end):
        address = f"127.0.{third}.1"
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.bind((address, 53))
        except OSError:
            continue
        finally:
            probe.close()
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind((address, 23333))
        except OSError:
            continue
        finally:
            tcp.close()
        return address
    raise RuntimeError("no free 127.0.X.1 address for a test cluster")


def wait_task_succeeded(client: Any, task_id: str, timeout: float) -> dict[str, Any]:
    """Wait for a task to end and check it succeeded; a timeout or a failure names the task as the
    master last showed it (status, instances, error), not just False."""
    def ended() -> dict[str, Any]:
        task = client.task(task_id)
        if task["status"] not in ("succeeded", "failed", "cancelled"):
            raise LookupError(f"still {task['status']}: {task!r}")
        return task

    task = wait_until(ended, timeout, f"task {task_id} to end")
    assert task["status"] == "succeeded", f"task {task_id} ended {task['status']}: {task!r}"
    return task

"""Long answers (log follows, event streams) under a cap, so they never take every worker.

A service has a fixed pool of HTTP worker threads (cheroot) and a streaming
answer holds one for its whole life. The master's workers also take slave
reports and role pushes, and a starved master loses its lease: so at most
`limit` streams run at once (a new one beyond gets 503 with Retry-After and
the client retries), and each stream ends after `duration` seconds (the
client resumes where it stopped, see taskorg/cli/log_follow.py).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterator

from flask import Response

from taskorg.net.server import ApiError

RETRY_AFTER = 1


class StreamSlots:
    """A counted cap on the streams a service serves at once."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self.what = what
        self._free = threading.BoundedSemaphore(limit)

    def take(self) -> None:
        """One slot, or ApiError 503 at once when all are held (never waits: a waiting worker is a held one)."""
        if not self._free.acquire(blocking=False):
            raise ApiError(503, f"too many {self.what} at once (at most {self.limit}); try again shortly",
                           retry_after=RETRY_AFTER)

    def try_take(self) -> bool:
        """One slot if one is free (never waits)."""
        return self._free.acquire(blocking=False)

    def give_back(self) -> None:
        self._free.release()

    def hold(self, open_stream: Callable[[], Iterator[Any]]) -> "HeldStream":
        """The stream `open_stream()` makes, under a slot taken first and given back once, when the stream
        ends or is closed (the WSGI server closes it when its client leaves, even before the first chunk).
        Opening it may fail (a missing container): the slot is given back and the error raised."""
        self.take()
        try:
            return HeldStream(open_stream(), self)
        except BaseException:
            self.give_back()
            raise


class HeldStream:
    """An iterable that gives its slot back exactly once, however it ends."""

    def __init__(self, chunks: Iterator[Any], slots: StreamSlots) -> None:
        self._chunks = chunks
        self._slots: StreamSlots | None = slots
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[Any]:
        try:
            yield from self._chunks
        finally:
            self.close()

    def close(self) -> None:
        with self._lock:
            slots, self._slots = self._slots, None
        if slots is None:
            return
        slots.give_back()
        close = getattr(self._chunks, "close", None)
        if close:
            close()


def stream_response(chunks: Iterator[Any], mimetype: str = "text/plain") -> Response:
    """A streaming answer that no proxy buffers."""
    return Response(chunks, mimetype=mimetype, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

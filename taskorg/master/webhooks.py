"""Alert webhooks: each alert POSTed as JSON to every configured URL, signed, retried, bounded.

The body is signed with HMAC-SHA256 under the secret of
`alert_webhook_secret_file`, in `X-Taskorg-Signature: sha256=<hex>`, so a
receiver can tell the cluster's alerts from anyone's POST. A delivery is
tried `ATTEMPTS` times with doubling pauses (0.5, 1, 2, 4 s), then dropped
with a warning; at most `QUEUE_LIMIT` deliveries wait (the oldest is dropped
beyond that), so a dead receiver costs the master one thread and bounded
memory, and never delays its decisions.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
from typing import Any, Callable

import requests

from taskorg.logs import get_logger

log = get_logger("master.webhooks")

SIGNATURE_HEADER = "X-Taskorg-Signature"
ATTEMPTS = 5
FIRST_PAUSE = 0.5
TIMEOUT = 3.0
QUEUE_LIMIT = 1000


def signature(secret: bytes, body: bytes) -> str:
    """The header value a receiver recomputes: `sha256=` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def pauses(attempts: int = ATTEMPTS, first: float = FIRST_PAUSE) -> list[float]:
    """The waits between tries: doubling, one fewer than the tries."""
    return [first * 2 ** i for i in range(max(0, attempts - 1))]


class WebhookSender:
    """Delivers payloads in order, one at a time, on a thread of its own."""

    def __init__(self, urls: tuple[str, ...], secret: bytes, post: Callable[..., Any] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.urls = urls
        self.secret = secret
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(maxsize=QUEUE_LIMIT)
        self._session = requests.Session()
        self._session.trust_env = False
        self._post = post or self._session.post
        self._sleep = sleep
        self._thread: threading.Thread | None = None

    def send(self, payload: dict[str, Any]) -> None:
        """Queue one payload for every URL (never blocks)."""
        body = json.dumps(payload, sort_keys=True).encode()
        for url in self.urls:
            while True:
                try:
                    self._queue.put_nowait((url, body))
                    break
                except queue.Full:
                    try:
                        dropped = self._queue.get_nowait()
                        log.warning("alert webhook queue full: oldest delivery dropped",
                                    extra={"url": dropped[0] if dropped else None})
                    except queue.Empty:
                        pass
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="alert-webhooks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self.deliver(*item)

    def deliver(self, url: str, body: bytes) -> bool:
        """Try one delivery ATTEMPTS times; True when the receiver answered 2xx."""
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(self.secret, body)}
        problem = ""
        for pause in [*pauses(), None]:
            try:
                answer = self._post(url, data=body, headers=headers, timeout=TIMEOUT)
                if 200 <= answer.status_code < 300:
                    return True
                problem = f"HTTP {answer.status_code}"
            except requests.RequestException as exc:
                problem = type(exc).__name__
            if pause is not None:
                self._sleep(pause)
        log.warning("alert webhook not delivered", extra={"url": url, "tries": ATTEMPTS, "error": problem})
        return False

"""A scripted cluster for unit tests of client logic: DNS answers and service answers played back in order."""

from __future__ import annotations

from typing import Any

import requests

from taskorg.config import Config
from taskorg.net.client import ServiceUnavailable


def unavailable(cause: requests.RequestException) -> ServiceUnavailable:
    """A ServiceUnavailable caused by `cause`, as the real client raises it."""
    try:
        try:
            raise cause
        except requests.RequestException:
            raise ServiceUnavailable(str(cause)) from None
    except ServiceUnavailable as exc:
        return exc


REFUSED = unavailable(requests.ConnectionError("HTTPConnectionPool: NewConnectionError: Connection refused"))
BROKEN = unavailable(requests.ReadTimeout("read timed out"))


class Script:
    """Plays back DNS answers (`resolve`) and service answers (`connect`); records every request."""

    def __init__(self, resolves: list[Any], answers: list[Any]) -> None:
        self.resolves, self.answers = list(resolves), list(answers)
        self.sent: list[tuple[str, str, str, dict[str, Any]]] = []
        script = self

        class Connection:
            def __init__(self, base_url: str, secret: str, timeout: float = 5.0) -> None:
                self.base_url = base_url

            def request(self, method: str, path: str, **kwargs: Any) -> Any:
                script.sent.append((self.base_url, method, path, kwargs))
                answer = script.answers.pop(0)
                if isinstance(answer, Exception):
                    raise answer
                return answer

            def close(self) -> None:
                pass

        self.connect = Connection

    @property
    def urls(self) -> list[str]:
        return [url for url, *_ in self.sent]

    def resolve(self, config: Config) -> str:
        answer = self.resolves.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return str(answer)

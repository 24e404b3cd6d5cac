"""Typed datagrams between two services of one machine, over a Unix socket in the state directory.

The node service hands the local master service its role on every lease
renewal, several times a second. Over HTTPS that cost a request through
requests, TLS, waitress and Flask on both ends for a message of 150 bytes
that never leaves the machine. A Unix datagram costs microseconds, and the
socket file, in the 0700 state directory of the service's own user, is the
credential: nobody else can send to it.

`Listener` receives one message type and answers each sender with the reply
its handler returns; `Sender` sends and hands each answer to a callback. A
datagram that is not a valid message is dropped (and counted in the log),
never acted on. Paths longer than a Unix socket allows raise ChannelError, so
callers fall back to HTTP.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

from taskorg.config import Config
from taskorg.logs import get_logger
from taskorg.protocol import ProtocolError, decode, encode

log = get_logger("net")
T = TypeVar("T")
A = TypeVar("A")
MAX_DATAGRAM = 64 * 1024
MAX_PATH = 107  # sun_path holds 108 bytes, the last a NUL


def role_channel_path(config: Config) -> Path:
    """Where a machine's master service listens for its node service's role messages."""
    return config.state_path("master", "role.sock")


class ChannelError(Exception):
    """The channel cannot be used here (path too long, socket refused): use HTTP instead."""


def _bind(path: Path) -> socket.socket:
    if len(os.fsencode(str(path))) > MAX_PATH:
        raise ChannelError(f"socket path {path} is longer than {MAX_PATH} bytes")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.unlink()  # a socket file left by an earlier run of this service
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    old = os.umask(0o077)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    return sock


def _close(sock: socket.socket, path: Path) -> None:
    sock.close()
    try:
        path.unlink()
    except OSError:
        pass


class Listener(Generic[T, A]):
    """Receives `kind` datagrams at `path`; `handle` returns the answer sent back to the sender."""

    def __init__(self, path: Path, kind: type[T], handle: Callable[[T], A], name: str) -> None:
        self.path, self.kind, self.handle = path, kind, handle
        self.sock = _bind(path)
        self.thread = threading.Thread(target=self._run, daemon=True, name=name)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                data, sender = self.sock.recvfrom(MAX_DATAGRAM)
            except OSError:
                return  # closed
            try:
                answer = self.handle(decode(data, self.kind, self.kind.__name__))
            except ProtocolError as exc:
                log.warning("dropped a bad local datagram", extra={"socket": str(self.path), "reason": str(exc)})
                continue
            if sender:
                try:
                    self.sock.sendto(encode(answer), sender)
                except OSError:
                    pass  # the sender went away: it asks again with its next message

    def close(self) -> None:
        _close(self.sock, self.path)


class Sender(Generic[A]):
    """Sends messages to `target` from its own socket at `path`; answers (`kind`) go to `on_answer`."""

    def __init__(self, path: Path, target: Path, kind: type[A], on_answer: Callable[[A], None], name: str) -> None:
        if len(os.fsencode(str(target))) > MAX_PATH:
            raise ChannelError(f"socket path {target} is longer than {MAX_PATH} bytes")
        self.target, self.kind, self.on_answer = target, kind, on_answer
        self.sock = _bind(path)
        self.path = path
        threading.Thread(target=self._answers, daemon=True, name=name).start()

    def send(self, message: Any, wait: bool = True) -> None:
        """Raises ChannelError when the listener is not there (its service not started yet), and, with
        `wait=False`, when its queue is full instead of waiting for room."""
        try:
            self.sock.sendto(encode(message), 0 if wait else socket.MSG_DONTWAIT, str(self.target))
        except OSError as exc:
            raise ChannelError(f"{self.target}: {exc.strerror or exc}") from None

    def _answers(self) -> None:
        while True:
            try:
                data = self.sock.recv(MAX_DATAGRAM)
            except OSError:
                return
            try:
                self.on_answer(decode(data, self.kind, self.kind.__name__))
            except ProtocolError as exc:
                log.warning("dropped a bad local answer", extra={"socket": str(self.path), "reason": str(exc)})

    def close(self) -> None:
        _close(self.sock, self.path)

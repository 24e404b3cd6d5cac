"""Hand the role (and each lease renewal) to the local master service, off the heartbeat path.

The master service answers its clients' submissions on the same threads as
our `/v1/role` pushes. Under submission load a push can wait there for a few
hundred milliseconds; when the heartbeat itself waited for it, the next
renewal came late and the master fenced itself with a valid lease in hand
(measured: 9 refused submissions in the throughput bench). So the heartbeat
only drops the newest role message into this mailbox and goes on; one thread
sends it. Only the newest message matters: a renewal supersedes the one
before it, so nothing queues up behind a slow master.

The message goes as a datagram on the local role channel (taskorg.net.localchannel:
microseconds, where an HTTPS request cost more than all else an idle node
did), and by `POST /v1/role` only when the channel cannot be used (its path
too long, the master service not listening yet). A datagram that can go at
once (the channel never blocks here: a full queue counts as cannot) is sent
by the caller itself; only the rest wake the thread. Waking a thread costs
more than the send on a virtual machine (docs/bench.md), and the heartbeat
pushes ten times a second.
"""

from __future__ import annotations

import threading
from typing import Callable

from taskorg.net.client import ServiceClient, ServiceError, ServiceUnavailable
from taskorg.net.localchannel import ChannelError, Sender
from taskorg.protocol import ProtocolError, RoleAnswer, RolePush, convert, to_wire


class RolePusher:
    def __init__(self, master: ServiceClient, on_answer: Callable[[RoleAnswer], None],
                 channel: Sender[RoleAnswer] | None = None) -> None:
        self.master = master
        self.on_answer = on_answer
        self.channel = channel  # answers come back through it to on_answer
        self.pending: RolePush | None = None
        self.sending = False  # the thread holds a message: a newer one must not overtake it
        self.ready = threading.Condition()
        threading.Thread(target=self._run, daemon=True, name="role-push").start()

    def push(self, message: RolePush) -> None:
        with self.ready:
            if self.channel is not None and self.pending is None and not self.sending:  # nothing older on its way
                try:
                    self.channel.send(message, wait=False)
                    return
                except ChannelError:
                    pass  # not listening, or its queue is full: the thread takes it
            self.pending = message
            self.ready.notify()

    def _run(self) -> None:
        while True:
            with self.ready:
                self.sending = False
                while self.pending is None:
                    self.ready.wait()
                message, self.pending, self.sending = self.pending, None, True
            self._send(message)

    def _send(self, message: RolePush) -> None:
        if self.channel is not None:
            try:
                self.channel.send(message)
                return
            except ChannelError:
                pass  # not listening (yet): this one goes by HTTP
        try:
            self.on_answer(convert(self.master.post("/v1/role", to_wire(message)), RoleAnswer, "role answer"))
        except (ServiceUnavailable, ServiceError, ProtocolError):
            pass  # the master service is restarting: the next renewal tells it again

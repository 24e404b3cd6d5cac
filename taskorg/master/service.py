"""The master service process: the store, the engine's ticks, the HTTP API.

It runs on every regular node all the time; the node service switches it
between active and standby with a datagram on the local role channel (or
`/v1/role` where that cannot be used), so a failover needs no process
start, only a state change.
"""

from __future__ import annotations

import threading

from taskorg.config import Config
from taskorg.logs import get_logger
from taskorg.master.alerting import start_alerting
from taskorg.master.api import create_app
from taskorg.master.engine import Engine
from taskorg.master.store import Store
from taskorg.net import sdnotify
from taskorg.net.localchannel import ChannelError, Listener, role_channel_path
from taskorg.net.server import serve
from taskorg.net.sharedposition import PositionWriter, position_path
from taskorg.protocol import RolePush
from taskorg.secret import read_secret

log = get_logger("master")
TICK_SECONDS = 0.2
# Worker threads: the public listener (users, the webview, event followers) and the internal one
# (reports, role, replication): apart, so the first cannot starve the second.
CLIENT_THREADS = 12
INTERNAL_THREADS = 8
TICK_STALE_AFTER = 30.0  # a tick loop silent this long is hung (a tick takes milliseconds to seconds)


def tick_loop(engine: Engine, stop: threading.Event, beat: sdnotify.Beat | None = None) -> None:
    """Tick every 200 ms, and at once when something asks (a submission, an exit, the membership
    moving: a node declared dead has its tasks placed again without waiting a beat).
    `beat` is marked every turn: systemd's watchdog restarts a master whose loop hangs."""
    while not stop.is_set():
        if beat:
            beat.mark()
        engine.kick.wait(TICK_SECONDS)
        engine.kick.clear()
        try:
            engine.tick()
        except Exception:
            log.exception("scheduling tick failed")


def follow_members(engine: Engine, stop: threading.Event) -> None:
    """The membership watch (taskorg.master.members): while this master is active."""
    engine.members.follow(lambda: engine.role.valid(), engine.membership_moved, stop,  # the role object is replaced on change
                          role_moved=engine.role_moved)


def run(config: Config) -> None:
    secret = read_secret(config)
    engine = Engine(config, secret, Store(config.state_path("master", "state.db"),
                                          PositionWriter(position_path(config))))
    stop = threading.Event()
    beat = sdnotify.Beat("the master's tick loop")
    sdnotify.process_watchdog().watch(lambda: beat.stale(TICK_STALE_AFTER))
    threading.Thread(target=tick_loop, args=(engine, stop, beat), daemon=True, name="master-tick").start()
    threading.Thread(target=follow_members, args=(engine, stop), daemon=True, name="member-watch").start()
    start_alerting(engine, stop)
    role_channel = open_role_channel(config, engine)
    try:
        serve(create_app(engine), config.node_address, config.master_port, threads=CLIENT_THREADS,
              internal_port=config.master_internal_port, internal_threads=INTERNAL_THREADS)
    finally:
        stop.set()
        if role_channel is not None:
            role_channel.close()
        engine.close()


def open_role_channel(config: Config, engine: Engine) -> Listener[RolePush, object] | None:
    """The local role channel's listener; None where it cannot be used (the node service then posts)."""
    try:
        return Listener(role_channel_path(config), RolePush, engine.take_role, name="role-channel")
    except (ChannelError, OSError) as exc:
        log.warning("local role channel unavailable: the node service will use HTTP", extra={"reason": str(exc)})
        return None


"""The master service process: the store, the engine's ticks, the HTTP API.

It runs on every regular node all the time; the node service switches it
between active and standby through `/v1/role`, so a failover needs no
process start, only a state change.
"""

from __future__ import annotations

import threading

from taskorg.config import Config
from taskorg.logs import get_logger
from taskorg.master.api import create_app
from taskorg.master.engine import Engine
from taskorg.master.store import Store
from taskorg.net.server import serve
from taskorg.secret import read_secret

log = get_logger("master")
TICK_SECONDS = 0.2


def tick_loop(engine: Engine, stop: threading.Event) -> None:
    """Tick every 200 ms, or at once when something asks (a submission, an exit)."""
    while not stop.is_set():
        engine.kick.wait(TICK_SECONDS)
        engine.kick.clear()
        try:
            engine.tick()
        except Exception:
            log.exception("scheduling tick failed")


def run(config: Config) -> None:
    secret = read_secret(config)
    engine = Engine(config, secret, Store(config.state_path("master", "state.db")))
    stop = threading.Event()
    threading.Thread(target=tick_loop, args=(engine, stop), daemon=True, name="master-tick").start()
    try:
        serve(create_app(engine), config.node_address, config.master_port, threads=12)
    finally:
        stop.set()
        engine.close()

"""The master service process: the store, the engine's ticks, the HTTP API.

It runs on every regular node all the time; the node service switches it
between active and standby through `/v1/role`, so a failover needs no
process start, only a state change.
"""

from __future__ import annotations

import threading

from taskorg.config import Config
from taskorg.logs import get_logger
from taskorg.master.alerting import start_alerting
from taskorg.master.api import create_app
from taskorg.master.engine import Engine
from taskorg.master.store import Store
from taskorg.net.server import serve
from taskorg.secret import read_secret

log = get_logger("master")
TICK_SECONDS = 0.2


def tick_loop(engine: Engine, stop: threading.Event) -> None:
    """Tick every 200 ms, at once when something asks (a submission, an exit), and just after a
    silent node is due to be declared dead (its tasks are placed again without waiting a beat)."""
    while not stop.is_set():
        engine.kick.wait(next_tick_in(engine.members.next_death_in()))
        engine.kick.clear()
        try:
            engine.tick()
        except Exception:
            log.exception("scheduling tick failed")


def next_tick_in(death_in: float | None) -> float:
    """The wait before the next tick: the beat, or 10 ms past the next possible death if sooner."""
    if death_in is None:
        return TICK_SECONDS
    return min(TICK_SECONDS, max(0.01, death_in + 0.01))


def run(config: Config) -> None:
    secret = read_secret(config)
    engine = Engine(config, secret, Store(config.state_path("master", "state.db")))
    stop = threading.Event()
    threading.Thread(target=tick_loop, args=(engine, stop), daemon=True, name="master-tick").start()
    start_alerting(engine, stop)
    try:
        serve(create_app(engine), config.node_address, config.master_port, threads=12)
    finally:
        stop.set()
        engine.close()

"""A light regular node: the real node service and the real slave service in ONE process.

    python -m bench.lightnode --config node7/taskorg.yaml

For the scale bench (100 nodes on 2 cores). One process hosts:

- the node service exactly as `taskorg node` runs it (`taskorg.node.service.run`):
  registration with the DNS service, heartbeats, the role loop, its HTTP app on
  the node port. Membership and liveness are real.
- the slave service exactly as `taskorg slave` runs it (`taskorg.slave.service.run`):
  the HTTP API with the epoch fence, the reporter and its schedule, on the slave
  port, with whatever runner the node's settings name (the scale bench:
  `runner: standin`, which starts no container).

Each service has its own waitress server (`create_server` gives each its own
socket map), so the two serve side by side in two threads. What a light node
does not run is the master service; its config says so (`master_service:
false`), so the master never streams its state to it. It is never a candidate
worth electing either (it reports replica position 0). The scale bench runs
standby master services on a few full nodes only and says so.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _or_exit(run: Callable[[Any], None], config: Any) -> None:
    """A node service that fails takes the whole light node down, as its own process would."""
    try:
        run(config)
    except BaseException as exc:
        print(f"light node: node service failed: {exc!r}", file=sys.stderr, flush=True)
    os._exit(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args(argv)

    from taskorg.config import load_config
    from taskorg.logs import setup_logging
    from taskorg.node import service as node_service
    from taskorg.security.process import configure_process
    from taskorg.slave import service as slave_service

    config = load_config(args.config)
    if config.master_service:
        parser.error(f"{args.config}: a light node runs no master service: set 'master_service: false'")
    setup_logging(config.log_level)
    configure_process(config, service=True)  # TLS material and tokens, as `taskorg agent` does
    # The node service registers first; the slave waits for its identity file, as on a full node.
    threading.Thread(target=_or_exit, args=(node_service.run, config), daemon=True, name="node-service").start()
    slave_service.run(config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

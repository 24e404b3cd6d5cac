"""`taskorg agent dns|node|master|slave|webview`: the services systemd runs, one process each.

The old top-level names (`taskorg dns`, `taskorg master`, ...) still run them for one release,
with a warning; `taskorg node` now lists nodes, as users expect.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable

from taskorg.cli.commands import SERVICE, Group
from taskorg.cli.context import UsageError, service_config
from taskorg.config import Config

AGENTS = {"dns": "the DNS service: members, names, master lease, records (and its dnsmasq)",
          "node": "the node service: registration, heartbeats, the master role switch",
          "master": "the master service: active where master.<suffix> points, standby elsewhere",
          "slave": "the slave service: runs task containers through the local Docker Engine",
          "webview": "the web pages"}
DEPRECATED = ("dns", "master", "slave", "webview")
# Each agent's module (its `run(config)`), imported only by that agent: a service process loads no
# other service's code (tests/unit/test_service_imports.py holds each to it).
AGENT_MODULES = {"dns": "taskorg.dns.service", "node": "taskorg.node.service", "master": "taskorg.master.service",
                 "slave": "taskorg.slave.service", "webview": "taskorg.webview.serve"}


def run_agent(args: argparse.Namespace) -> int:
    for flag in ("dns", "secret_file", "context"):
        if getattr(args, flag, None):
            raise UsageError(f"--{flag.replace('_', '-')} is for client commands; an agent reads every setting "
                             "from its --config file")
    if getattr(args, "deprecated_name", None):
        print(f"taskorg: `taskorg {args.agent}` is deprecated; use `taskorg agent {args.agent}`", file=sys.stderr)
    from taskorg.logs import setup_logging

    from taskorg.security.process import configure_process

    config = service_config(args)
    setup_logging(config.log_level)
    configure_process(config, service=True)  # TLS material and user tokens, once per process
    from taskorg.net.sdnotify import process_watchdog

    # Under systemd (WatchdogSec), pings start now: a slave waiting for its identity is not hung.
    process_watchdog().start()
    run: Callable[[Config], None] = importlib.import_module(AGENT_MODULES[args.agent]).run
    run(config)
    return 0


def register(top: Group) -> None:
    agent = top.group("agent", "run one of the services (systemd does this on every machine)",
                      ["taskorg agent master --config /etc/taskorg/taskorg.yaml"])
    for name, summary in AGENTS.items():
        p = agent.add(name, f"run {summary}", [f"taskorg agent {name} --config /etc/taskorg/taskorg.yaml"],
                      run_agent, kind=SERVICE)
        p.set_defaults(agent=name)
    for name in DEPRECATED:
        p = top.add(name, f"deprecated: `taskorg agent {name}`", [f"taskorg agent {name} --config FILE"],
                    run_agent, kind=SERVICE, hidden=True)
        p.set_defaults(agent=name, deprecated_name=True)

"""`taskorg cluster up|down|status`: the local multi-node cluster."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from taskorg.cli.commands import LOCAL, Group
from taskorg.cli.context import UsageError
from taskorg.cli.output import emit_json, table
from taskorg.devtools.localcluster import DEFAULT_DIR, LocalCluster


def print_summary(summary: dict[str, Any]) -> None:
    print(f"cluster {summary['name']} ({summary['workdir']})")
    print(f"  DNS      {summary['dns']}:53   (dig @{summary['dns']} {('master.' + summary['suffix'])})")
    print(f"  master   {summary['master'] or 'none'}")
    print(f"  API      {summary['api'] or '-'}")
    print(table(["NODE", "ADDRESS", "ROLE", "ALIVE", "WEBVIEW"],
                [[m["node"], m["address"], m["role"], "yes" if m["alive"] else "NO", m["webview"] or "-"]
                 for m in summary["members"]]))
    print(f"\nClients find it through {summary['client_config']} (the default for `taskorg`),"
          f"\nor: export TASKORG_CONFIG={summary['client_config']}")


def resumed_state(args: argparse.Namespace) -> dict[str, Any] | None:
    """The state a directory holds from an earlier `cluster up` (None: a fresh start); refuses a node
    count that does not match it, naming both."""
    state_file = Path(args.dir) / "cluster.json"
    if not state_file.exists():
        return None
    state = json.loads(state_file.read_text())
    if args.nodes is not None and args.nodes != state["nodes"]:
        raise UsageError(f"{args.dir} holds the state of a {state['nodes']}-node cluster ({state['name']}); "
                         f"--nodes {args.nodes} does not match it: run `taskorg cluster up --nodes {state['nodes']}` "
                         "to resume it, or `taskorg cluster down --purge` first to start afresh")
    return dict(state)


def cmd_up(args: argparse.Namespace) -> int:
    state = resumed_state(args)
    nodes = args.nodes or (state["nodes"] if state else 3)
    name = args.name or (state["name"] if state else None)
    cluster = LocalCluster(Path(args.dir), nodes=nodes, dns_address=args.dns_address, name=name,
                           webview=not args.no_webview)
    if not args.json:
        if state:
            print(f"resuming cluster {state['name']} ({nodes} nodes) from the state in {args.dir}: its tasks "
                  "come back as they were (`taskorg cluster down --purge` starts afresh)", file=sys.stderr)
        print(f"starting dnsmasq, the DNS service and {nodes} nodes from {args.dir} ...", file=sys.stderr)
    cluster.start(timeout=args.timeout)
    summary = {**cluster.summary(), "resumed": bool(state)}
    emit_json(summary) if args.json else print_summary(summary)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    cluster = LocalCluster.load(Path(args.dir))
    cluster.stop()
    if args.purge:
        shutil.rmtree(cluster.workdir, ignore_errors=True)
    if args.json:
        emit_json({"name": cluster.name, "stopped": True, "purged": bool(args.purge)})
    else:
        print(f"cluster {cluster.name} stopped; its containers removed"
              + ("; its state removed" if args.purge else f"; its state kept in {args.dir} (--purge removes it)"))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    cluster = LocalCluster.load(Path(args.dir))
    summary = cluster.summary()
    emit_json(summary) if args.json else print_summary(summary)
    return 0


def register(top: Group) -> None:
    cluster = top.group("cluster", "run a local multi-node cluster on this machine (development and demos)",
                        ["taskorg cluster up --nodes 3", "taskorg cluster down --purge"])
    up = cluster.add("up", "start dnsmasq, the DNS service and N nodes (resuming the directory's state)",
                     ["taskorg cluster up", "taskorg cluster up --nodes 5 --dns-address 127.0.2.1"], cmd_up, kind=LOCAL)
    up.add_argument("--nodes", type=int, default=None, help="regular nodes (default: as the state holds, else 3)")
    up.add_argument("--dns-address", default="127.0.1.1",
                    help="loopback address of the DNS node; nodes follow it (default 127.0.1.1)")
    up.add_argument("--name", help="cluster name (labels its containers)")
    up.add_argument("--timeout", type=float, default=90, help="seconds to wait for readiness")
    up.add_argument("--no-webview", action="store_true", help="do not start the webviews")
    down = cluster.add("down", "stop the cluster and remove its containers", ["taskorg cluster down",
                       "taskorg cluster down --purge   # and its state"], cmd_down, kind=LOCAL)
    down.add_argument("--purge", action="store_true", help="also remove the cluster's state (tasks, names)")
    status = cluster.add("status", "show the cluster", ["taskorg cluster status --json"], cmd_status, kind=LOCAL)
    for parser in (up, down, status):
        parser.add_argument("--dir", default=str(DEFAULT_DIR), help=f"cluster directory (default {DEFAULT_DIR})")

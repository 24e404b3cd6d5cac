"""Node commands: `node ls|drain|activate|leave`, `members` (the older name of `node ls`), `handover`."""

from __future__ import annotations

import argparse
from typing import Any

from taskorg.cli.commands import Group
from taskorg.cli.context import UsageError, make_client
from taskorg.cli.output import emit_json, size, table


def member_view(args: argparse.Namespace) -> dict[str, Any]:
    """The master's view of the members (with telemetry), else the DNS service's (no master now)."""
    client = make_client(args)
    try:
        return dict(client.members())
    except Exception:
        return dict(client.dns_members())


def print_members(view: dict[str, Any]) -> None:
    rows = []
    for m in view["members"]:
        tele: dict[str, Any] = m.get("telemetry") or {}
        rows.append([m["node"], m["address"], m["role"], m["state"], "yes" if m["alive"] else "NO",
                     f"{m['last_seen_ago']:.1f}s" if m.get("last_seen_ago") is not None else "-",
                     m.get("running", "-"), f"{tele['cpu_percent']:.0f}%" if tele.get("cpu_percent") is not None else "-",
                     size(tele.get("memory_available")), disk_cell(tele),
                     ",".join(f"{k}={v}" for k, v in m["labels"].items())])
    print(f"master: {view['master'] or 'none'}   epoch: {view['epoch']}")
    print(table(["NODE", "ADDRESS", "ROLE", "STATE", "ALIVE", "SEEN", "TASKS", "CPU", "MEM FREE", "DISK", "LABELS"],
                rows))


def disk_cell(telemetry: dict[str, Any]) -> str:
    """'75% 24.0 GiB' (df's percentage, bytes used) for the state directory's filesystem, '+docker 91%' for
    docker's data root on another one; '-' when the node reports neither."""
    state, docker = telemetry.get("disk"), telemetry.get("docker_disk")
    words = [f"{state['percent']:.0f}% {size(state['used'])}"] if state else []
    if docker:
        words.append(f"+docker {docker['percent']:.0f}%")
    return " ".join(words) or "-"


def cmd_node_ls(args: argparse.Namespace) -> int:
    view = member_view(args)
    emit_json(view["members"]) if args.json else print_members(view)
    return 0


def cmd_members(args: argparse.Namespace) -> int:
    view = member_view(args)
    emit_json(view) if args.json else print_members(view)
    return 0


def cmd_node_action(args: argparse.Namespace) -> int:
    answer = make_client(args).dns_call("POST", f"/v1/members/{args.node}/{args.node_action}")
    emit_json(answer) if args.json else print(f"{answer['node']}: {answer['state']}")
    return 0


def spare_warning(view: dict[str, Any], node: str) -> str | None:
    """Why handing the master role to `node` would lose changes: it is a spare (outside the master's
    standby set, its replica stopped when it left the set), or None."""
    role = next((m.get("role") for m in view.get("members") or [] if m.get("node") == node), None)
    if role != "spare":
        return None
    standbys = [m["node"] for m in view["members"] if m.get("role") == "standby"]
    return (f"{node} is a spare: the master does not stream its state to it (standbys: "
            f"{', '.join(standbys) or 'none'}), so as master it would start from its old replica and lose "
            "every change since; hand over to a standby, or pass --force")


def cmd_handover(args: argparse.Namespace) -> int:
    client = make_client(args)
    if not args.force:
        try:
            view = dict(client.members())
        except Exception:  # no master answers: nothing fresher to lose than what the arbiter knows
            view = {}
        warning = spare_warning(view, args.node)
        if warning:
            raise UsageError(warning)
    answer = client.handover(args.node)
    emit_json(answer) if args.json else print(f"master role moving from {answer['master']} to {answer['handover_to']}")
    return 0


def register(top: Group) -> None:
    node = top.group("node", "cluster nodes: list them, drain, activate, remove",
                     ["taskorg node", "taskorg node drain node2", "taskorg node leave node2"],
                     default=cmd_node_ls, kind="client")
    node.add("ls", "list nodes with role, health and telemetry", ["taskorg node ls", "taskorg node ls --json"],
             cmd_node_ls)
    for action, summary in (("drain", "move a node's tasks away and place nothing new on it"),
                            ("activate", "let a drained (or left) node take work again"),
                            ("leave", "remove a drained node from the cluster")):
        p = node.add(action, summary, [f"taskorg node {action} node2"], cmd_node_action)
        p.add_argument("node", metavar="NODE", help="node name, e.g. node2")
    top.add("members", "list nodes and roles (the older name of `taskorg node ls`; --json gives the whole view)",
            ["taskorg members", "taskorg members --json"], cmd_members)
    p = top.add("handover", "hand the master role to a node (planned)", ["taskorg handover node3"], cmd_handover)
    p.add_argument("node", metavar="NODE")
    p.add_argument("--force", action="store_true",
                   help="hand over even to a spare (a node outside the standby set: its replica is old)")

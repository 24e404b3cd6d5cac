"""`taskorg`: operate a cluster, run its services, or run a local cluster.

Errors are one line on stderr naming what is wrong: exit code 2 for bad usage
or input, 1 when the cluster refused or could not be reached (`submit --wait`
documents its own).
"""

from __future__ import annotations

import argparse
import os
import sys

from taskorg import __version__
from taskorg.cli import agent_commands
from taskorg.cli.commands import Group, add_client_options, parent_parsers
from taskorg.cli.context import UsageError
from taskorg.config import ConfigError

EXAMPLES = """examples:
  taskorg submit --wait web.yaml      submit, then follow until it runs
  taskorg ps                          tasks that have not finished (-a: all)
  taskorg logs web                    a task by name, id or id prefix
  taskorg node                        nodes, roles, health
  taskorg context use lab             talk to another cluster from now on

`taskorg COMMAND --help` shows each command's options and examples."""


# The services' commands (`taskorg agent node`, and the deprecated `taskorg dns`...): systemd starts
# five of these on every machine, so they parse with the agent commands alone and never import the
# client commands (the local cluster's tools, the CA, the HTTP client: ~4 MiB a process, issue 14).
AGENT_COMMANDS = frozenset({"agent", *agent_commands.DEPRECATED})


def build_parser(agents_only: bool = False) -> argparse.ArgumentParser:
    """The whole command tree; with `agents_only`, the same tree cut to the agent commands."""
    parser = argparse.ArgumentParser(prog="taskorg", description="Container tasks on a small LAN cluster.",
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"taskorg {__version__}")
    add_client_options(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    top = Group(sub, parent_parsers(), "taskorg")
    if agents_only:
        agent_commands.register(top)
        return parser
    from taskorg.cli import (admin_commands, cluster_commands, context_commands, convert_command, event_commands,
                             job_commands, node_commands, security_commands, task_commands, update_commands)

    task_commands.register(top)
    event_commands.register(top)
    job_commands.register(top)
    update_commands.register(top)
    node_commands.register(top)
    context_commands.register(top)
    cluster_commands.register(top)
    admin_commands.register(top)
    agent_commands.register(top)
    convert_command.register(top)
    security_commands.register(top)
    return parser


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    args = build_parser(agents_only=bool(words) and words[0] in AGENT_COMMANDS).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, UsageError) as exc:
        print(f"taskorg: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `taskorg ps | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # cluster errors: one readable line, no traceback
        from taskorg.client import ClusterUnavailable, DnsUnavailable
        from taskorg.devtools.localcluster import ClusterError
        from taskorg.net.client import ServiceError, ServiceUnavailable

        if isinstance(exc, (ServiceError, ServiceUnavailable, ClusterUnavailable, DnsUnavailable, ClusterError)):
            print(f"taskorg: {exc}", file=sys.stderr)
            return 1
        raise

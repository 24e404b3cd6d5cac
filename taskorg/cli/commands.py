"""Building the command tree: every command gets a help line, an example, and only the options
it honours (a flag that a command would ignore is not offered to it)."""

from __future__ import annotations

import argparse
from typing import Any, Callable, Sequence

CLIENT, SERVICE, LOCAL, BARE = "client", "service", "local", "bare"


def add_client_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--config", default=default, metavar="FILE",
                        help="client settings file (default: $TASKORG_CONFIG, the current context, "
                             "/etc/taskorg/taskorg.yaml, or the local cluster's)")
    parser.add_argument("--context", default=default, metavar="NAME",
                        help="use a saved context (`taskorg context ls`)")
    parser.add_argument("--dns", default=default, metavar="ADDRESS", help="address of the cluster DNS server")
    parser.add_argument("--secret-file", default=default, metavar="FILE",
                        help="file with the cluster secret (mode 0600)")
    add_json_option(parser, default)


def add_json_option(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--json", action="store_true", default=False if default is None else default,
                        help="print JSON for scripts (one stable shape per command)")


def parent_parsers() -> dict[str, list[argparse.ArgumentParser]]:
    """The option sets a command may take, repeated after the command name (`taskorg ps --json`);
    SUPPRESS keeps a value given before the command from being reset."""
    client = argparse.ArgumentParser(add_help=False)
    add_client_options(client, argparse.SUPPRESS)
    service = argparse.ArgumentParser(add_help=False)
    service.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE",
                         help="settings file (default: $TASKORG_CONFIG, else the built-in defaults)")
    local = argparse.ArgumentParser(add_help=False)
    add_json_option(local, argparse.SUPPRESS)
    return {CLIENT: [client], SERVICE: [service], LOCAL: [local], BARE: []}


class Group:
    """One level of commands (`taskorg ...`, `taskorg node ...`)."""

    def __init__(self, subparsers: Any, parents: dict[str, list[argparse.ArgumentParser]], prefix: str) -> None:
        self.subparsers = subparsers
        self.parents = parents
        self.prefix = prefix

    def add(self, name: str, summary: str, examples: Sequence[str], func: Callable[[argparse.Namespace], int] | None,
            kind: str = CLIENT, aliases: Sequence[str] = (), hidden: bool = False) -> argparse.ArgumentParser:
        lines = "\n".join(f"  {example}" for example in examples)
        options: dict[str, Any] = {} if hidden else {"help": summary}
        parser = self.subparsers.add_parser(
            name, description=summary[0].upper() + summary[1:] + ".", epilog=f"examples:\n{lines}",
            formatter_class=argparse.RawDescriptionHelpFormatter, parents=self.parents[kind],
            aliases=list(aliases), **options)
        if func is not None:
            parser.set_defaults(func=func)
        return parser

    def group(self, name: str, summary: str, examples: Sequence[str],
              default: Callable[[argparse.Namespace], int] | None = None, kind: str = BARE) -> "Group":
        """A command with subcommands; `default` runs when none is given (e.g. `taskorg node` lists)."""
        parser = self.add(name, summary, examples, default, kind=kind)
        sub = parser.add_subparsers(dest=f"{name}_action", metavar="ACTION")
        sub.required = default is None
        return Group(sub, self.parents, f"{self.prefix} {name}")

"""Every command has help with an example, offers only options it honours, and says what is wrong."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from taskorg.cli.main import build_parser, main


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name)
                yield from _commands(sub, (*path, name))


COMMANDS = sorted(set(_commands(build_parser())))


def test_the_tree_has_the_commands_people_expect() -> None:
    for expected in (("node", "ls"), ("node", "drain"), ("job", "ls"), ("job", "cancel"), ("agent", "master"),
                     ("context", "use"), ("ps",), ("submit",), ("completion",), ("cluster", "down")):
        assert expected in COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(command: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "examples:\n  taskorg" in out, out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("taskorg 0.")


def test_agents_do_not_offer_client_flags_and_refuse_them_given_first(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["agent", "master", "--dns", "127.0.0.1"])
    assert exit_.value.code == 2
    assert main(["--dns", "127.0.0.1", "agent", "master"]) == 2
    assert "--dns is for client commands" in capsys.readouterr().err


def test_local_commands_do_not_offer_client_flags() -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["cluster", "status", "--secret-file", "x"])
    assert exit_.value.code == 2


def test_ps_refuses_an_unknown_format_field(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ps", "--format", "{id} {colour}"]) == 2
    assert "unknown field {colour}" in capsys.readouterr().err


def test_contexts_are_saved_listed_used_and_removed(tmp_path: object, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("TASKORG_CONFIG", raising=False)
    monkeypatch.delenv("TASKORG_CONTEXT", raising=False)
    assert main(["context", "add", "lab", "--dns-address", "127.0.5.1", "--suffix", "lab.internal"]) == 0
    assert main(["context", "add", "lab", "--dns-address", "127.0.5.1"]) == 2  # exists already
    assert main(["context", "add", "bad", "--dns-address", "not-an-address"]) == 2
    assert main(["context", "use", "nope"]) == 2
    assert main(["context", "use", "lab"]) == 0
    capsys.readouterr()
    assert main(["context", "ls", "--json"]) == 0
    import json
    rows = json.loads(capsys.readouterr().out)
    assert rows == [{"name": "lab", "current": True, "dns": "127.0.5.1", "suffix": "lab.internal",
                     "secret_file": "/etc/taskorg/secret"}]
    from taskorg.cli.context import client_config
    assert client_config(argparse.Namespace(config=None, context=None, dns=None, secret_file=None)).suffix == \
        "lab.internal"
    assert main(["context", "rm", "lab"]) == 0
    assert main(["context", "ls", "--json"]) == 0


def test_cluster_up_refuses_a_node_count_its_state_does_not_hold(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Resuming a 3-node cluster's state with --nodes 2 would wait for a node3 never started: refused at once."""
    (tmp_path / "cluster.json").write_text(json.dumps({"name": "lab", "nodes": 3}))
    assert main(["cluster", "up", "--nodes", "2", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "3-node cluster (lab)" in err and "--nodes 2 does not match" in err and "cluster down --purge" in err


def test_bash_completion_completes_subcommands(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["completion", "bash"]) == 0
    script = tmp_path / "taskorg.bash"
    script.write_text(capsys.readouterr().out)
    line = "taskorg node l"
    words = subprocess.run(["bash", "-c", f'source {script}; COMP_WORDS=(taskorg node l); COMP_CWORD=2; '
                            f'COMP_LINE="{line}"; COMP_POINT={len(line)}; _shtab_taskorg; echo "${{COMPREPLY[@]}}"'],
                           capture_output=True, text=True, timeout=30, check=True).stdout.split()
    assert words == ["ls", "leave"]

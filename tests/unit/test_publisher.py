"""Publisher: telling our own rewrite of the hosts file from an operator's hand edit.

Only the file is touched (a temporary state dir); no dnsmasq runs. The DNS
service takes a hand edit of `master.<suffix>` as a handover, so this must
never mistake its own write, an unchanged file, or an edit of other lines
for one naming a new master.
"""

from __future__ import annotations

from pathlib import Path

from taskorg.config import Config
from taskorg.dns.dnsmasq import Dnsmasq
from taskorg.dns.publisher import Publisher, render_hosts

NODES = {"node1": "127.0.9.2", "node2": "127.0.9.3"}


def publisher(tmp_path: Path) -> Publisher:
    config = Config(dns_address="127.0.9.1", state_dir=str(tmp_path))
    pub = Publisher(config, Dnsmasq(config))
    text = render_hosts(config, NODES["node1"], NODES)
    pub._write(pub.path, text)
    pub.last_text = text
    return pub


def test_our_own_write_is_not_an_edit(tmp_path: Path) -> None:
    assert publisher(tmp_path).edited_master() is None


def test_nothing_written_yet_is_not_an_edit(tmp_path: Path) -> None:
    pub = publisher(tmp_path)
    pub.last_text = None  # a fresh service: it has not published yet
    assert pub.edited_master() is None


def test_an_edited_master_line_names_its_address(tmp_path: Path) -> None:
    pub = publisher(tmp_path)
    pub.path.write_text(pub.path.read_text().replace(f"{NODES['node1']} master.", f"{NODES['node2']} master."))
    assert pub.edited_master() == NODES["node2"]


def test_an_edit_of_other_lines_names_the_same_master(tmp_path: Path) -> None:
    pub = publisher(tmp_path)
    pub.path.write_text("# a comment\n" + pub.path.read_text())
    assert pub.edited_master() == NODES["node1"]


def test_two_master_lines_are_ambiguous(tmp_path: Path) -> None:
    pub = publisher(tmp_path)
    name = pub.config.master_name
    pub.path.write_text(pub.path.read_text() + f"{NODES['node2']} {name}\n")
    assert pub.edited_master() is None


def test_a_missing_file_is_not_an_edit(tmp_path: Path) -> None:
    pub = publisher(tmp_path)
    pub.path.unlink()
    assert pub.edited_master() is None


def test_the_hosts_file_can_live_outside_the_private_state_dir(tmp_path: Path) -> None:
    """Provisioned hosts: the state dir is 0700 (taskorg), so dnsmasq's user reads hosts from elsewhere."""
    from taskorg.dns.dnsmasq import render_conf

    config = Config(dns_address="127.0.9.1", state_dir=str(tmp_path / "state"),
                    dns_hosts_dir=str(tmp_path / "dns-hosts"))
    pub = Publisher(config, Dnsmasq(config))
    pub._write(pub.path, render_hosts(config, NODES["node1"], NODES))
    written = tmp_path / "dns-hosts" / "cluster"
    assert "node1" in written.read_text() and (written.stat().st_mode & 0o777) == 0o644
    assert f"hostsdir={tmp_path / 'dns-hosts'}" in render_conf(config)

"""Fast checks of the provisioning files (no hosts): lint, syntax, contracts.

The testbed tests prove the playbook and scripts on real hosts; these catch
the cheap mistakes in seconds: ansible-lint, a variable documented with the
wrong default, a config template taskorg would refuse, a unit naming a
service the CLI does not have, a shell syntax error.
"""

from __future__ import annotations

import configparser
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = REPO / "ansible"
SERVICES = ["dns", "node", "master", "slave", "webview"]
# Set by site.yml or the roles, not by users: not in group_vars/all.yml.
INTERNAL_VARS = {"taskorg_services", "taskorg_role_settings", "taskorg_packages"}


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is not installed (scripts/setup.sh with TASKORG_SETUP_EXTRAS=test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def test_ansible_lint_passes() -> None:
    result = subprocess.run([need("ansible-lint"), "--nocolor", "-p"], cwd=ANSIBLE, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_playbook_syntax() -> None:
    result = subprocess.run([need("ansible-playbook"), "--syntax-check", "-i", "inventory.example.yml", "site.yml"],
                            cwd=ANSIBLE, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def _documented_defaults() -> dict[str, str]:
    """`# taskorg_x: value` lines of group_vars/all.yml (inline comments dropped)."""
    documented = {}
    for line in (ANSIBLE / "group_vars/all.yml").read_text().splitlines():
        match = re.match(r"^# (taskorg_\w+): (.*?)(\s+# .*)?$", line)
        if match:
            documented[match.group(1)] = match.group(2).strip()
    return documented


def test_every_variable_is_documented_with_its_default() -> None:
    defaults = yaml.safe_load((ANSIBLE / "roles/common/defaults/main.yml").read_text())
    documented = _documented_defaults()
    assert sorted(documented) == sorted(set(defaults) - INTERNAL_VARS)
    for name, text in documented.items():
        assert yaml.safe_load(text) == defaults[name], f"{name}: group_vars says {text}, the role {defaults[name]!r}"


def _render(tmp_path: Path, template: str, host_vars: dict | None = None, extra: dict | None = None) -> Path:
    """Render roles/common/templates/`template` with Ansible for a two-host inventory (dns1 10.9.8.2,
    pi1 10.9.8.11) into tmp_path/<host>; the role defaults sit at the inventory's lowest level."""
    defaults = yaml.safe_load((ANSIBLE / "roles/common/defaults/main.yml").read_text())
    defaults["taskorg_role_settings"] = {"manage_dnsmasq": False, "dnsmasq_pid_file": "/run/dnsmasq/dnsmasq.pid",
                                         "dns_hosts_dir": "/var/lib/taskorg-dns/hosts"}
    defaults.update(extra or {})
    inventory = {"all": {"vars": defaults, "children": {
        "dns": {"hosts": {"dns1": {"ansible_host": "10.9.8.2"}}},
        "nodes": {"hosts": {"pi1": {"ansible_host": "10.9.8.11", **(host_vars or {})}}},
    }}}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    play = [{
        "name": "render",
        "hosts": "all",
        "connection": "local",
        "gather_facts": False,
        "tasks": [{"ansible.builtin.template": {
            "src": str(ANSIBLE / "roles/common/templates" / template),
            "dest": str(tmp_path) + "/{{ inventory_hostname }}", "mode": "0644"}}],
    }]
    (tmp_path / "render.yml").write_text(yaml.safe_dump(play))
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
           "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    result = subprocess.run([need("ansible-playbook"), "-i", "inventory.yml", "render.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return tmp_path


def test_config_template_renders_a_config_taskorg_accepts(tmp_path: Path) -> None:
    """Render roles/common/templates/taskorg.yaml.j2 with Ansible, then load it with taskorg's own loader."""
    from taskorg.config import load_config

    _render(tmp_path, "taskorg.yaml.j2", {"taskorg_labels": {"gpu": "true"}})
    node = load_config(tmp_path / "pi1", environ={})
    # Every machine runs a DNS server and asks its own first; the DNS node (the witness) is listed first.
    assert (node.address, node.dns_address, dict(node.labels)) == ("10.9.8.11", "10.9.8.11", {"gpu": "true"})
    assert node.dns_servers == ("10.9.8.2", "10.9.8.11") and node.witness_address == "10.9.8.2"
    dns = load_config(tmp_path / "dns1", environ={})
    assert dns.address == dns.dns_address == "10.9.8.2" and dns.manage_dnsmasq is False
    assert dns.dns_servers == node.dns_servers and dns.consensus_voters == node.consensus_voters == 0
    assert dns.dns_hosts_dir == "/var/lib/taskorg-dns/hosts"


def test_firewall_template_renders_rules_nft_accepts(tmp_path: Path) -> None:
    """The nftables table opens the cluster ports to the inventory's hosts, the trusted networks and
    (client ports only) the client networks; `nft -c` (a dry run in the kernel) accepts it."""
    _render(tmp_path, "firewall.nft.j2", extra={
        "taskorg_firewall_trusted": ["10.1.0.0/16", "fd00::/64"],
        "taskorg_firewall_clients": ["192.168.50.0/24"],
        "taskorg_raft_port": 24000})
    rules = (tmp_path / "pi1").read_text()
    assert rules == (tmp_path / "dns1").read_text()  # the same table on every host
    assert "elements = { 10.9.8.2, 10.9.8.11 }" in rules
    assert "elements = { 10.1.0.0/16 }" in rules and "elements = { fd00::/64 }" in rules
    assert "elements = { 192.168.50.0/24 }" in rules
    assert "elements = { 23333-23380, 53, 24000 }" in rules  # a consensus port moved outside the range too
    assert "elements = { 53, 23333, 23335, 23380 }" in rules  # the client ports
    nft = need("nft")
    if os.geteuid() != 0:
        pytest.skip("nft -c needs root (CAP_NET_ADMIN)")
    result = subprocess.run([nft, "-c", "-f", str(tmp_path / "pi1")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr + rules


def _unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(REPO / "systemd" / f"{name}.service")
    return unit


@pytest.mark.parametrize("service", SERVICES)
def test_unit_runs_the_service_as_the_deployment_contract_says(service: str) -> None:
    unit = _unit(f"taskorg-{service}")
    section = unit["Service"]
    assert section["ExecStart"] == f"/opt/taskorg/venv/bin/taskorg agent {service} --config /etc/taskorg/taskorg.yaml"
    assert section["Restart"] == "on-failure"
    assert "network-online.target" in unit["Unit"]["After"]
    assert section["ProtectSystem"] == "strict" and section["NoNewPrivileges"] == "yes"
    # Restarted when hung, not only when dead: READY=1 and watchdog pings (taskorg/net/sdnotify.py).
    assert (section["Type"], section["WatchdogSec"], section["NotifyAccess"]) == ("notify", "10s", "main")
    # No root: the taskorg user, private files, a private state directory, the firewall loaded first.
    assert (section["User"], section["Group"], section["UMask"]) == ("taskorg", "taskorg", "0077")
    assert section["StateDirectory"] == "taskorg" and section["StateDirectoryMode"] == "0700"
    assert "taskorg-firewall.service" in unit["Unit"]["After"] and "taskorg-firewall.service" in unit["Unit"]["Wants"]
    # Only the capabilities each needs: the DNS service signals dnsmasq (its own user); no other has any.
    capabilities = "CAP_KILL" if service == "dns" else ""
    assert section["CapabilityBoundingSet"] == capabilities
    assert section.get("AmbientCapabilities", "") == capabilities
    assert section.get("SupplementaryGroups", "") == ("docker" if service == "slave" else "")
    if service == "slave":
        assert "docker.service" in unit["Unit"]["Requires"] and "docker.service" in unit["Unit"]["After"]
    # The CLI the unit calls has that service.
    result = subprocess.run([sys.executable, "-m", "taskorg", service, "--help"], capture_output=True, text=True,
                            timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr


def test_firewall_unit_loads_the_table_before_every_taskorg_service() -> None:
    unit = _unit("taskorg-firewall")
    assert unit["Service"]["Type"] == "oneshot" and unit["Service"]["ExecStart"] == "/usr/sbin/nft -f /etc/taskorg/firewall.nft"
    before = unit["Unit"]["Before"].split()
    assert all(f"taskorg-{service}.service" in before for service in SERVICES)


def test_cli_prints_the_dnsmasq_config_the_dns_role_installs(tmp_path: Path) -> None:
    config = tmp_path / "taskorg.yaml"
    config.write_text("dns_address: 10.9.8.2\nsuffix: lab.internal\nmanage_dnsmasq: false\n"
                      "dns_hosts_dir: /var/lib/taskorg-dns/hosts\n")
    result = subprocess.run([sys.executable, "-m", "taskorg", "dnsmasq-conf", "--config", str(config)],
                            capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "listen-address=10.9.8.2" in result.stdout and "hostsdir=/var/lib/taskorg-dns/hosts" in result.stdout


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "provisioning").glob("*.sh")))
def test_shell_scripts_parse(script: str) -> None:
    result = subprocess.run(["sh", "-n", str(REPO / "provisioning" / script)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    if shutil.which("shellcheck"):
        result = subprocess.run(["shellcheck", "-x", script], cwd=REPO / "provisioning", capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stdout


def _wheelhouse(folder: Path, dependency: bytes = b"a long name") -> Path:
    """A taskorg wheel, a dependency wheel and a requirements.txt listing that wheel's hash."""
    folder.mkdir()
    (folder / "taskorg-0.1.0-py3-none-any.whl").write_bytes(b"wheel")
    (folder / ("x" * 120 + ".whl")).write_bytes(dependency)
    digest = hashlib.sha256(b"a long name").hexdigest()
    (folder / "requirements.txt").write_text(f"x==1 \\\n    --hash=sha256:{digest}\n")
    return folder


def test_pack_wheelhouse_is_reproducible(tmp_path: Path) -> None:
    source = _wheelhouse(tmp_path / "wheels")
    tool = [sys.executable, str(REPO / "provisioning/pack-wheelhouse.py"), str(source)]
    first = subprocess.run([*tool, str(tmp_path / "a.tar")], capture_output=True, text=True, timeout=30)
    os.utime(source / "taskorg-0.1.0-py3-none-any.whl", (1, 1))
    second = subprocess.run([*tool, str(tmp_path / "b.tar")], capture_output=True, text=True, timeout=30)
    again = subprocess.run([*tool, str(tmp_path / "b.tar")], capture_output=True, text=True, timeout=30)
    assert first.stdout.strip() == second.stdout.strip() == "changed" and again.stdout == ""
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_pack_wheelhouse_refuses_what_the_hosts_would_refuse(tmp_path: Path) -> None:
    """The hosts install with --require-hashes: a wheel without its hash, or no requirements.txt,
    fails on the controller already, naming the wheel and the fix."""
    tool = [sys.executable, str(REPO / "provisioning/pack-wheelhouse.py")]
    tampered = _wheelhouse(tmp_path / "tampered", dependency=b"other bytes")
    result = subprocess.run([*tool, str(tampered), str(tmp_path / "t.tar")], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 2 and "x" * 120 + ".whl" in result.stderr, result.stderr
    assert "hash-built-wheels.py" in result.stderr and not (tmp_path / "t.tar").exists()
    bare = _wheelhouse(tmp_path / "bare")
    (bare / "requirements.txt").unlink()
    result = subprocess.run([*tool, str(bare), str(tmp_path / "b.tar")], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "no requirements.txt" in result.stderr, result.stderr


def test_ssh_host_keys_are_checked() -> None:
    """Neither the playbook's settings nor the testbed's connections turn host key checking off."""
    config = configparser.ConfigParser()
    config.read(ANSIBLE / "ansible.cfg")
    assert config.getboolean("defaults", "host_key_checking", fallback=True)
    for path in [*ANSIBLE.rglob("*.yml"), ANSIBLE / "ansible.cfg", *(REPO / "tests/testbed").glob("*.py")]:
        text = path.read_text()
        for off in ("StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "HOST_KEY_CHECKING"):
            assert off not in text or path.name == "test_provisioning_files.py", f"{path}: {off}"

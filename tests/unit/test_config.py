"""Settings: taskorg/config.py builds one Config from four sources and refuses bad ones.

Proves: the defaults (the original Task-Org ports, the lease timing); the
order defaults < YAML file (`path` or TASKORG_CONFIG) < environment
`TASKORG_<NAME>` < overrides; typed values from text; an unknown key in a
file is an error naming the file and the key; bad types, bad IP addresses,
bad ports, a heartbeat longer than half the lease and other bad values are
errors naming the setting; labels from `a=b,c=d`; a dumped config loads back
unchanged. No test reads the real environment or /etc.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taskorg.config import Config, ConfigError, dump_config, load_config, read_config_file

NO_ENV: dict[str, str] = {}


def write(tmp_path: Path, text: str, name: str = "taskorg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load(**overrides: Any) -> Config:
    return load_config(overrides=overrides, environ=NO_ENV)


# ---- defaults and derived values -------------------------------------------------------
def test_defaults() -> None:
    config = load_config(environ=NO_ENV)
    assert config == Config()
    assert (config.dns_api_port, config.slave_port, config.master_port, config.node_port,
            config.webview_port) == (23333, 23334, 23335, 23336, 23380)
    assert config.dns_port == 53
    assert config.heartbeat_interval * 2 <= config.lease_timeout
    assert config.lease_margin > 0
    assert config.labels == {}
    assert config.allow_privileged is False


def test_derived_values() -> None:
    config = load(dns_address="10.0.0.1", suffix="lab.internal")
    assert config.node_address == "10.0.0.1"  # no own address: the DNS node's
    assert load(address="10.0.0.7").node_address == "10.0.0.7"
    assert config.master_name == "master.lab.internal"
    assert config.dns_api_url == "https://10.0.0.1:23333"  # TLS is on unless turned off
    assert config.url("10.0.0.9", 23335) == "https://10.0.0.9:23335"
    assert load(tls=False).url("10.0.0.9", 23335) == "http://10.0.0.9:23335"


def test_state_path_makes_the_parent_folders(tmp_path: Path) -> None:
    config = load(state_dir=str(tmp_path / "state"))
    path = config.state_path("dns", "registry.db")
    assert path == tmp_path / "state" / "dns" / "registry.db"
    assert path.parent.is_dir() and not path.exists()


# ---- sources and their order -----------------------------------------------------------
def test_a_yaml_file_sets_values(tmp_path: Path) -> None:
    path = write(tmp_path, "suffix: lab.internal\nmaster_port: 24335\nlease_timeout: 2\n"
                           "allow_host_paths: true\nlabels: {arch: arm64}\n")
    config = load_config(path, environ=NO_ENV)
    assert config.suffix == "lab.internal"
    assert config.master_port == 24335 and isinstance(config.master_port, int)
    assert config.lease_timeout == 2.0 and isinstance(config.lease_timeout, float)
    assert config.allow_host_paths is True
    assert config.labels == {"arch": "arm64"}


def test_an_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ""), environ=NO_ENV) == Config()
    assert load_config(write(tmp_path, "# only a comment\n"), environ=NO_ENV) == Config()


def test_the_file_can_come_from_taskorg_config(tmp_path: Path) -> None:
    path = write(tmp_path, "suffix: from.file\n")
    assert load_config(environ={"TASKORG_CONFIG": str(path)}).suffix == "from.file"


def test_environment_variables_are_typed_from_text() -> None:
    config = load_config(environ={
        "TASKORG_DNS_PORT": "5353", "TASKORG_LEASE_TIMEOUT": "1.5", "TASKORG_ALLOW_PRIVILEGED": "yes",
        "TASKORG_MANAGE_DNSMASQ": "off", "TASKORG_LABELS": "gpu=true,arch=arm64", "TASKORG_SUFFIX": "x.lan",
    })
    assert (config.dns_port, config.lease_timeout, config.allow_privileged, config.manage_dnsmasq) == \
        (5353, 1.5, True, False)
    assert config.labels == {"gpu": "true", "arch": "arm64"}
    assert config.suffix == "x.lan"


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "suffix: file.lan\ncluster: file\nlog_level: info\nmaster_port: 1000\n")
    environ = {"TASKORG_CLUSTER": "env", "TASKORG_LOG_LEVEL": "error", "TASKORG_NODE_PORT": "2000"}
    config = load_config(path, overrides={"log_level": "debug", "slave_port": 3000, "cluster": None},
                         environ=environ)
    assert config.suffix == "file.lan"  # file over default
    assert config.master_port == 1000
    assert config.cluster == "env"  # environment over file; a None override changes nothing
    assert config.node_port == 2000
    assert config.log_level == "debug"  # override over environment and file
    assert config.slave_port == 3000


def test_an_explicit_path_wins_over_taskorg_config(tmp_path: Path) -> None:
    chosen = write(tmp_path, "suffix: chosen.lan\n", "a.yaml")
    other = write(tmp_path, "suffix: other.lan\n", "b.yaml")
    assert load_config(chosen, environ={"TASKORG_CONFIG": str(other)}).suffix == "chosen.lan"


def test_replace_keeps_everything_else_and_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    base = load(suffix="base.lan", master_port=24000)
    monkeypatch.setenv("TASKORG_SUFFIX", "env.lan")
    changed = base.replace(node_port=24001)
    assert (changed.suffix, changed.master_port, changed.node_port) == ("base.lan", 24000, 24001)
    with pytest.raises(ConfigError, match="heartbeat_interval"):
        base.replace(lease_timeout=0.15)  # replace validates too (heartbeat 0.1 s: at most half the lease)


def test_a_dumped_config_loads_back_unchanged(tmp_path: Path) -> None:
    config = load(suffix="lab.lan", labels={"gpu": "true"}, lease_timeout=2.0, allow_host_network=True)
    path = write(tmp_path, dump_config(config))
    assert load_config(path, environ=NO_ENV) == config


# ---- labels ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, labels", [
    ("a=b,c=d", {"a": "b", "c": "d"}),
    (" gpu = true , arch=arm64 ,", {"gpu": "true", "arch": "arm64"}),
    ("", {}),
    ("empty=", {"empty": ""}),
    ("k=v=w", {"k": "v=w"}),
])
def test_labels_from_text(text: str, labels: dict[str, str]) -> None:
    assert load(labels=text).labels == labels
    assert load_config(environ={"TASKORG_LABELS": text}).labels == labels


@pytest.mark.parametrize("text", ["gpu", "a=b,novalue", "=b"])
def test_labels_must_be_key_value_pairs(text: str) -> None:
    with pytest.raises(ConfigError, match=r"setting 'labels': expected key=value pairs"):
        load(labels=text)


def test_labels_must_be_a_mapping_or_text(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"setting 'labels': expected a mapping, got \['gpu'\]"):
        load_config(write(tmp_path, "labels: [gpu]\n"), environ=NO_ENV)


def test_a_yaml_boolean_label_matches_a_boolean_constraint(tmp_path: Path) -> None:
    from taskorg.master.placement import NodeView, why_not
    from taskorg.spec import parse_spec_text

    config = load_config(write(tmp_path, "labels: {gpu: true}\n"), environ=NO_ENV)
    task = parse_spec_text("name: t\nimage: busybox\nconstraints: {labels: {gpu: true}}\n").tasks[0]
    view = NodeView("node1", "127.0.1.2", dict(config.labels), cpus=4, memory=1 << 30)
    assert why_not(view, task) is None  # today: "label gpu=true wanted, node has gpu=True"
    assert config.labels == load_config(environ={"TASKORG_LABELS": "gpu=true"}).labels


# ---- errors that name the file and the key --------------------------------------------------
def test_an_unknown_key_in_a_file_names_the_file_and_the_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "suffix: ok.lan\nlease_timout: 2\nmaster-port: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=NO_ENV)
    assert str(info.value) == f"{path}: unknown setting(s): lease_timout, master-port"


def test_an_unknown_override_is_named() -> None:
    with pytest.raises(ConfigError, match="^unknown setting: lease_timout$"):
        load(lease_timout=2)


def test_a_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- suffix: x\n")
    with pytest.raises(ConfigError, match=f"^{path}: expected a mapping of settings at the top level$"):
        read_config_file(path)


def test_a_file_that_is_not_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "suffix: [unclosed\n")
    with pytest.raises(ConfigError, match=f"^{path}: not valid YAML"):
        load_config(path, environ=NO_ENV)


def test_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=f"^{path}: cannot read config file: No such file or directory$"):
        load_config(path, environ=NO_ENV)


# ---- bad values ------------------------------------------------------------------------------
@pytest.mark.parametrize("name, value, message", [
    ("dns_port", "fifty", "setting 'dns_port': expected a number, got 'fifty'"),
    ("dns_port", "53.5", "setting 'dns_port': expected a whole number, got '53.5'"),
    ("master_port", True, "setting 'master_port': expected a number, got True"),
    ("lease_timeout", "soon", "setting 'lease_timeout': expected a number, got 'soon'"),
    ("lease_timeout", [1], "setting 'lease_timeout': expected a number, got [1]"),
    ("lease_margin", -0.1, "setting 'lease_margin': must not be negative, got -0.1"),
    ("allow_privileged", "maybe", "setting 'allow_privileged': expected true or false, got 'maybe'"),
    ("suffix", ["a", "b"], "setting 'suffix': expected text, got ['a', 'b']"),
    ("state_dir", {"a": 1}, "setting 'state_dir': expected text, got {'a': 1}"),
])
def test_bad_types_name_the_setting(name: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(**{name: value})
    assert str(info.value) == message


def test_a_bad_type_from_the_environment_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="^setting 'node_port': expected a number, got 'x'$"):
        load_config(environ={"TASKORG_NODE_PORT": "x"})


@pytest.mark.parametrize("name, value", [
    ("dns_address", "300.1.1.1"), ("dns_address", "dns.lan"), ("dns_address", ""),
    ("address", "node1"), ("address", "10.0.0"),
])
def test_bad_ip_addresses(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^setting '{name}': not an IP address: '{value}'$"):
        load(**{name: value})


def test_good_ip_addresses() -> None:
    assert load(dns_address="::1", address="fd00::7").address == "fd00::7"
    assert load(address="").address == ""  # empty: use the DNS node's address


@pytest.mark.parametrize("name", ["dns_port", "dns_api_port", "slave_port", "master_port", "node_port",
                                  "webview_port"])
@pytest.mark.parametrize("value", [0, 65536, 100000])
def test_bad_ports(name: str, value: int) -> None:
    with pytest.raises(ConfigError, match=f"^setting '{name}': not a port number: {value}$"):
        load(**{name: value})


def test_port_limits_are_allowed() -> None:
    assert load(node_port=1, webview_port=65535).webview_port == 65535


def test_a_heartbeat_longer_than_half_the_lease_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load(heartbeat_interval=0.31, lease_timeout=0.6)
    assert str(info.value) == ("setting 'heartbeat_interval' (0.31s) must be at most half of 'lease_timeout' "
                               "(0.6s), or one lost heartbeat loses the lease")
    assert load(heartbeat_interval=0.3, lease_timeout=0.6).heartbeat_interval == 0.3  # exactly half is fine


def test_the_heartbeat_rule_holds_across_sources(tmp_path: Path) -> None:
    path = write(tmp_path, "lease_timeout: 4\nheartbeat_interval: 1\n")
    with pytest.raises(ConfigError, match="heartbeat_interval"):
        load_config(path, environ={"TASKORG_LEASE_TIMEOUT": "1"})


@pytest.mark.parametrize("overrides", [{"lease_timeout": 0}, {"lease_margin": 0}])
def test_lease_timing_must_be_positive(overrides: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="must be positive"):
        load(heartbeat_interval=0, **overrides)


@pytest.mark.parametrize("suffix", ["", ".lan", "my lab"])
def test_bad_suffixes(suffix: str) -> None:
    with pytest.raises(ConfigError, match="setting 'suffix': not a DNS domain"):
        load(suffix=suffix)


def test_log_level() -> None:
    assert load(log_level="DEBUG").log_level == "DEBUG"
    with pytest.raises(ConfigError, match="setting 'log_level': one of debug, info, warning, error; got 'loud'"):
        load(log_level="loud")


def test_a_fractional_value_for_a_whole_number_setting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="master_port"):
        load_config(write(tmp_path, "master_port: 23335.7\n"), environ=NO_ENV)


def test_a_lease_timeout_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(ConfigError, match="lease_timeout"):
        load_config(environ={"TASKORG_LEASE_TIMEOUT": "nan"})


@pytest.mark.parametrize("grace", [0.5, 7200])
def test_the_voter_grace_is_bounded(grace: float) -> None:
    with pytest.raises(ConfigError) as info:
        load(voter_grace=grace)
    assert str(info.value) == ("setting 'voter_grace': seconds a voter may stay silent before it is replaced, "
                               f"from 1 to 3600, got {float(grace)}")
    assert load(voter_grace=3).voter_grace == 3

"""Cluster and node settings.

One flat set of settings serves every service, so one file written by
provisioning (or by `taskorg cluster up`) configures a whole node. Values come
from, lowest first: the defaults below, a YAML file (`--config` or
`TASKORG_CONFIG`), environment variables `TASKORG_<NAME>` and command-line
overrides. Any unknown or mistyped setting is an error that names it: a typo
in a config file must never be silently ignored.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

import yaml

from taskorg.labels import NO_MASTER_SERVICE, machine_labels
from taskorg.spec.sizes import parse_size


RUNNERS = ("docker", "standin")
SERVICE_PORT_RANGE = range(23333, 23381)  # the cluster's own ports (the original Task-Org ports)
RESERVED_LABEL_PREFIX = "taskorg."  # node labels taskorg sets itself (taskorg/labels.py)


class ConfigError(ValueError):
    """A setting is missing, unknown or has a bad value."""


@dataclass(frozen=True)
class Config:
    # Identity of the cluster: containers and state carry it, so two clusters
    # sharing one dockerd (tests, a dev machine) never touch each other.
    cluster: str = "taskorg"
    suffix: str = "taskorg.internal"
    # Where the cluster DNS (dnsmasq) and the DNS service listen.
    dns_address: str = "127.0.1.1"
    dns_port: int = 53
    # Every machine's DNS service and dnsmasq, the witness (the DNS node) first: each one serves
    # the zone from its replica of the cluster state. Clients ask `dns_address` first, then these
    # in order. The first 1, 3 or 5 of them vote in the consensus group (taskorg.dns.voters).
    # Empty: `dns_address` alone.
    dns_servers: tuple[str, ...] = ()
    # This node's own address; services bind to it. Empty = the DNS node's.
    address: str = ""
    state_dir: str = "/var/lib/taskorg"
    secret_file: str = "/etc/taskorg/secret"
    # TLS between every service, on by default (docs/security.md). `tls: false` serves plain HTTP,
    # with a warning at every start. A service needs its node certificate; a user's client needs the
    # CA only (its certificate files are used when it can read them).
    tls: bool = True
    tls_ca_file: str = "/etc/taskorg/tls/ca.pem"
    tls_cert_file: str = "/etc/taskorg/tls/node.pem"
    tls_key_file: str = "/etc/taskorg/tls/node.key"
    # The webview's HTTPS certificate and key when the operator supplies one (e.g. from the lab's own
    # CA, so browsers trust it); empty: the node certificate of the cluster CA.
    webview_cert_file: str = ""
    webview_key_file: str = ""
    # User tokens (hashed, with roles) that services accept; empty = `<state_dir>/tokens.json`.
    tokens_file: str = ""
    # Networks (CIDR, or single addresses) whose hosts may read every service's `/metrics` without
    # a credential, e.g. the Prometheus server's LAN. Empty: a `read` token or a node certificate.
    metrics_open_networks: tuple[str, ...] = ()
    # A client's own user token (a file holding it); empty = $TASKORG_TOKEN, else the cluster secret.
    token_file: str = ""
    # Service ports (the original Task-Org ports).
    dns_api_port: int = 23333
    # The consensus group's own traffic between the DNS services (Raft, PySyncObj).
    raft_port: int = 23337
    # How many of the first `dns_servers` vote in the consensus group: 1, 3 or 5 (0: as many as
    # taskorg.dns.voters picks for the list). Every machine must say the same; provisioning and
    # `taskorg cluster up` write it once, so a node added later does not change the group.
    consensus_voters: int = 0
    # A voter silent this long (seconds) is replaced by a living machine (taskorg.dns.voters): long
    # enough that a reboot or a brief hang does not churn the group, short enough that a dead
    # machine does not leave the group one loss away from stopping for long.
    voter_grace: float = 15.0
    slave_port: int = 23334
    master_port: int = 23335
    node_port: int = 23336
    webview_port: int = 23380
    # The master's and the DNS service's cluster-internal routes (reports, role, replication,
    # registration, heartbeats, leases) listen on ports of their own, with their own worker threads,
    # so clients on the public ports cannot starve them (taskorg.net.listeners).
    master_internal_port: int = 23345
    dns_internal_port: int = 23343
    # Heartbeats go as sealed UDP datagrams to the arbiter's DNS service on this port, HTTPS being the
    # fallback (taskorg.net.datagrams); 0: HTTPS only.
    beat_port: int = 23344
    # Timing. Heartbeats renew the master's lease several times per lease.
    heartbeat_interval: float = 0.1
    lease_timeout: float = 0.5
    lease_margin: float = 0.15
    # The role loop's own look at the master record. A lease change already makes the heartbeat look
    # at once, so this only catches a record that moved on its own; at 0.1 s its DNS queries were
    # an eighth of the node service's idle CPU (py-spy).
    role_check_interval: float = 0.5
    # Slave reports: telemetry and a full container list. The slave follows docker's event stream and
    # reports at once when one of its containers starts, dies, stops, is removed or changes health,
    # and when a new master raises its epoch; otherwise it resyncs every `report_resync_interval`
    # (a safety net: a missed event or a lost report is corrected within it). A report that was not
    # delivered (no master, the master unreachable, dockerd down) is tried again after
    # `report_interval`, so a failover costs no more than that.
    report_resync_interval: float = 5.0
    report_interval: float = 1.0
    # The master's telemetry history (the webview's sparklines): one point per this many seconds,
    # the last hour of them, in memory.
    telemetry_history_step: float = 10.0
    # A node whose heartbeats stop for this long is dead for placement: its tasks are started
    # elsewhere. Longer than lease + margin (a stall that long already costs a master its lease),
    # short enough that tasks run again within ~2 s of a power loss.
    node_dead_after: float = 1.0
    # How many standby masters the active master streams every change to (a bounded, sticky set of
    # living nodes, taskorg.master.standbys); every other node keeps its old replica and gets no
    # stream. 2 = replication_acks + 1: one standby may die, or catch up after being chosen, while
    # submissions are still acknowledged, and a 3-node cluster streams to both other nodes as before.
    standbys: int = 2
    # Standbys that must hold a change before a submission is acknowledged
    # (when that many are alive), and how long to wait for them.
    replication_acks: int = 1
    replication_timeout: float = 5.0
    # Finished jobs are kept this long after their last task ended, and at most this many of them;
    # then they are removed with their tasks, instances and history (`POST /v1/prune` at once).
    retain_finished_for: float = 24 * 3600.0
    retain_finished_jobs: int = 1000
    # Node labels used by placement constraints (gpu, arch, ...).
    labels: Mapping[str, str] = field(default_factory=dict)
    # Docker: the engine's local socket only; never TCP.
    docker_socket: str = "unix:///var/run/docker.sock"
    # What runs this node's task instances: `docker` (containers), or `standin`, which starts
    # nothing and keeps instances in memory as running (control-plane load tests; no dockerd needed).
    runner: str = "docker"
    # CPUs this node offers to tasks, reported instead of the machine's count (0 = the machine's).
    # Reserves CPU for the services on a small machine; lets a test node act as a smaller one.
    advertise_cpus: float = 0.0
    # Whether this node runs a master service. A node without one (client-only, as Nomad's) is
    # never streamed the master's state: it could not hold it, and the master would keep retrying.
    master_service: bool = True
    # dnsmasq: started by the DNS service unless systemd runs it.
    manage_dnsmasq: bool = True
    dnsmasq_binary: str = "dnsmasq"
    dnsmasq_pid_file: str = "/run/dnsmasq/dnsmasq.pid"
    # The hosts directory dnsmasq serves; empty = `<state_dir>/dns/hosts`. Provisioned hosts keep it
    # outside the state directory, which is 0700 and so closed to dnsmasq's own user.
    dns_hosts_dir: str = ""
    # Cluster policy for risky specs.
    allow_privileged: bool = False
    allow_host_network: bool = False
    allow_host_paths: bool = False
    # The slave's own rules for every container it starts (docs/architecture.md, "Policy at the
    # slave"): published host ports below 1024 only when allowed; a memory limit and a pids limit
    # for a task whose spec sets none (a runaway task must not take its node's services down).
    allow_low_ports: bool = False
    default_memory_limit: str = "512M"
    default_pids_limit: int = 512
    # How long a slave waits for a missing image to be pulled (a Pi on a slow uplink needs minutes).
    image_pull_timeout: float = 300.0
    # Cluster-wide shared storage mounted into tasks (empty = none).
    shared_dir: str = ""
    # Alerts (docs/metrics.md, "Alerts"): the active master records each alert in its event stream
    # and, when URLs are given, POSTs it as JSON to each of them, signed with HMAC-SHA256 under the
    # secret in `alert_webhook_secret_file` (empty: the cluster secret).
    alert_webhooks: tuple[str, ...] = ()
    alert_webhook_secret_file: str = ""
    alert_disk_percent: float = 90.0  # the state directory's filesystem, percent used
    alert_temperature: float = 80.0  # degrees Celsius, a node's hottest sensor
    alert_replication_lag: float = 10.0  # seconds a standby's oldest missing change has waited
    alert_task_failures: int = 3  # failures of one task within `alert_failure_window` seconds
    alert_failure_window: float = 600.0
    log_level: str = "warning"
    # Append every lease this node holds (epoch, node, from, until on the
    # monotonic clock) to this file; tests check no two leases overlap.
    lease_log: str = ""

    # ---- derived values -------------------------------------------------
    @property
    def node_address(self) -> str:
        return self.address or self.dns_address

    @property
    def node_labels(self) -> dict[str, str]:
        """The labels this node registers: its machine's (arch, hostname, os), the configured ones (which
        win over those), and those taskorg sets itself."""
        own = {} if self.master_service else {NO_MASTER_SERVICE: "true"}
        return {**machine_labels(), **self.labels, **own}

    @property
    def master_name(self) -> str:
        return f"master.{self.suffix}"

    @property
    def service_ports(self) -> frozenset[int]:
        """The cluster's own ports, which no task may publish: the range 23333-23380 and every
        service port configured (a task there could catch secrets while a service restarts)."""
        configured = {self.dns_port, self.dns_api_port, self.slave_port, self.master_port, self.node_port,
                      self.webview_port, self.master_internal_port, self.dns_internal_port}
        return frozenset(SERVICE_PORT_RANGE) | configured

    def url(self, address: str, port: int) -> str:
        return f"{'https' if self.tls else 'http'}://{address}:{port}"

    @property
    def tokens_path(self) -> Path:
        return Path(self.tokens_file) if self.tokens_file else Path(self.state_dir) / "tokens.json"

    @property
    def dns_api_url(self) -> str:
        return self.url(self.dns_address, self.dns_api_port)

    @property
    def dns_server_list(self) -> list[str]:
        """Where to ask, in order: this machine's own DNS (`dns_address`) first, then every other."""
        return [self.dns_address] + [a for a in self.dns_servers if a != self.dns_address]

    @property
    def witness_address(self) -> str:
        """The DNS node's address: `dns.<suffix>` names it."""
        return self.dns_servers[0] if self.dns_servers else self.dns_address

    def state_path(self, *parts: str) -> Path:
        path = Path(self.state_dir).joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def replace(self, **changes: Any) -> "Config":
        return load_config(base=self, overrides=changes)


_FIELDS = {f.name: f for f in fields(Config)}
# Every standby costs the master a sender thread and a stream of every change: more than a few buys
# little (an acknowledgement waits for `replication_acks` of them only) and 99 cost a master its lease.
MAX_STANDBYS = 9
_ADDRESS_LISTS = ("dns_servers", "metrics_open_networks")
_URL_LISTS = ("alert_webhooks",)


def _coerce(name: str, value: Any) -> Any:
    """Turn a raw value (YAML scalar or environment string) into the field's type."""
    if name in _URL_LISTS:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
            raise ConfigError(f"setting '{name}': expected a list of URLs, got {value!r}")
        return tuple(item.strip() for item in items if item.strip())
    if name in _ADDRESS_LISTS:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ConfigError(f"setting '{name}': expected a list of IP addresses{' or networks' if 'networks' in name else ''}, "
                              f"got {value!r}")
        return tuple(str(item).strip() for item in items if str(item).strip())
    default = _FIELDS[name].default
    kind = type(default) if default is not dataclasses.MISSING else dict
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"setting '{name}': expected true or false, got {value!r}")
    if kind in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"setting '{name}': expected a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"setting '{name}': expected a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ConfigError(f"setting '{name}': expected a finite number, got {value!r}")
        if kind is int:
            if not number.is_integer():
                raise ConfigError(f"setting '{name}': expected a whole number, got {value!r}")
            number = int(number)
        if number < 0:
            raise ConfigError(f"setting '{name}': must not be negative, got {value!r}")
        return number
    if kind is dict:
        if isinstance(value, str):
            value = _parse_labels(name, value)
        if not isinstance(value, Mapping):
            raise ConfigError(f"setting '{name}': expected a mapping, got {value!r}")
        return {str(k): _label_text(v) for k, v in value.items()}
    if not isinstance(value, (str, int, float)):
        raise ConfigError(f"setting '{name}': expected text, got {value!r}")
    return str(value)


def _label_text(value: Any) -> str:
    """YAML `true` and the text `true` must be the same label value."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _parse_labels(name: str, text: str) -> dict[str, str]:
    """`gpu=true,arch=arm64` -> {'gpu': 'true', 'arch': 'arm64'}."""
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"setting '{name}': expected key=value pairs, got {item!r}")
        labels[key.strip()] = val.strip()
    return labels


PORT_SETTINGS = ("dns_port", "dns_api_port", "raft_port", "slave_port", "master_port", "node_port", "webview_port",
                 "master_internal_port", "dns_internal_port")


def _validate_internal_ports(config: Config) -> None:
    """The internal listeners sit in the cluster's range (the firewall opens it to members only)
    and share a port with no other service: a clash would serve internal routes on a public port."""
    for name in ("master_internal_port", "dns_internal_port"):
        port = getattr(config, name)
        if port not in SERVICE_PORT_RANGE:
            raise ConfigError(f"setting '{name}': {port} is outside the cluster's port range "
                              f"{SERVICE_PORT_RANGE.start}-{SERVICE_PORT_RANGE.stop - 1}")
        clash = [other for other in PORT_SETTINGS if other != name and getattr(config, other) == port]
        if clash:
            raise ConfigError(f"setting '{name}': port {port} is also the setting '{clash[0]}'; "
                              "the internal listener needs a port of its own")


def _validate(config: Config) -> None:
    for item in config.metrics_open_networks:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(f"setting 'metrics_open_networks': not an IP network: {item!r} "
                              "(expected e.g. 192.168.1.0/24 or 10.0.0.5)") from None
    for name in ("dns_address",) + (("address",) if config.address else ()):
        try:
            ipaddress.ip_address(getattr(config, name))
        except ValueError:
            raise ConfigError(f"setting '{name}': not an IP address: {getattr(config, name)!r}") from None
    for item in config.dns_servers:
        try:
            ipaddress.ip_address(item)
        except ValueError:
            raise ConfigError(f"setting 'dns_servers': not an IP address: {item!r}") from None
    if config.consensus_voters not in (0, 1, 3, 5):
        raise ConfigError(f"setting 'consensus_voters': 1, 3 or 5 (or 0 for automatic), got {config.consensus_voters}")
    if config.consensus_voters > max(1, len(config.dns_servers)):
        raise ConfigError(f"setting 'consensus_voters': {config.consensus_voters} voters need as many "
                          f"'dns_servers', got {len(config.dns_servers)}")
    if len(set(config.dns_servers)) != len(config.dns_servers):
        raise ConfigError(f"setting 'dns_servers': an address is listed twice: {', '.join(config.dns_servers)}")
    if bool(config.webview_cert_file) != bool(config.webview_key_file):
        raise ConfigError("settings 'webview_cert_file' and 'webview_key_file' go together: set both (the "
                          "operator's certificate for the webview and its key) or neither")
    if config.webview_cert_file and not config.tls:
        raise ConfigError("setting 'webview_cert_file' needs TLS on ('tls: true'): the webview serves plain HTTP "
                          "with 'tls: false'")
    if not 1.0 <= config.voter_grace <= 3600:
        raise ConfigError(f"setting 'voter_grace': seconds a voter may stay silent before it is replaced, "
                          f"from 1 to 3600, got {config.voter_grace}")
    for name in PORT_SETTINGS:
        if not 0 < getattr(config, name) < 65536:
            raise ConfigError(f"setting '{name}': not a port number: {getattr(config, name)}")
    _validate_internal_ports(config)
    if config.beat_port and (config.beat_port not in SERVICE_PORT_RANGE or config.beat_port == config.dns_port):
        raise ConfigError(f"setting 'beat_port': {config.beat_port} must be 0 (heartbeats over HTTPS only) or a "
                          f"UDP port in the cluster's range {SERVICE_PORT_RANGE.start}-{SERVICE_PORT_RANGE.stop - 1}")
    if config.lease_margin <= 0 or config.lease_timeout <= 0:
        raise ConfigError("settings 'lease_timeout' and 'lease_margin' must be positive")
    if not 1 <= config.standbys <= MAX_STANDBYS:
        raise ConfigError(f"setting 'standbys': how many standby masters the master streams to, from 1 to "
                          f"{MAX_STANDBYS}, got {config.standbys}")
    if not 0 <= config.replication_acks <= config.standbys:
        raise ConfigError(f"setting 'replication_acks': from 0 to 'standbys' ({config.standbys}): a submission "
                          f"cannot wait for more standbys than the master streams to, got {config.replication_acks}")
    if config.heartbeat_interval * 2 > config.lease_timeout:
        raise ConfigError(
            f"setting 'heartbeat_interval' ({config.heartbeat_interval}s) must be at most half of "
            f"'lease_timeout' ({config.lease_timeout}s), or one lost heartbeat loses the lease"
        )
    if not config.suffix or config.suffix.startswith(".") or " " in config.suffix:
        raise ConfigError(f"setting 'suffix': not a DNS domain: {config.suffix!r}")
    if not 1 <= config.telemetry_history_step <= 600:
        raise ConfigError(f"setting 'telemetry_history_step': seconds from 1 to 600, "
                          f"got {config.telemetry_history_step}")
    _validate_reports(config)
    if config.runner not in RUNNERS:
        raise ConfigError(f"setting 'runner': one of {', '.join(RUNNERS)}; got {config.runner!r}")
    reserved = sorted(key for key in config.labels if key.startswith(RESERVED_LABEL_PREFIX))
    if reserved:
        raise ConfigError(f"setting 'labels': the prefix '{RESERVED_LABEL_PREFIX}' is taskorg's own, "
                          f"got {', '.join(reserved)}")
    try:
        memory = parse_size(config.default_memory_limit)
    except ValueError as exc:
        raise ConfigError(f"setting 'default_memory_limit': {exc}") from None
    if memory < 4 * 1024**2:
        raise ConfigError(f"setting 'default_memory_limit': at least 4M (Docker's minimum), "
                          f"got {config.default_memory_limit!r}")
    if config.default_pids_limit < 1 or config.image_pull_timeout <= 0:
        raise ConfigError("settings 'default_pids_limit' and 'image_pull_timeout' must be positive")
    _validate_alerts(config)
    if config.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"setting 'log_level': one of debug, info, warning, error; got {config.log_level!r}")


def _validate_reports(config: Config) -> None:
    """Every step of the telemetry history (the mean of the reports within it) gets a report or two: the
    sparklines would otherwise have holes."""
    if not 0.05 <= config.report_interval <= 60:
        raise ConfigError(f"setting 'report_interval': seconds before an undelivered report is tried again, "
                          f"from 0.05 to 60, got {config.report_interval:g}")
    if not 0.05 <= config.report_resync_interval <= min(600.0, config.telemetry_history_step / 2):
        raise ConfigError(f"setting 'report_resync_interval': seconds between full reports, from 0.05 to half of "
                          f"'telemetry_history_step' ({config.telemetry_history_step:g}: each history point is "
                          f"the mean of the reports within its step), got {config.report_resync_interval:g}")


def _validate_alerts(config: Config) -> None:
    for url in config.alert_webhooks:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"setting 'alert_webhooks': not an http(s) URL: {url!r} "
                              "(expected e.g. https://alerts.example.net/taskorg)")
    if not 0 < config.alert_disk_percent <= 100:
        raise ConfigError(f"setting 'alert_disk_percent': a percentage above 0 and at most 100, "
                          f"got {config.alert_disk_percent:g}")
    if config.alert_task_failures < 1 or config.alert_failure_window <= 0:
        raise ConfigError("settings 'alert_task_failures' and 'alert_failure_window' must be positive")
    if config.alert_replication_lag <= 0 or config.alert_temperature <= 0:
        raise ConfigError("settings 'alert_replication_lag' and 'alert_temperature' must be positive")


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML settings file; errors name the file."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s): {', '.join(unknown)}")
    return data


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    base: Config | None = None,
) -> Config:
    """Build a Config from defaults, file, environment and overrides, in that order."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = dataclasses.asdict(base) if base else {}
    path = path or (environ.get("TASKORG_CONFIG") if base is None else None)
    if path:
        values.update(read_config_file(path))
    if base is None:
        for name in _FIELDS:
            env_name = f"TASKORG_{name.upper()}"
            if env_name in environ:
                values[name] = environ[env_name]
    for name, value in (overrides or {}).items():
        if name not in _FIELDS:
            raise ConfigError(f"unknown setting: {name}")
        if value is not None:
            values[name] = value
    coerced = {name: _coerce(name, value) for name, value in values.items()}
    config = Config(**coerced)
    _validate(config)
    return config


def dump_config(config: Config) -> str:
    """YAML text of every setting, as a config file for `--config`."""
    return yaml.safe_dump(dataclasses.asdict(config), sort_keys=True)

"""A whole cluster on one machine: the DNS node (the witness) and N regular nodes.

Each node gets its own loopback address (127.0.1.2, .3, ... after the DNS
node's 127.0.1.1), its own state directory and one process per service,
its own DNS service and dnsmasq among them, exactly as on separate machines, against this machine's dockerd (containers
carry the cluster's label, so `stop` removes only ours). The cluster's
processes, addresses and names are written to `cluster.json` in its
directory, so a later `taskorg cluster down` stops exactly what was started.

`LocalCluster` says what happens when (start, kill, pause, restart, stop); the pieces live
beside it: `credentials.py` (CA, certificates, admin token), `configs.py` (taskorg.yaml files
and cluster.json), `processes.py` (spawning and signalling by pid, dnsmasq), `containers.py`
(docker sweeps by label), `status.py` (readiness and the summary).
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Any, Iterable

from taskorg.client import Client
from taskorg.config import Config, load_config
from taskorg.dns.voters import voter_count
from taskorg.secret import write_secret

from . import status
from .configs import STATE_FILE, check_layout, read_state, save_state, write_yaml
from .containers import sweep_containers, sweep_until_empty
from .credentials import ClusterCredentials
from .errors import ClusterError
from .processes import is_ours, reap, signal_dnsmasq, signal_pids, spawn

__all__ = ["DEFAULT_DIR", "NODE_SERVICES", "ClusterError", "LocalCluster"]

NODE_SERVICES = ("node", "slave", "master", "webview", "dns")
DEFAULT_DIR = Path(os.environ.get("TASKORG_CLUSTER_DIR", "/var/lib/taskorg/local-cluster"))


class LocalCluster:
    def __init__(self, workdir: Path = DEFAULT_DIR, nodes: int = 3, dns_address: str = "127.0.1.1",
                 name: str | None = None, settings: dict[str, Any] | None = None, webview: bool = True,
                 node_labels: dict[int, dict[str, str]] | None = None,
                 node_env: dict[int, dict[str, str]] | None = None) -> None:
        check_layout(nodes, dns_address)
        self.workdir = Path(workdir)
        self.nodes = nodes
        self.dns_address = dns_address
        self.name = name or f"local-{secrets.token_hex(3)}"
        self.settings = dict(settings or {})
        self.webview = webview
        self.node_labels = {int(k): dict(v) for k, v in (node_labels or {}).items()}
        # Environment of one node's processes on top of ours (a test puts a fake nvidia-smi on a PATH).
        self.node_env = {int(k): dict(v) for k, v in (node_env or {}).items()}
        self.pids: dict[str, int] = {}

    # ---- addresses and configs ---------------------------------------------------------
    def node_address(self, index: int) -> str:
        return str(ipaddress.ip_address(self.dns_address) + index)

    def webview_url(self, index: int) -> str:
        return self.config.url(self.node_address(index), self.config.webview_port)

    @property
    def secret_file(self) -> Path:
        return self.workdir / "secret"

    @property
    def secret(self) -> str:
        return self.secret_file.read_text().strip()

    # ---- credentials: the cluster CA, a certificate per node, an admin token (credentials.py) ---
    @property
    def credentials(self) -> ClusterCredentials:
        return ClusterCredentials(self.workdir, self.name, self.dns_address,
                                  str(self.settings.get("suffix", Config.suffix)))

    @property
    def ca_dir(self) -> Path:
        return self.credentials.ca_dir

    @property
    def ca_file(self) -> Path:
        return self.credentials.ca_file

    @property
    def tokens_file(self) -> Path:
        return self.credentials.tokens_file

    @property
    def admin_token_file(self) -> Path:
        return self.credentials.admin_token_file

    @property
    def admin_token(self) -> str:
        return self.admin_token_file.read_text().strip()

    def use_tls_here(self) -> None:
        """This process talks to this cluster's addresses with the cluster CA and the harness certificate."""
        self.credentials.use_tls_here()

    @property
    def config(self) -> Config:
        """Settings for a client of this cluster (the CLI, tests)."""
        return load_config(self.client_config_path)

    @property
    def client_config_path(self) -> Path:
        return self.workdir / "client.yaml"

    @property
    def dns_servers(self) -> list[str]:
        """Every machine's DNS server, the DNS node's first."""
        return [self.dns_address] + [self.node_address(i) for i in range(1, self.nodes + 1)]

    @property
    def voters(self) -> int:
        """How many DNS services vote: counted once, when the cluster is made (a node added later
        must not change them), and kept in its settings."""
        return int(self.settings.get("consensus_voters") or voter_count(len(self.dns_servers)))

    def _settings(self, tls_key: str | None = None, **extra: Any) -> dict[str, Any]:
        self.settings.setdefault("consensus_voters", self.voters)
        # One machine: a plain directory plays the cluster's shared storage (NFS in a lab).
        return {"cluster": self.name, "dns_address": self.dns_address, "dns_servers": self.dns_servers,
                "secret_file": str(self.secret_file), "shared_dir": str(self.workdir / "shared"),
                **self.credentials.tls_settings(tls_key), **self.settings, **extra}

    def _write_node_config(self, index: int) -> None:
        """A node asks its own DNS server first, and its DNS service listens on the node's address."""
        extra = {"labels": self.node_labels[index]} if index in self.node_labels else {}
        address = self.node_address(index)
        self.credentials.issue(f"node{index}", [address])
        self._write_yaml(self._node_config(index), self._settings(
            f"node{index}", address=address, dns_address=address, state_dir=str(self.workdir / f"node{index}"),
            **extra))

    def _write_configs(self) -> None:
        """Every file the cluster's processes read (a subclass may add to them: bench/common.py)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        # dnsmasq drops to an unprivileged user and must reach its hosts dir.
        self.workdir.chmod(0o755)
        (self.workdir / "logs").mkdir(exist_ok=True)
        if not self.secret_file.exists():
            write_secret(self.secret_file)
        self.credentials.write()
        # The CLI of this machine is a user: the CA to check the services, the admin token to act.
        self._write_yaml(self.client_config_path, self._settings(
            state_dir=str(self.workdir / "client"), token_file=str(self.admin_token_file)))
        self._write_yaml(self.workdir / "dns" / "taskorg.yaml",
                         self._settings("dns", state_dir=str(self.workdir / "dns")))
        for index in range(1, self.nodes + 1):
            self._write_node_config(index)

    def _node_config(self, index: int) -> Path:
        return self.workdir / f"node{index}" / "taskorg.yaml"

    _write_yaml = staticmethod(write_yaml)

    # ---- processes, by pid (processes.py) ---------------------------------------------------
    def _spawn(self, key: str, service: str, config_path: Path) -> None:
        """Start one service (a subclass may start it otherwise: bench/common.py)."""
        self.pids[key] = spawn(self.workdir, key,
                               [sys.executable, "-m", "taskorg", "agent", service, "--config", str(config_path)],
                               env={**os.environ, "TASKORG_SECRET": "", **self._env_of(key)})
        self._save()

    def _env_of(self, key: str) -> dict[str, str]:
        """The extra environment of process `key` ("node3/slave"): its node's `node_env`."""
        head = key.partition("/")[0]
        return self.node_env.get(int(head.removeprefix("node")), {}) if head.startswith("node") else {}

    def _save(self) -> None:
        save_state(self.workdir, {
            "name": self.name, "nodes": self.nodes, "dns_address": self.dns_address,
            "workdir": str(self.workdir), "settings": self.settings, "webview": self.webview,
            "node_labels": self.node_labels, "node_env": self.node_env,
            "pids": self.pids, "addresses": {f"node{i}": self.node_address(i) for i in range(1, self.nodes + 1)}})

    @classmethod
    def load(cls, workdir: Path = DEFAULT_DIR) -> "LocalCluster":
        state = read_state(workdir)
        cluster = cls(Path(state["workdir"]), state["nodes"], state["dns_address"], state["name"],
                      state.get("settings"), state.get("webview", True), state.get("node_labels"),
                      state.get("node_env"))
        cluster.pids = {k: int(v) for k, v in state["pids"].items()}
        cluster.use_tls_here()
        return cluster

    def _is_ours(self, pid: int) -> bool:
        return is_ours(pid, self.workdir)

    def _signal(self, keys: Iterable[str], sig: int) -> None:
        signal_pids([self.pids.get(key) for key in keys], self.workdir, sig)

    def _reap(self, keys: Iterable[str], timeout: float = 5.0) -> None:
        reap([self.pids.get(key) for key in keys], self.workdir, timeout)

    def node_keys(self, index: int) -> list[str]:
        return [f"node{index}/{s}" for s in NODE_SERVICES if f"node{index}/{s}" in self.pids]

    # ---- lifecycle ------------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> None:
        if (self.workdir / STATE_FILE).exists():
            previous = LocalCluster.load(self.workdir)
            if previous.running():
                raise ClusterError(f"a local cluster already runs from {self.workdir} "
                                   "(`taskorg cluster down` stops it)")
        self._write_configs()
        self.start_dns()
        for index in range(1, self.nodes + 1):
            self.start_node(index, wait_registered=True)
        self.wait_ready(timeout)

    def start_dns(self) -> None:
        """The DNS node's DNS service (and its dnsmasq, unless one still runs), and every voter's that
        does not run yet: registering a node takes a majority of the voters."""
        self._spawn("dns", "dns", self.workdir / "dns" / "taskorg.yaml")
        for index in range(1, self.voters):
            if not self._running(f"node{index}/dns"):
                self._spawn(f"node{index}/dns", "dns", self._node_config(index))
        self._wait(lambda: status.dns_answers(self.config, self.secret, self.dns_address), 20,
                   "the DNS service and dnsmasq to answer")

    def kill_dns_node(self, sig: int = signal.SIGKILL) -> None:
        """Power loss of the DNS node (or, with SIGSTOP / SIGCONT, a hang): its DNS service and its dnsmasq."""
        self._signal(["dns"], sig)
        signal_dnsmasq(self.workdir / "dns", self.workdir, sig)

    def start_node(self, index: int, wait_registered: bool = False) -> None:
        identity = self.workdir / f"node{index}" / "node.json"
        if not self._running(f"node{index}/dns"):
            self._spawn(f"node{index}/dns", "dns", self._node_config(index))
        self._spawn(f"node{index}/node", "node", self._node_config(index))
        if wait_registered:
            # One at a time, so node N gets the name nodeN.
            self._wait(lambda: identity.exists(), 20, f"node{index} to register")
        for service in ("slave", "master", "webview"):
            if service == "webview" and not self.webview:
                continue
            self._spawn(f"node{index}/{service}", service, self._node_config(index))

    def _running(self, key: str) -> bool:
        pid = self.pids.get(key)
        return bool(pid) and self._is_ours(pid)  # type: ignore[arg-type]

    def add_node(self) -> int:
        """A new machine joins the running cluster; its index."""
        self.nodes += 1
        index = self.nodes
        self._write_node_config(index)
        self.start_node(index, wait_registered=True)
        return index

    def kill_node(self, index: int, sig: int = signal.SIGKILL, containers: bool = True) -> None:
        """Power loss: every process of the node, its dnsmasq, and (by default) its containers."""
        self._signal(self.node_keys(index), sig)
        signal_dnsmasq(self.workdir / f"node{index}", self.workdir, sig)
        if containers and sig == signal.SIGKILL:
            sweep_containers(self.name, kill_only=True, node=self.node_name(index))

    def pause_node(self, index: int) -> None:
        self._signal(self.node_keys(index), signal.SIGSTOP)
        signal_dnsmasq(self.workdir / f"node{index}", self.workdir, signal.SIGSTOP)

    def resume_node(self, index: int) -> None:
        self._signal(self.node_keys(index), signal.SIGCONT)
        signal_dnsmasq(self.workdir / f"node{index}", self.workdir, signal.SIGCONT)

    def restart_node(self, index: int) -> None:
        keys = self.node_keys(index)
        self._signal(keys, signal.SIGKILL)
        self._reap(keys, 2)
        self.start_node(index)

    def restart_dns(self, sig: int = signal.SIGKILL) -> None:
        self._signal(["dns"], sig)
        self._reap(["dns"], 3)
        self.start_dns()

    def kill_service(self, key: str, sig: int = signal.SIGKILL) -> None:
        """One process (`dns`, `node2/dns`, `node1/master`...) and nothing else of its machine."""
        self._signal([key], sig)
        if sig == signal.SIGKILL:
            self._reap([key], 3)

    def start_service(self, key: str) -> None:
        """Start one process again (as systemd would), from its machine's config."""
        machine, _, service = key.rpartition("/")
        config = self.workdir / "dns" / "taskorg.yaml" if not machine else self.workdir / machine / "taskorg.yaml"
        self._spawn(key, service, config)

    def service_running(self, key: str) -> bool:
        return self._running(key)

    def node_name(self, index: int) -> str:
        data = json.loads((self.workdir / f"node{index}" / "node.json").read_text())
        return str(data["node"])

    def index_of(self, address: str) -> int:
        return int(ipaddress.ip_address(address)) - int(ipaddress.ip_address(self.dns_address))

    def running(self) -> bool:
        return any(self._is_ours(pid) for pid in self.pids.values())

    def stop(self) -> None:
        keys = list(self.pids)
        self._signal(keys, signal.SIGCONT)  # a paused process cannot die of SIGTERM
        self._signal(keys, signal.SIGTERM)
        self._reap(keys)
        self._stop_dnsmasq()
        sweep_until_empty(self.remove_containers)

    def remove_containers(self) -> int:
        """Remove every container with this cluster's label; how many there were. A create that
        dockerd was still finishing under load outlived stop()'s sweeps, so the test session
        sweeps once more at its end."""
        return sweep_containers(self.name, kill_only=False)

    def _stop_dnsmasq(self) -> None:
        for state_dir in [self.workdir / "dns"] + [self.workdir / f"node{i}" for i in range(1, self.nodes + 1)]:
            signal_dnsmasq(state_dir, self.workdir, signal.SIGCONT)
            signal_dnsmasq(state_dir, self.workdir, signal.SIGTERM)

    # ---- readiness (status.py) --------------------------------------------------------------------------
    _wait = staticmethod(status.wait_until)

    def wait_master(self, timeout: float = 15.0) -> str:
        """The address of an active master that answers the API."""
        return status.wait_master(lambda: self.config, lambda: self.secret, timeout)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Every node registered and alive, a master active, every slave reporting."""
        self.wait_master(timeout)
        self._wait(lambda: status.all_reporting(self.client(), self.nodes), timeout,
                   "every node to report to the master")

    def client(self, **kwargs: Any) -> Client:
        return Client(self.config, self.secret, **kwargs)

    def summary(self) -> dict[str, Any]:
        return status.summary(self.config, self.client(failover_wait=2), self.name, str(self.workdir),
                              self.dns_address, self.webview, str(self.client_config_path))

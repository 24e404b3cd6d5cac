"""A whole cluster on one machine: the DNS node (the witness) and N regular nodes.

Each node gets its own loopback address (127.0.1.2, .3, ... after the DNS
node's 127.0.1.1), its own state directory and one process per service,
its own DNS service and dnsmasq among them, exactly as on separate machines, against this machine's dockerd (containers
carry the cluster's label, so `stop` removes only ours). The cluster's
processes, addresses and names are written to `cluster.json` in its
directory, so a later `taskorg cluster down` stops exactly what was started.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import yaml

from taskorg.client import Client, DnsUnavailable
from taskorg.config import Config, load_config
from taskorg.dns.voters import voter_count
from taskorg.net.client import ServiceClient, ServiceError, ServiceUnavailable
from taskorg.net.resolve import ResolveError, resolve_at, resolve_master
from taskorg.secret import write_secret
from taskorg.security import ca, tls
from taskorg.security.files import write_private
from taskorg.security.tokens import TokenStore

NODE_SERVICES = ("node", "slave", "master", "webview", "dns")
DEFAULT_DIR = Path(os.environ.get("TASKORG_CLUSTER_DIR", "/var/lib/taskorg/local-cluster"))


class ClusterError(RuntimeError):
    """The local cluster could not be started or reached."""


class LocalCluster:
    def __init__(self, workdir: Path = DEFAULT_DIR, nodes: int = 3, dns_address: str = "127.0.1.1",
                 name: str | None = None, settings: dict[str, Any] | None = None, webview: bool = True,
                 node_labels: dict[int, dict[str, str]] | None = None) -> None:
        if not 1 <= nodes <= 50:
            raise ClusterError(f"--nodes must be between 1 and 50, got {nodes}")
        address = ipaddress.ip_address(dns_address)
        if not address.is_loopback:
            raise ClusterError(f"a local cluster lives on loopback addresses (127.x.y.z), not {dns_address}")
        if int(address) % 256 + nodes > 254:
            raise ClusterError(f"{nodes} nodes do not fit after {dns_address} in its /24")
        self.workdir = Path(workdir)
        self.nodes = nodes
        self.dns_address = dns_address
        self.name = name or f"local-{secrets.token_hex(3)}"
        self.settings = dict(settings or {})
        self.webview = webview
        self.node_labels = {int(k): dict(v) for k, v in (node_labels or {}).items()}
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

    # ---- credentials: the cluster CA, a certificate per node, an admin token ------------------
    @property
    def ca_dir(self) -> Path:
        return self.workdir / "ca"

    @property
    def ca_file(self) -> Path:
        return self.ca_dir / ca.CA_CERT

    @property
    def tokens_file(self) -> Path:
        return self.workdir / "tokens.json"

    @property
    def admin_token_file(self) -> Path:
        return self.workdir / "admin-token"

    @property
    def admin_token(self) -> str:
        return self.admin_token_file.read_text().strip()

    def _cert(self, key: str) -> tuple[Path, Path]:
        folder = self.workdir / key / "tls"
        return folder / f"{key}.pem", folder / f"{key}.key"

    def _issue(self, key: str, addresses: list[str]) -> None:
        if not self._cert(key)[0].exists():
            ca.issue(self.ca_dir, key, addresses, self._suffix(), self.workdir / key / "tls")

    def _suffix(self) -> str:
        return str(self.settings.get("suffix", Config.suffix))

    def _write_credentials(self) -> None:
        if not self.ca_file.exists():
            ca.init_ca(self.ca_dir, self.name)
        self._issue("dns", [self.dns_address])
        # The test harness (this process) gets a certificate of its own: tests call internal endpoints.
        self._issue("harness", [])
        if not self.admin_token_file.exists():
            _, clear = TokenStore(self.tokens_file).create("local-admin", "admin")
            write_private(self.admin_token_file, (clear + "\n").encode())
        self.use_tls_here()

    def use_tls_here(self) -> None:
        """This process talks to this cluster's addresses with the cluster CA and the harness certificate."""
        cert, key = self._cert("harness")
        if cert.exists():
            network = f"{self.dns_address}/24"
            tls.use(tls.TlsMaterial(str(self.ca_file), str(cert), str(key)), network=network)

    def _tls_settings(self, key: str | None) -> dict[str, Any]:
        cert, private = self._cert(key) if key else (Path(""), Path(""))
        return {"tls_ca_file": str(self.ca_file), "tls_cert_file": str(cert) if key else "",
                "tls_key_file": str(private) if key else "", "tokens_file": str(self.tokens_file)}

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
                **self._tls_settings(tls_key), **self.settings, **extra}

    def _write_node_config(self, index: int) -> None:
        """A node asks its own DNS server first, and its DNS service listens on the node's address."""
        extra = {"labels": self.node_labels[index]} if index in self.node_labels else {}
        address = self.node_address(index)
        self._issue(f"node{index}", [address])
        self._write_yaml(self._node_config(index), self._settings(
            f"node{index}", address=address, dns_address=address, state_dir=str(self.workdir / f"node{index}"),
            **extra))

    def _write_configs(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # dnsmasq drops to an unprivileged user and must reach its hosts dir.
        self.workdir.chmod(0o755)
        (self.workdir / "logs").mkdir(exist_ok=True)
        if not self.secret_file.exists():
            write_secret(self.secret_file)
        self._write_credentials()
        # The CLI of this machine is a user: the CA to check the services, the admin token to act.
        self._write_yaml(self.client_config_path, self._settings(
            state_dir=str(self.workdir / "client"), token_file=str(self.admin_token_file)))
        self._write_yaml(self.workdir / "dns" / "taskorg.yaml",
                         self._settings("dns", state_dir=str(self.workdir / "dns")))
        for index in range(1, self.nodes + 1):
            self._write_node_config(index)

    def _node_config(self, index: int) -> Path:
        return self.workdir / f"node{index}" / "taskorg.yaml"

    @staticmethod
    def _write_yaml(path: Path, data: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=True))
        load_config(path)  # fail now, naming the file, if a setting is bad

    # ---- processes --------------------------------------------------------------------------
    def _spawn(self, key: str, service: str, config_path: Path) -> None:
        log = open(self.workdir / "logs" / f"{key.replace('/', '-')}.log", "ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "taskorg", "agent", service, "--config", str(config_path)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            env={**os.environ, "TASKORG_SECRET": ""})
        log.close()
        self.pids[key] = process.pid
        self._save()

    def _save(self) -> None:
        state = {"name": self.name, "nodes": self.nodes, "dns_address": self.dns_address,
                 "workdir": str(self.workdir), "settings": self.settings, "webview": self.webview,
                 "node_labels": self.node_labels,
                 "pids": self.pids, "addresses": {f"node{i}": self.node_address(i) for i in range(1, self.nodes + 1)}}
        tmp = self.workdir / ".cluster.json.tmp"
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, self.workdir / "cluster.json")

    @classmethod
    def load(cls, workdir: Path = DEFAULT_DIR) -> "LocalCluster":
        try:
            state = json.loads((Path(workdir) / "cluster.json").read_text())
        except FileNotFoundError:
            raise ClusterError(f"no local cluster in {workdir} (start one with `taskorg cluster up`)") from None
        cluster = cls(Path(state["workdir"]), state["nodes"], state["dns_address"], state["name"],
                      state.get("settings"), state.get("webview", True), state.get("node_labels"))
        cluster.pids = {k: int(v) for k, v in state["pids"].items()}
        cluster.use_tls_here()
        return cluster

    def _is_ours(self, pid: int) -> bool:
        """The pid is still a taskorg process of this cluster (pids get reused)."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
        return "taskorg" in cmdline and str(self.workdir) in cmdline

    def _signal(self, keys: Iterable[str], sig: int) -> None:
        for key in keys:
            pid = self.pids.get(key)
            if pid and self._is_ours(pid):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass

    def _reap(self, keys: Iterable[str], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        for key in list(keys):
            pid = self.pids.get(key)
            while pid and self._is_ours(pid) and time.monotonic() < deadline:
                try:
                    if os.waitpid(pid, os.WNOHANG)[0]:
                        break
                except ChildProcessError:
                    pass
                time.sleep(0.02)
            if pid and self._is_ours(pid):
                os.kill(pid, signal.SIGKILL)

    def node_keys(self, index: int) -> list[str]:
        return [f"node{index}/{s}" for s in NODE_SERVICES if f"node{index}/{s}" in self.pids]

    # ---- lifecycle ------------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> None:
        if (self.workdir / "cluster.json").exists():
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
        self._wait(lambda: self._dns_answers(), 20, "the DNS service and dnsmasq to answer")

    def kill_dns_node(self, sig: int = signal.SIGKILL) -> None:
        """Power loss of the DNS node (or, with SIGSTOP / SIGCONT, a hang): its DNS service and its dnsmasq."""
        self._signal(["dns"], sig)
        self._kill_dnsmasq(self.workdir / "dns", sig)

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
        self._kill_dnsmasq(self.workdir / f"node{index}", sig)
        if containers and sig == signal.SIGKILL:
            self._docker_containers(kill_only=True, node=self.node_name(index))

    def pause_node(self, index: int) -> None:
        self._signal(self.node_keys(index), signal.SIGSTOP)
        self._kill_dnsmasq(self.workdir / f"node{index}", signal.SIGSTOP)

    def resume_node(self, index: int) -> None:
        self._signal(self.node_keys(index), signal.SIGCONT)
        self._kill_dnsmasq(self.workdir / f"node{index}", signal.SIGCONT)

    def restart_node(self, index: int) -> None:
        keys = self.node_keys(index)
        self._signal(keys, signal.SIGKILL)
        self._reap(keys, 2)
        self.start_node(index)

    def restart_dns(self, sig: int = signal.SIGKILL) -> None:
        self._signal(["dns"], sig)
        self._reap(["dns"], 3)
        self.start_dns()

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
        # dockerd may finish a create that a slave asked for just before it died:
        # sweep again until a listing comes back empty (bounded).
        for _ in range(3):
            if not self.remove_containers():
                break
            time.sleep(0.5)

    def remove_containers(self) -> int:
        """Remove every container with this cluster's label; how many there were. A create that
        dockerd was still finishing under load outlived stop()'s sweeps, so the test session
        sweeps once more at its end."""
        return self._docker_containers(kill_only=False)

    def _stop_dnsmasq(self) -> None:
        for state_dir in [self.workdir / "dns"] + [self.workdir / f"node{i}" for i in range(1, self.nodes + 1)]:
            self._kill_dnsmasq(state_dir, signal.SIGCONT)
            self._kill_dnsmasq(state_dir, signal.SIGTERM)

    def _kill_dnsmasq(self, state_dir: Path, sig: int) -> None:
        """Signal the dnsmasq of the machine whose state directory this is (it runs in a session of its own)."""
        try:
            pid = int((state_dir / "dns" / "dnsmasq.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError):
            return
        if "dnsmasq" in cmdline and str(self.workdir) in cmdline:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def _docker_containers(self, kill_only: bool, node: str | None = None) -> int:
        import docker

        client = docker.from_env()
        labels = [f"taskorg.cluster={self.name}"] + ([f"taskorg.node={node}"] if node else [])
        found = client.containers.list(all=True, filters={"label": labels}, ignore_removed=True)
        for container in found:
            try:
                if kill_only:
                    if container.status == "running":
                        container.kill()
                else:
                    container.remove(force=True)
            except docker.errors.APIError:
                pass
        client.close()
        return len(found)

    # ---- readiness -------------------------------------------------------------------------------------------
    @staticmethod
    def _wait(check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except Exception:
                pass
            time.sleep(0.05)
        raise ClusterError(f"timed out after {timeout:g} s waiting for {what}")

    def _dns_answers(self) -> bool:
        config = self.config
        dns = ServiceClient(config.dns_api_url, self.secret, timeout=1)
        try:
            dns.get("/v1/master")
        finally:
            dns.close()
        return resolve_at(config, self.dns_address, f"dns.{config.suffix}", timeout=0.3) == [self.dns_address]

    def wait_master(self, timeout: float = 15.0) -> str:
        """The address of an active master that answers the API."""
        found: list[str] = []

        def active() -> bool:
            address = resolve_master(self.config, timeout=0.3)
            client = ServiceClient(self.config.url(address, self.config.master_port), self.secret, timeout=1)
            try:
                if client.get("/v1/status")["active"]:
                    found.append(address)
                    return True
            finally:
                client.close()
            return False

        self._wait(active, timeout, "an active master")
        return found[-1]

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Every node registered and alive, a master active, every slave reporting."""
        self.wait_master(timeout)

        def reporting() -> bool:
            members = self.client().members()["members"]
            return len(members) >= self.nodes and all(m["alive"] and m["telemetry"] for m in members)

        self._wait(reporting, timeout, "every node to report to the master")

    def client(self, **kwargs: Any) -> Client:
        return Client(self.config, self.secret, **kwargs)

    def summary(self) -> dict[str, Any]:
        config = self.config
        try:
            master = resolve_master(config)
        except ResolveError:
            master = None
        try:
            members = self.client(failover_wait=2).dns_members()["members"]
        except (ServiceError, ServiceUnavailable, DnsUnavailable):
            members = []
        return {
            "name": self.name, "workdir": str(self.workdir), "dns": self.dns_address,
            "suffix": config.suffix, "master": master,
            "api": config.url(config.master_name, config.master_port) if master else None,
            "members": [{"node": m["node"], "address": m["address"], "role": m["role"], "alive": m["alive"],
                         "webview": config.url(m['address'], config.webview_port) if self.webview else None}
                        for m in members],
            "client_config": str(self.client_config_path),
        }

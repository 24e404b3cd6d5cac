"""A testbed of Debian hosts: containers that boot systemd, run sshd and dockerd.

`Testbed` creates its own `--internal` docker network on a free private
subnet, starts one DNS host and N regular hosts from the image built by
`image.py`, generates an SSH key for the run, and provisions the hosts with
the real `ansible-playbook` over SSH. Failures are real too: `kill` is power
loss (`docker kill`), `pause` is a hang, `disconnect` is a cut cable.

Everything it creates carries the label ``taskorg.testbed=<run id>`` and is
removed by `teardown` through that label only; containers or networks of
anyone else are never touched. Every wait here is bounded in time.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, TypeVar

import yaml

from .hostkeys import write_known_hosts

SUFFIX = "tb.taskorg.internal"
LABEL = "taskorg.testbed"
PID_LABEL = "taskorg.testbed.pid"
CUT_CHAIN = "taskorg-testbed-cut"  # isolate(): the iptables chain of a partition inside a host
REPO_ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO_ROOT / "ansible"

# Flags that let systemd boot in a container without --privileged (cgroup v1
# hybrid host: the host's cgroup tree is shared read-write).
HOST_FLAGS = [
    "--cap-add=ALL",
    "--cap-drop=SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined",
    "--cgroupns=host",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run",
    "--tmpfs", "/run/lock",
    "--tmpfs", "/tmp",
    # The host's dockerd keeps its storage on a volume (the machine's filesystem), so it can use
    # overlay2 like a real host; removed with the container (`rm -v`), kept across a kill and start.
    "-v", "/var/lib/docker",
    "-e", "container=docker",
    # dockerd inside routes task containers' traffic (per network namespace).
    "--sysctl", "net.ipv4.ip_forward=1",
]

T = TypeVar("T")


def log(message: str) -> None:
    print(f"[testbed {time.strftime('%H:%M:%S')}] {message}", flush=True)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.25) -> T:
    """Call `probe` until it returns something truthy; bounded by `timeout` seconds."""
    deadline = time.monotonic() + timeout
    attempts = 0
    last_error: Exception | None = None
    while True:
        attempts += 1
        try:
            value = probe()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - reported below if it never succeeds
            last_error = exc
        if time.monotonic() >= deadline or attempts > 100_000:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def docker(*args: str, timeout: float = 120, check: bool = True, input: bytes | None = None) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, timeout=timeout, input=input)
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed ({result.returncode}): "
                           f"{result.stderr.decode(errors='replace').strip()}")
    return result.stdout.decode(errors="replace")


@dataclass
class Host:
    name: str  # the short name in the inventory and the container's hostname
    role: str  # "dns" or "node"
    address: str
    container: str  # the docker container name

    def __str__(self) -> str:
        return f"{self.name} ({self.address})"


@dataclass
class PlaybookRun:
    returncode: int
    output: str
    recap: dict[str, dict[str, int]]
    seconds: float

    def total(self, key: str) -> int:
        return sum(counts.get(key, 0) for counts in self.recap.values())


_RECAP_LINE = re.compile(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$")


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines -> {host: {ok: n, changed: n, unreachable: n, failed: n, ...}}."""
    recap: dict[str, dict[str, int]] = {}
    in_recap = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        if in_recap:
            match = _RECAP_LINE.match(line.strip())
            if match:
                counts = dict(item.split("=") for item in match.group(2).split())
                recap[match.group(1)] = {key: int(value) for key, value in counts.items()}
    return recap


def _used_subnets() -> list[ipaddress.IPv4Network]:
    """Subnets already taken by docker networks or routes on this machine."""
    used: list[ipaddress.IPv4Network] = []
    for net_id in docker("network", "ls", "-q").split():
        info = json.loads(docker("network", "inspect", net_id))[0]
        for config in (info.get("IPAM") or {}).get("Config") or []:
            if config.get("Subnet") and ":" not in config["Subnet"]:
                used.append(ipaddress.ip_network(config["Subnet"], strict=False))
    routes = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True, timeout=10).stdout
    for line in routes.splitlines():
        first = line.split()[0] if line.split() else ""
        if first and first != "default":
            try:
                used.append(ipaddress.ip_network(first, strict=False))
            except ValueError:
                pass
    return used


def pick_free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.213.0.0/16 (unlikely to clash with a lab or docker's defaults) that nothing uses."""
    used = _used_subnets()
    for third in range(10, 250):
        candidate = ipaddress.ip_network(f"10.213.{third}.0/24")
        if not any(candidate.overlaps(net) for net in used):
            return candidate
    raise RuntimeError("no free /24 left in 10.213.0.0/16 for the testbed network")


def remove_leftovers() -> None:
    """Remove testbed containers and networks of earlier runs whose process is gone.

    Only objects carrying our own label are considered, and only when the pid
    recorded in them no longer exists (a run that crashed before teardown).
    """
    for kind in ("container", "network"):
        ls = ["ps", "-a"] if kind == "container" else ["network", "ls"]
        ids = docker(*ls, "-q", "--filter", f"label={LABEL}").split()
        for object_id in ids:
            labels = json.loads(docker(kind, "inspect", "-f", "{{json .Config.Labels}}" if kind == "container"
                                       else "{{json .Labels}}", object_id, check=False) or "{}") or {}
            pid = labels.get(PID_LABEL, "")
            if pid.isdigit() and Path(f"/proc/{pid}").exists():
                continue
            log(f"removing leftover testbed {kind} {object_id[:12]} (run {labels.get(LABEL)})")
            if kind == "container":
                docker("rm", "-f", "-v", object_id, check=False)
            else:
                docker("network", "rm", object_id, check=False)


class Testbed:
    """One DNS host and `nodes` regular hosts on a private network, provisioned by Ansible."""

    __test__ = False  # not a pytest test class

    def __init__(self, image: str, nodes: int = 3, run_id: str | None = None,
                 workdir: Path | None = None) -> None:
        self.image = image
        self.run_id = run_id or f"{time.strftime('%H%M%S')}-{secrets.token_hex(3)}"
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"taskorg-testbed-{self.run_id}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.network = f"taskorg-tb-{self.run_id}"
        self.subnet: ipaddress.IPv4Network | None = None
        self.node_count = nodes
        self.hosts: dict[str, Host] = {}
        self.key_file = self.workdir / "id_ed25519"
        # Every host's SSH keys (hostkeys.py): ssh and the playbook trust no other.
        self.known_hosts = self.workdir / "known_hosts"
        self.inventory_file = self.workdir / "inventory.yml"
        self.labels = [f"{LABEL}={self.run_id}", f"{PID_LABEL}={os.getpid()}"]
        self.timings: dict[str, float] = {}
        # Containers the hosts' own dockerds ran: their cgroups are cleaned up at teardown.
        self.inner_ids: set[str] = set()

    # ---- state (so a kept testbed can be picked up again) ----------------
    def save(self) -> Path:
        state = {"image": self.image, "run_id": self.run_id, "subnet": str(self.subnet),
                 "hosts": [vars(h) for h in self.hosts.values()]}
        path = self.workdir / "testbed.json"
        path.write_text(json.dumps(state, indent=2))
        return path

    @classmethod
    def load(cls, workdir: Path) -> "Testbed":
        state = json.loads((Path(workdir) / "testbed.json").read_text())
        testbed = cls(state["image"], nodes=len(state["hosts"]) - 1, run_id=state["run_id"], workdir=Path(workdir))
        testbed.subnet = ipaddress.ip_network(state["subnet"])
        testbed.hosts = {h["name"]: Host(**h) for h in state["hosts"]}
        # The containers record the pid of the process that made them; a
        # testbed picked up again is this process's now.
        testbed.labels = [f"{LABEL}={testbed.run_id}", f"{PID_LABEL}={os.getpid()}"]
        return testbed

    # ---- lifecycle ------------------------------------------------------
    def up(self, boot_timeout: float = 180) -> None:
        started = time.monotonic()
        remove_leftovers()
        self._create_network()
        names = [("dns1", "dns")] + [(f"host{i}", "node") for i in range(1, self.node_count + 1)]
        hosts = list(self.subnet.hosts())  # type: ignore[union-attr]
        for offset, (name, role) in enumerate(names):
            # .1 is the bridge (the runner's side); hosts get .10, .11, ...
            self.hosts[name] = Host(name, role, str(hosts[9 + offset]), f"{self.network}-{name}")
        for host in self.hosts.values():
            self._run_container(host)
        self._make_key()
        for host in self.hosts.values():
            self.wait_booted(host.name, timeout=boot_timeout)
            self._install_key(host)
        write_known_hosts(self.known_hosts, [(h.address, h.container) for h in self.hosts.values()])
        for host in self.hosts.values():
            self.wait_ssh(host.name, timeout=60)
        self.save()
        log(f"{len(self.hosts)} hosts booted with sshd answering in {time.monotonic() - started:.1f}s")

    def teardown(self) -> None:
        """Remove the containers and the network of this run (by our label only)."""
        ids = docker("ps", "-a", "-q", "--filter", f"label={LABEL}={self.run_id}", check=False).split()
        for name in self.hosts:
            self._note_inner_containers(name)
        if ids:
            docker("rm", "-f", "-v", *ids, check=False, timeout=300)
        self._remove_inner_cgroups()
        for net_id in docker("network", "ls", "-q", "--filter", f"label={LABEL}={self.run_id}",
                             check=False).split():
            docker("network", "rm", net_id, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)
        log(f"testbed {self.run_id} removed")

    def _note_inner_containers(self, name: str) -> None:
        try:
            out = docker("exec", self.hosts[name].container, "docker", "ps", "-a", "-q", "--no-trunc",
                         check=False, timeout=30)
        except subprocess.TimeoutExpired:
            return
        self.inner_ids.update(line for line in out.split() if re.fullmatch(r"[0-9a-f]{64}", line))

    def _remove_inner_cgroups(self) -> None:
        """Remove the empty cgroups our hosts' dockerds left behind.

        The hosts share the machine's cgroup tree (--cgroupns=host), so their
        dockerds create /sys/fs/cgroup/<controller>/docker/<id> beside the
        host containers; a host killed with its containers never removes them.
        Only ids seen in our hosts are touched, and rmdir refuses a cgroup
        that still has processes.
        """
        for inner_id in self.inner_ids:
            for path in Path("/sys/fs/cgroup").glob(f"*/docker/{inner_id}"):
                try:
                    path.rmdir()
                except OSError:
                    pass

    def _create_network(self) -> None:
        self.subnet = pick_free_subnet()
        args = ["network", "create", "--internal", "--driver", "bridge",
                "--subnet", str(self.subnet), "--gateway", self.gateway]
        for label in self.labels:
            args += ["--label", label]
        docker(*args, self.network)
        log(f"network {self.network} on {self.subnet} (internal)")

    def _run_container(self, host: Host) -> None:
        args = ["run", "-d", "--name", host.container, "--hostname", host.name,
                "--network", self.network, "--ip", host.address, *HOST_FLAGS]
        for label in self.labels:
            args += ["--label", label]
        args += ["--label", f"{LABEL}.host={host.name}", self.image]
        docker(*args)

    # ---- waiting --------------------------------------------------------
    def wait_booted(self, name: str, timeout: float = 180) -> str:
        """Wait until systemd finished booting; returns running/degraded."""
        container = self.hosts[name].container

        def probe() -> str | None:
            result = subprocess.run(["docker", "exec", container, "systemctl", "is-system-running"],
                                    capture_output=True, text=True, timeout=15)
            state = result.stdout.strip()
            return state if state in ("running", "degraded") else None

        state = wait_for(f"systemd to boot on {name}", probe, timeout, interval=0.5)
        if state == "degraded":
            failed = self.exec(name, "systemctl --failed --no-legend --plain", check=False)
            log(f"{name}: systemd degraded, failed units: {failed.strip()}")
        return state

    def wait_ssh(self, name: str, timeout: float = 60) -> None:
        wait_for(f"sshd on {name}", lambda: self.ssh(name, "true", check=False, timeout=10).returncode == 0,
                 timeout, interval=0.5)

    # ---- ssh and inventory ---------------------------------------------
    def _make_key(self) -> None:
        if not self.key_file.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"taskorg-testbed-{self.run_id}",
                            "-f", str(self.key_file)], check=True, timeout=30)

    def _install_key(self, host: Host) -> None:
        public = self.key_file.with_suffix(".pub").read_bytes()
        docker("exec", "-i", host.container, "sh", "-c",
               "install -d -m 700 /root/.ssh && cat > /root/.ssh/authorized_keys && "
               "chmod 600 /root/.ssh/authorized_keys", input=public)

    @property
    def ssh_options(self) -> list[str]:
        return ["-i", str(self.key_file), "-o", "BatchMode=yes", *self.host_key_options,
                "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5", "-o", "IdentitiesOnly=yes"]

    @property
    def host_key_options(self) -> list[str]:
        """Host keys checked against the testbed's known_hosts alone (a changed key is refused)."""
        return ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null"]

    def ssh(self, name: str, command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        result = subprocess.run(["ssh", *self.ssh_options, f"root@{self.hosts[name].address}", command],
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"ssh {name} {command!r} failed: {result.stderr.strip()}")
        return result

    def provision_vars(self) -> dict:
        """Playbook variables of a testbed: the offline wheelhouse, a per-run secret and build dir."""
        return {
            "taskorg_cluster": "testbed",
            "taskorg_suffix": SUFFIX,
            "taskorg_wheelhouse": str(self.workdir / "wheelhouse"),
            "taskorg_secret_file": str(self.workdir / "secret"),
            "taskorg_ca_dir": str(self.workdir / "ca"),
            "taskorg_build_dir": str(self.workdir / "build"),
            "taskorg_log_level": "info",
            # The runner (the bridge's gateway) drives the tests: it reaches every port, as an admin machine
            # would. Any other address on the testbed network that is not a host is refused.
            "taskorg_firewall_trusted": [self.gateway],
        }

    @property
    def gateway(self) -> str:
        """The runner's address on the testbed network (the bridge)."""
        return str(next(self.subnet.hosts()))  # type: ignore[union-attr]

    @property
    def secret(self) -> str:
        """The cluster secret the playbook generated on the controller (this runner)."""
        return (self.workdir / "secret").read_text().strip()

    def use_tls(self):  # -> taskorg.security.tls.TlsMaterial
        """This runner talks TLS to the testbed: the CA the playbook made, and a certificate of its own
        (made once from that CA) so the tests can call internal endpoints. Sets this process's default."""
        from taskorg.security import ca, tls

        folder = self.workdir / "harness"
        if not (folder / "harness.pem").exists():
            ca.issue(self.workdir / "ca", "harness", [], SUFFIX, folder)
        material = tls.TlsMaterial(str(self.workdir / "ca" / "ca.pem"), str(folder / "harness.pem"),
                                   str(folder / "harness.key"))
        tls.use(material)
        return material

    def write_inventory(self, variables: dict | None = None) -> Path:
        """An inventory for site.yml: group dns (one host) and group nodes."""
        common = {
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(self.key_file),
            "ansible_ssh_common_args": " ".join([*self.host_key_options, "-o", "IdentitiesOnly=yes"]),
            "ansible_python_interpreter": "/usr/bin/python3",
        }
        inventory = {
            "all": {
                "vars": {**common, **self.provision_vars(), **(variables or {})},
                "children": {
                    "dns": {"hosts": {h.name: {"ansible_host": h.address}
                                      for h in self.hosts.values() if h.role == "dns"}},
                    "nodes": {"hosts": {h.name: {"ansible_host": h.address}
                                        for h in self.hosts.values() if h.role == "node"}},
                },
            }
        }
        self.inventory_file.write_text(yaml.safe_dump(inventory, sort_keys=False))
        return self.inventory_file

    def run_playbook(self, *extra: str, timeout: float = 900) -> PlaybookRun:
        """Run the real site.yml over SSH; output goes to the workdir and the log."""
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_LOCAL_TEMP": str(self.workdir / "ansible-local"),
            # This testbed's own SSH control sockets: a connection kept open from another run (or from
            # before a host key changed) would skip the host key check.
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.workdir / "cp"),
        }
        cmd = ["ansible-playbook", "-i", str(self.inventory_file), str(ANSIBLE_DIR / "site.yml"), *extra]
        log("$ " + " ".join(cmd))
        started = time.monotonic()
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ANSIBLE_DIR)
        seconds = time.monotonic() - started
        output = result.stdout + result.stderr
        runs = len(list(self.workdir.glob("playbook-*.log")))
        (self.workdir / f"playbook-{runs + 1}.log").write_text(output)
        run = PlaybookRun(result.returncode, output, parse_recap(result.stdout), seconds)
        log(f"playbook finished in {seconds:.1f}s, rc={result.returncode}, recap={run.recap}")
        return run

    # ---- inside the hosts -----------------------------------------------
    def exec(self, name: str, command: str, check: bool = True, timeout: float = 60,
             input: bytes | None = None) -> str:
        args = ["exec"] + (["-i"] if input is not None else []) + [self.hosts[name].container, "sh", "-c", command]
        return docker(*args, check=check, timeout=timeout, input=input)

    def load_image(self, image: str, names: Iterable[str]) -> None:
        """`docker save` on the runner, `docker load` inside each host."""
        archive = self.workdir / (re.sub(r"[^A-Za-z0-9_.-]", "_", image) + ".tar")
        if not archive.exists():
            docker("save", "-o", str(archive), image, timeout=300)
        for name in names:
            with archive.open("rb") as handle:
                result = subprocess.run(["docker", "exec", "-i", self.hosts[name].container, "docker", "load"],
                                        stdin=handle, capture_output=True, timeout=300)
            if result.returncode != 0:
                raise RuntimeError(f"docker load on {name} failed: {result.stderr.decode(errors='replace')}")

    def containers(self, name: str, label_filter: str = "taskorg.task") -> list[dict]:
        """Task containers in a host's own dockerd: [{id, state, labels}]."""
        out = self.exec(name, f"docker ps -a --no-trunc --filter label={label_filter} "
                              "--format '{{json .}}'", timeout=30)
        rows = []
        for line in out.splitlines():
            if line.strip():
                row = json.loads(line)
                labels = dict(item.split("=", 1) for item in row.get("Labels", "").split(",") if "=" in item)
                rows.append({"id": row["ID"], "state": row["State"], "labels": labels, "name": row["Names"]})
        self.inner_ids.update(row["id"] for row in rows)
        return rows

    def dump_journals(self, lines: int = 60, since: float | None = None) -> None:
        """Print the taskorg units' recent journal of every host (after a failure): the last `lines`,
        or everything since the wall-clock time `since` (the hosts share the runner's clock)."""
        window = f"--since @{since:.3f}" if since is not None else f"-n {lines}"
        units = "-u 'taskorg-*'" if since is not None else "-u 'taskorg-*' -u dnsmasq"
        for host in self.hosts.values():
            out = self.exec(host.name, f"journalctl --no-pager {window} {units}", check=False, timeout=30)
            print(f"\n===== journal of {host} =====\n{out}", flush=True)

    # ---- failures -------------------------------------------------------
    def kill(self, name: str) -> None:
        """Power loss: SIGKILL the whole host container."""
        docker("kill", self.hosts[name].container)

    def start(self, name: str) -> None:
        docker("start", self.hosts[name].container)

    def pause(self, name: str) -> None:
        docker("pause", self.hosts[name].container)

    def unpause(self, name: str) -> None:
        docker("unpause", self.hosts[name].container)

    def disconnect(self, name: str) -> None:
        docker("network", "disconnect", "--force", self.network, self.hosts[name].container)

    def connect(self, name: str) -> None:
        host = self.hosts[name]
        docker("network", "connect", "--ip", host.address, self.network, host.container)

    def isolate(self, name: str) -> None:
        """A partition that keeps the host's address: inside the host, every packet to or from the other
        hosts is dropped (a chain of our own), so the runner can still ask the cut-off side what it does."""
        others = [h.address for h in self.hosts.values() if h.name != name]
        rules = " && ".join(f"iptables -A {CUT_CHAIN} -s {a} -j DROP && iptables -A {CUT_CHAIN} -d {a} -j DROP"
                            for a in others)
        self.exec(name, f"iptables -N {CUT_CHAIN} 2>/dev/null; iptables -F {CUT_CHAIN} && "
                        f"iptables -C INPUT -j {CUT_CHAIN} 2>/dev/null || iptables -I INPUT -j {CUT_CHAIN}; "
                        f"iptables -C OUTPUT -j {CUT_CHAIN} 2>/dev/null || iptables -I OUTPUT -j {CUT_CHAIN}; {rules}")

    def rejoin(self, name: str) -> None:
        self.exec(name, f"iptables -F {CUT_CHAIN}")

    # ---- lookups --------------------------------------------------------
    @property
    def dns_host(self) -> Host:
        return next(h for h in self.hosts.values() if h.role == "dns")

    @property
    def node_hosts(self) -> list[Host]:
        return [h for h in self.hosts.values() if h.role == "node"]

    def host_by_address(self, address: str) -> Host:
        return next(h for h in self.hosts.values() if h.address == address)

    def __enter__(self) -> "Testbed":
        return self

    def __exit__(self, *exc: object) -> None:
        if os.environ.get("TASKORG_TESTBED_KEEP"):
            log(f"TASKORG_TESTBED_KEEP set: leaving testbed {self.run_id} running ({self.workdir})")
            return
        self.teardown()

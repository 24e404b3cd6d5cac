"""Build the Debian bookworm host image the testbed boots (systemd, sshd, dockerd).

The image is made with `debootstrap` from Debian's mirror and imported with
`docker import`; no registry is involved. Its tag is a content hash of what
goes into it (suite, mirror, package list, and the recipe: the files written
into the image and the configuration steps, see `recipe()`), so an unchanged
recipe reuses the image and any change to it rebuilds it.

Two caches live under /var/cache/taskorg-testbed/:

* ``debs-<hash>.tgz``: the packages debootstrap downloaded (``--make-tarball``),
  keyed by suite and package list only. A recipe change rebuilds the image
  from it without touching the network.
* the image itself, tagged ``taskorg-testbed/host:<hash>``.

Everything the playbook installs is already in the image (dnsmasq, docker.io,
python3-venv ...), so the test hosts never need the internet: they sit on an
``--internal`` docker network.

Run ``python -m tests.testbed.image`` to build (or just print) the image tag.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = "bookworm"
VARIANT = "minbase"
MIRROR = os.environ.get("TASKORG_TESTBED_MIRROR", "http://deb.debian.org/debian")
CACHE_DIR = Path(os.environ.get("TASKORG_TESTBED_CACHE", "/var/cache/taskorg-testbed"))
REPOSITORY = "taskorg-testbed/host"

PACKAGES = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-venv",
    "python3-apt",
    "iproute2",
    "ca-certificates",
    "sudo",
    "procps",
    "docker.io",
    "dnsmasq",
    "iptables",
    "nftables",  # the taskorg firewall (a table of its own, loaded by taskorg-firewall.service)
    "netbase",
]

# Units that make no sense in a container (no consoles, no udev, no kernel
# tunables) or that would wake up during a test and touch the network.
MASKED_UNITS = [
    "getty.target",
    "console-getty.service",
    "systemd-udevd.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    "systemd-udev-trigger.service",
    "systemd-udev-settle.service",
    "systemd-modules-load.service",
    "systemd-remount-fs.service",
    "systemd-sysctl.service",
    "systemd-firstboot.service",
    "systemd-journald-audit.socket",
    "sys-kernel-config.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "sys-fs-fuse-connections.mount",
    "dev-hugepages.mount",
    "proc-sys-fs-binfmt_misc.automount",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
]

# Off in the image: the playbook decides where they run (docker on regular
# nodes, dnsmasq on the DNS node), so its first run has real work to show.
DISABLED_UNITS = ["docker.service", "docker.socket", "containerd.service", "dnsmasq.service"]

SSH_HOSTKEYS_UNIT = """\
[Unit]
Description=Generate this host's own SSH host keys (the image ships none)
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
"""

SSHD_CONFIG = """\
# testbed: key login for root only, fast logins
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
"""

JOURNALD_CONFIG = """\
[Journal]
Storage=volatile
RuntimeMaxUse=32M
"""

# overlay2, as on a real host: each host's /var/lib/docker is a volume of its own (hosts.py), on the
# machine's own filesystem rather than the container's overlay (overlay on overlay does not work).
# vfs, used before, copies a container's whole filesystem to create it: 3 containers at once took
# 1.8 s to start on a host instead of 0.76 s, and that was most of a failover's "tasks back".
DOCKER_DAEMON = {"storage-driver": "overlay2", "log-driver": "json-file"}


def log(message: str) -> None:
    print(f"[testbed image {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _digest(*parts: str) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part.encode())
        sha.update(b"\0")
    return sha.hexdigest()[:16]


def debs_key() -> str:
    return _digest(SUITE, VARIANT, MIRROR, *sorted(PACKAGES))


IMPORT_CHANGES = ['CMD ["/sbin/init"]', "ENV container=docker"]


def recipe() -> str:
    """Everything that decides the image's content: the lists, the files and the steps."""
    parts = {
        "masked": MASKED_UNITS, "disabled": DISABLED_UNITS, "ssh_unit": SSH_HOSTKEYS_UNIT, "sshd": SSHD_CONFIG,
        "journald": JOURNALD_CONFIG, "docker": DOCKER_DAEMON, "import": IMPORT_CHANGES,
        "configure": inspect.getsource(configure_rootfs),
    }
    return json.dumps(parts, sort_keys=True)


def image_tag() -> str:
    return f"{REPOSITORY}:{_digest(debs_key(), recipe())}"


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def _run(cmd: list[str], timeout: float) -> None:
    """Run a build step; its chatter goes to a log file, shown only when it fails."""
    log("$ " + " ".join(cmd))
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=CACHE_DIR) as output:
        result = subprocess.run(cmd, stdout=output, stderr=subprocess.STDOUT, timeout=timeout)
        if result.returncode != 0:
            output.seek(0)
            tail = output.read().decode(errors="replace").splitlines()[-40:]
            raise RuntimeError(f"{cmd[0]} failed ({result.returncode}):\n" + "\n".join(tail))


def _debootstrap_args() -> list[str]:
    return [f"--variant={VARIANT}", "--include=" + ",".join(PACKAGES)]


def ensure_debs_tarball() -> Path:
    """Download the packages once (``debootstrap --make-tarball``) and keep them."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tarball = CACHE_DIR / f"debs-{SUITE}-{debs_key()}.tgz"
    if tarball.exists():
        log(f"package tarball cached: {tarball}")
        return tarball
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed (apt-get install debootstrap)")
    work = Path(tempfile.mkdtemp(prefix="debs-", dir=CACHE_DIR))
    partial = tarball.with_suffix(".partial")
    started = time.monotonic()
    try:
        log(f"downloading {len(PACKAGES)} packages and their dependencies from {MIRROR}")
        _run(["debootstrap", *_debootstrap_args(), f"--make-tarball={partial}", SUITE, str(work), MIRROR],
             timeout=1800)
        partial.rename(tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        partial.unlink(missing_ok=True)
    log(f"package tarball ready in {time.monotonic() - started:.0f}s: {tarball}")
    return tarball


def _write(root: Path, relative: str, text: str, mode: int = 0o644) -> None:
    path = root / relative.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def configure_rootfs(root: Path) -> None:
    """Make the debootstrapped tree boot systemd in a container, with sshd and dockerd."""
    systemctl = ["systemctl", f"--root={root}"]
    _run([*systemctl, "mask", *MASKED_UNITS], timeout=120)
    _run([*systemctl, "disable", *DISABLED_UNITS], timeout=120)
    # Every host gets its own machine id and SSH host keys at first boot.
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    _write(root, "/etc/systemd/system/ssh-hostkeys.service", SSH_HOSTKEYS_UNIT)
    _run([*systemctl, "enable", "ssh-hostkeys.service", "ssh.service"], timeout=120)
    _write(root, "/etc/ssh/sshd_config.d/testbed.conf", SSHD_CONFIG)
    _write(root, "/etc/systemd/journald.conf.d/testbed.conf", JOURNALD_CONFIG)
    _write(root, "/etc/docker/daemon.json", json.dumps(DOCKER_DAEMON, indent=2) + "\n")
    root_ssh = root / "root/.ssh"
    root_ssh.mkdir(mode=0o700, exist_ok=True)
    # The mirror is unreachable from the hosts; keep apt quiet and recommends off
    # like a lean lab machine.
    _write(root, "/etc/apt/apt.conf.d/90testbed", 'APT::Install-Recommends "false";\n')
    # Fewer writes: no man pages or docs needed on a test host.
    for path in ("usr/share/doc", "usr/share/man", "usr/share/info"):
        shutil.rmtree(root / path, ignore_errors=True)
        (root / path).mkdir(parents=True, exist_ok=True)
    (root / "var/cache/apt/archives").mkdir(parents=True, exist_ok=True)
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()


def build_image(tag: str) -> None:
    tarball = ensure_debs_tarball()
    root = Path(tempfile.mkdtemp(prefix="rootfs-", dir=CACHE_DIR))
    try:
        started = time.monotonic()
        log(f"installing the base system into {root} (a few minutes)")
        _run(["debootstrap", *_debootstrap_args(), f"--unpack-tarball={tarball}", SUITE, str(root), MIRROR],
             timeout=1800)
        log(f"base system installed in {time.monotonic() - started:.0f}s; configuring for systemd in a container")
        configure_rootfs(root)
        log(f"importing into docker as {tag}")
        tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-cf", "-", "."],
                               stdout=subprocess.PIPE)
        try:
            subprocess.run(
                ["docker", "import", *(arg for change in IMPORT_CHANGES for arg in ("--change", change)),
                 "--change", f"LABEL taskorg.testbed.recipe={tag.rsplit(':', 1)[1]}", "-", tag],
                stdin=tar.stdout, check=True, timeout=900, stdout=subprocess.DEVNULL,
            )
        finally:
            tar.stdout.close()
            tar.wait(timeout=60)
        if tar.returncode:
            raise RuntimeError(f"tar of the root filesystem failed ({tar.returncode})")
        log(f"image {tag} built in {time.monotonic() - started:.0f}s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def remove_older_images(keep: str) -> None:
    """Drop this repository's images of earlier recipes (one in use by a container stays)."""
    tags = subprocess.run(["docker", "image", "ls", REPOSITORY, "--format", "{{.Repository}}:{{.Tag}}"],
                          capture_output=True, text=True, timeout=60).stdout.split()
    for tag in tags:
        if tag != keep:
            if subprocess.run(["docker", "rmi", tag], capture_output=True, timeout=120).returncode == 0:
                log(f"removed the image of an older recipe: {tag}")


def ensure_image() -> str:
    """The tag of the host image, building it when this recipe has none yet."""
    tag = image_tag()
    if image_exists(tag):
        log(f"reusing {tag}")
        return tag
    started = time.monotonic()
    build_image(tag)
    remove_older_images(keep=tag)
    log(f"total image build time: {time.monotonic() - started:.0f}s")
    return tag


if __name__ == "__main__":
    print(ensure_image())
    sys.exit(0)

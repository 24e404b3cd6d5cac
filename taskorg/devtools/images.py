"""The task test image, built locally because no registry can be reached.

`taskorg/busybox` is a tiny rootfs: Debian's static busybox binary, a symlink
for every applet it knows, /tmp, and /etc/passwd and /etc/group with root and
nobody. It is imported with the docker SDK (the same as `docker import`) and
cached by content: the tag `taskorg/busybox:<hash>` names the inputs (the
binary and this builder's recipe version), so a node builds it once and
rebuilds only when busybox or the recipe changes.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import docker
from docker.errors import ImageNotFound

from taskorg.logs import get_logger

log = get_logger("images")

REPOSITORY = "taskorg/busybox"
LATEST = f"{REPOSITORY}:latest"
BUSYBOX = Path("/bin/busybox")
# Bump when the rootfs layout below changes: it is part of the content hash.
RECIPE_VERSION = "1"
_MTIME = 946684800  # fixed timestamps: the same inputs give the same tar bytes

_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = "root:x:0:\nnogroup:x:65534:\n"
_DIRS = {"bin": 0o755, "sbin": 0o755, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755,
         "etc": 0o755, "root": 0o700, "tmp": 0o1777, "var": 0o755, "var/tmp": 0o1777,
         "home": 0o755, "proc": 0o555, "sys": 0o555, "dev": 0o755}
_CHANGES = ['ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'CMD ["sh"]']


class ImageBuildError(RuntimeError):
    """The image cannot be built on this machine (say what to install)."""


def ensure_busybox_image(docker_client: docker.DockerClient | None = None) -> str:
    """Build `taskorg/busybox` unless the current content hash is already there.

    Returns `taskorg/busybox:latest`, which then points at the current build.
    """
    binary = _read_busybox()
    digest = content_hash(binary)
    versioned = f"{REPOSITORY}:{digest}"
    client = docker_client or docker.from_env()
    try:
        with _build_lock():
            try:
                image = client.images.get(versioned)
                log.debug("image up to date", extra={"image": versioned})
            except ImageNotFound:
                image = _import(client, binary, digest)
            if LATEST not in image.tags:
                image.tag(REPOSITORY, "latest")
    finally:
        if docker_client is None:
            client.close()
    return LATEST


def content_hash(binary: bytes) -> str:
    """A short hash of everything the image is made from."""
    sha = hashlib.sha256()
    sha.update(f"taskorg-busybox-recipe:{RECIPE_VERSION}\n".encode())
    sha.update(binary)
    return sha.hexdigest()[:16]


def applet_paths(binary_path: Path = BUSYBOX) -> list[str]:
    """Where each applet lives (`usr/bin/wget`), from busybox itself.

    `--list-full` gives the canonical paths; older builds only have `--list`,
    whose applets then all go to bin/.
    """
    for flag, prefix in (("--list-full", ""), ("--list", "bin/")):
        result = subprocess.run([str(binary_path), flag], capture_output=True, text=True, check=False)
        names = [line.strip() for line in result.stdout.splitlines() if line.strip()]
        if result.returncode == 0 and names:
            return sorted({prefix + name.lstrip("/") for name in names})
    raise ImageBuildError(f"{binary_path} does not list its applets (is it busybox?)")


def build_rootfs_tar(binary: bytes, applets: list[str]) -> bytes:
    """The rootfs as an uncompressed tar with fixed owners and timestamps."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, mode in _DIRS.items():
            tar.addfile(_entry(name, tarfile.DIRTYPE, mode))
        tar.addfile(_entry("bin/busybox", tarfile.REGTYPE, 0o755, len(binary)), io.BytesIO(binary))
        for path in applets:
            if path in ("bin/busybox",) or path.split("/")[0] not in ("bin", "sbin", "usr"):
                continue
            link = _entry(path, tarfile.SYMTYPE, 0o777)
            link.linkname = "/bin/busybox"
            tar.addfile(link)
        for name, text in (("etc/passwd", _PASSWD), ("etc/group", _GROUP)):
            data = text.encode()
            tar.addfile(_entry(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
    return buffer.getvalue()


def _entry(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = _MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _read_busybox() -> bytes:
    try:
        return BUSYBOX.read_bytes()
    except FileNotFoundError:
        raise ImageBuildError(
            f"{BUSYBOX} is missing: install Debian's static busybox (`apt-get install -y busybox-static`)"
        ) from None


def _import(client: docker.DockerClient, binary: bytes, digest: str) -> Any:
    applets = applet_paths()
    data = build_rootfs_tar(binary, applets)
    log.info("building image", extra={"image": f"{REPOSITORY}:{digest}", "applets": len(applets)})
    client.api.import_image_from_data(data, repository=REPOSITORY, tag=digest, changes=_CHANGES)
    return client.images.get(f"{REPOSITORY}:{digest}")


class _build_lock:
    """One build at a time on this machine (several services may start at once)."""

    def __enter__(self) -> None:
        path = os.path.join(tempfile.gettempdir(), "taskorg-image-build.lock")
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


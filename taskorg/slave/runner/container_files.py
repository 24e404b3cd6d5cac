"""Secret and config files on the node, for one container: written before it is created,
bind-mounted read-only (create_args.file_mounts says where), removed with it.

The directory is 0700 (no other user of the node reads a secret); each file
has the spec's mode (Docker's 0444 when none), so a task running as any user
reads it inside the container, and the spec's uid/gid when given.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from taskorg.slave.runner.create_args import Site, container_files_dir, file_mounts
from taskorg.spec import TaskSpec

DEFAULT_MODE = 0o444


def write_container_files(site: Site, name: str, spec: TaskSpec) -> None:
    """Write every secret and config of `spec` for container `name` (afresh, whole)."""
    files = file_mounts(site, name, spec)
    if not files:
        return
    folder = container_files_dir(site, name)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    for path, item in files:
        path.unlink(missing_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(item.content)
        if _number(item.uid) >= 0 or _number(item.gid) >= 0:
            os.chown(path, _number(item.uid), _number(item.gid))
        path.chmod(DEFAULT_MODE if item.mode is None else item.mode)


def _number(owner: str | None) -> int:
    """A numeric uid or gid; -1 (leave as is) for none or a name, which only the image knows."""
    return int(owner) if owner and owner.isdigit() else -1


def remove_container_files(site: Site, name: str) -> None:
    """Remove what write_container_files wrote for `name` (nothing there is fine)."""
    shutil.rmtree(container_files_dir(site, name), ignore_errors=True)


def sweep_container_files(site: Site, keep: set[str]) -> list[str]:
    """Remove the files of every container not in `keep` (those removed while the slave was down,
    e.g. by `cluster down`); the names removed. Only at start-up: a start writes files first."""
    folder = Path(site.files_dir)
    if not folder.is_dir():
        return []
    gone = sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and entry.name not in keep)
    for name in gone:
        remove_container_files(site, name)
    return gone

"""Private files: created 0600 in 0700 directories, written whole (temp, fsync, rename).

A key or token file half-written by a crash, or readable by another local
user for a moment, is the failure these helpers exist to rule out.
"""

from __future__ import annotations

import grp
import os
import stat
from pathlib import Path

SERVICE_GROUP = "taskorg"  # the provisioned services' user and group (docs/security.md)


def private_dir(path: str | os.PathLike[str], narrow: bool = False) -> Path:
    """Make `path` (and missing parents) with mode 0700; `narrow` makes an existing one 0700 too
    (not by default: a shared folder such as a state directory may need to stay traversable)."""
    directory = Path(path)
    existed = directory.is_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if narrow or not existed:
        os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
    return directory


def write_private(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> Path:
    """Replace `path` with `data` atomically: a reader sees the old file or the new, never a part."""
    target = Path(path)
    if not target.parent.is_dir():
        private_dir(target.parent)
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # an old temp file may have had another mode
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself must survive a power loss
    finally:
        os.close(dir_fd)
    return target


def shared_with_service_only(path: str | os.PathLike[str]) -> str | None:
    """Why `path` is too open for a secret, or None: 0600 (any owner), or 0640 owned by root whose group
    is this process's own group (a service running as `taskorg` reads root:taskorg 0640) or, for root,
    the services' group `taskorg`. Anything else other users could read (or write) is refused."""
    info = os.stat(path)
    mode = stat.S_IMODE(info.st_mode)
    if not mode & (stat.S_IRWXG | stat.S_IRWXO):
        return None
    if mode & (stat.S_IRWXO | stat.S_IWGRP | stat.S_IXGRP):
        return f"{path}: the file must have mode 0600 (or 0640, root:{SERVICE_GROUP}), it has {mode:04o}"
    if info.st_uid != 0:
        return (f"{path}: a group-readable file (mode {mode:04o}) must be owned by root, "
                f"it is owned by uid {info.st_uid}; make it 0600 or root:{SERVICE_GROUP} 0640")
    if info.st_gid == os.getegid() or (os.geteuid() == 0 and _group_name(info.st_gid) == SERVICE_GROUP):
        return None
    return (f"{path}: mode {mode:04o} lets group {_group_name(info.st_gid) or info.st_gid} read it, which is not "
            f"this service's group; make it 0600 or root:{SERVICE_GROUP} 0640")


def _group_name(gid: int) -> str | None:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None

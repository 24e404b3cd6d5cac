"""The local cluster's processes, by pid: spawning a service, telling whether a pid is still
ours (pids get reused), signalling and reaping them, and each machine's dnsmasq (which writes
its own pid file). Apart from `LocalCluster` so that what may be signalled is decided in one
place: only a process whose command line names the cluster's directory."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterable

# What the systemd units set too (systemd/taskorg-*.service). glibc gives every thread that
# allocates an arena of its own, up to 8 per core, and a service runs 12 to 36 threads: two
# arenas keep each process's heap smaller (docs/bench.md, Footprint). A value in `env` wins.
SERVICE_ENV = {"MALLOC_ARENA_MAX": "2"}


def spawn(workdir: Path, key: str, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> int:
    """Start `argv` in a session of its own, its output appended to logs/<key>.log; its pid."""
    log = open(workdir / "logs" / f"{key.replace('/', '-')}.log", "ab")
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                               env={**SERVICE_ENV, **env}, cwd=cwd)
    log.close()
    return process.pid


def is_ours(pid: int, workdir: Path) -> bool:
    """The pid is still a taskorg process of the cluster in `workdir` (pids get reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return "taskorg" in cmdline and str(workdir) in cmdline


def signal_pids(pids: Iterable[int | None], workdir: Path, sig: int) -> None:
    for pid in pids:
        if pid and is_ours(pid, workdir):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def reap(pids: Iterable[int | None], workdir: Path, timeout: float = 5.0) -> None:
    """Wait for the processes to end (one deadline for all); SIGKILL those that outlive it."""
    deadline = time.monotonic() + timeout
    for pid in list(pids):
        while pid and is_ours(pid, workdir) and time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                pass
            time.sleep(0.02)
        if pid and is_ours(pid, workdir):
            os.kill(pid, signal.SIGKILL)


def signal_dnsmasq(state_dir: Path, workdir: Path, sig: int) -> None:
    """Signal the dnsmasq of the machine whose state directory this is (it runs in a session of its own)."""
    try:
        pid = int((state_dir / "dns" / "dnsmasq.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        return
    if "dnsmasq" in cmdline and str(workdir) in cmdline:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

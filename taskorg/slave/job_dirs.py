"""Job directories on the shared storage, removed once the master has pruned their job.

Each job gets `<shared_dir>/<job id>` (mounted at /shared in its containers)
on first use. The master prunes finished jobs past their retention and, for a
minute after, names them in its answer to every report; each slave then
removes the directories it can see. On NFS the first slave removes it and the
others find nothing to do. Files a task wrote as root cannot be removed by the
slave's own user: such a directory is left, and said once.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterable

from taskorg.logs import get_logger
from taskorg.slave.runner.create_args import is_job_dir_name

log = get_logger("slave.job_dirs")


class JobDirs:
    def __init__(self, shared_dir: str) -> None:
        self.root = Path(shared_dir) if shared_dir else None
        self.done: set[str] = set()  # ids already handled (removed, absent or left): not looked at again

    def remove(self, jobs: Iterable[str]) -> list[str]:
        """Remove the directories of these pruned jobs; the ids whose directory went."""
        if self.root is None:
            return []
        if len(self.done) > 100_000:
            self.done.clear()  # bounded: an id told again is only looked at once more
        removed = []
        for job in jobs:
            if job in self.done or not is_job_dir_name(job):
                continue
            self.done.add(job)
            path = self.root / job
            if path.is_symlink() or not path.is_dir():
                continue
            shutil.rmtree(path, ignore_errors=True)
            if path.exists():
                log.warning("a pruned job's directory could not be removed (files of another user)",
                            extra={"path": str(path)})
            else:
                removed.append(job)
        if removed:
            log.info("removed pruned jobs' directories", extra={"count": len(removed)})
        return removed

"""Pruned jobs' directories on the shared storage go (issue 15: job directories removed when pruned)."""

from __future__ import annotations

import os
from pathlib import Path

from taskorg.master.jobs import PRUNED_TOLD_FOR, JobActions
from taskorg.protocol import ReportAnswer, convert
from taskorg.slave.job_dirs import JobDirs


def test_a_pruned_jobs_directory_is_removed_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "j-aaaa1111" / "sub").mkdir(parents=True)
    (tmp_path / "j-aaaa1111" / "sub" / "out.txt").write_text("result")
    (tmp_path / "j-bbbb2222").mkdir()
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    os.symlink(outside, tmp_path / "j-link0000")
    dirs = JobDirs(str(tmp_path))
    assert dirs.remove(["j-aaaa1111", "j-missing0", "../etc", ".", "j-link0000"]) == ["j-aaaa1111"]
    assert not (tmp_path / "j-aaaa1111").exists()
    assert (tmp_path / "j-bbbb2222").is_dir()  # not pruned: kept
    assert outside.is_dir()  # a link is never followed
    assert dirs.remove(["j-aaaa1111"]) == []  # told again: nothing to do


def test_no_shared_storage_means_nothing_to_remove() -> None:
    assert JobDirs("").remove(["j-aaaa1111"]) == []


def test_an_older_master_answer_without_pruned_jobs_still_decodes() -> None:
    assert convert({"epoch": 3, "stop": []}, ReportAnswer, "report answer").removed_jobs == []


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Engine:
    def __init__(self) -> None:
        self.clock = _Clock()


def test_the_master_names_pruned_jobs_for_a_minute() -> None:
    engine = _Engine()
    actions = JobActions(engine)  # type: ignore[arg-type]
    actions.pruned.extend([(1000.0, "j-aaaa1111"), (1000.0, "j-bbbb2222")])
    assert actions.recently_pruned() == ["j-aaaa1111", "j-bbbb2222"]
    engine.clock.now += PRUNED_TOLD_FOR + 1
    assert actions.recently_pruned() == []

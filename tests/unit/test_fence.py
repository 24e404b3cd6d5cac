"""EpochFence: the highest epoch seen, persisted so a restart still fences old masters."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskorg.slave.fence import EpochFence, Fenced


def test_a_new_fence_starts_at_zero_and_rises(tmp_path: Path) -> None:
    fence = EpochFence(tmp_path / "slave" / "epoch")
    assert fence.highest == 0
    assert fence.check(0) == 0
    assert fence.check(3) == 3
    assert fence.check(3) == 3
    assert fence.highest == 3


def test_an_older_epoch_is_fenced(tmp_path: Path) -> None:
    fence = EpochFence(tmp_path / "epoch")
    fence.check(4)
    with pytest.raises(Fenced) as info:
        fence.check(3)
    assert info.value.highest == 4 and info.value.epoch == 3
    assert str(info.value) == "fenced: command from epoch 3, this slave has seen epoch 4"
    assert fence.highest == 4


def test_the_highest_epoch_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "epoch"
    EpochFence(path).check(7)
    restarted = EpochFence(path)
    assert restarted.highest == 7
    with pytest.raises(Fenced):
        restarted.check(6)
    assert path.read_text().strip() == "7"
    assert [p.name for p in tmp_path.iterdir()] == ["epoch"]  # no temp file left behind


def test_a_fenced_command_does_not_lower_the_stored_epoch(tmp_path: Path) -> None:
    path = tmp_path / "epoch"
    fence = EpochFence(path)
    fence.check(5)
    with pytest.raises(Fenced):
        fence.check(2)
    assert EpochFence(path).highest == 5


def test_a_corrupt_file_is_an_error_not_epoch_zero(tmp_path: Path) -> None:
    path = tmp_path / "epoch"
    path.write_text("garbage")
    with pytest.raises(ValueError, match="not an epoch number"):
        EpochFence(path)


@pytest.mark.parametrize("bad", [-1, "3", 2.5, None, True])
def test_epochs_must_be_non_negative_integers(tmp_path: Path, bad: object) -> None:
    fence = EpochFence(tmp_path / "epoch")
    with pytest.raises(ValueError):
        fence.check(bad)  # type: ignore[arg-type]
    assert fence.highest == 0

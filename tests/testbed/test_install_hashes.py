"""install-taskorg.sh installs only what requirements.txt pins with its hashes.

The testbed's wheelhouse (what an air-gapped lab makes) installs on real hosts
in test_testbed.py and test_scripts.py; here, on this machine, the same script
refuses the two wheelhouses a host must never accept: one whose requirements.txt
does not vouch for the wheel built from source (pysyncobj), and one with a wheel
whose bytes changed after its hashes were taken. Nothing is installed either time.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .hosts import REPO_ROOT
from .wheelhouse import build_wheelhouse

pytestmark = [pytest.mark.testbed, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheelhouse(tmp_path_factory.mktemp("wheelhouse") / "wheels")


def install(wheelhouse: Path, venv: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(REPO_ROOT / "provisioning/install-taskorg.sh"), "--venv", str(venv),
                           "--wheelhouse", str(wheelhouse), "--offline"], capture_output=True, text=True, timeout=600)


def refused(result: subprocess.CompletedProcess, venv: Path) -> str:
    assert result.returncode != 0, result.stdout
    assert not (venv / "bin/taskorg").exists() and not (venv / ".taskorg-install-stamp").exists()
    return result.stderr


def test_a_wheel_built_from_source_without_its_hash_is_refused(wheelhouse: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(wheelhouse, tmp_path / "wheels"))
    shutil.copy2(REPO_ROOT / "requirements.txt", copy / "requirements.txt")  # the index's hashes only
    stderr = refused(install(copy, tmp_path / "venv"), tmp_path / "venv")
    assert "DO NOT MATCH THE HASHES" in stderr and "pysyncobj" in stderr, stderr[-3000:]


def test_a_wheel_changed_after_hashing_is_refused(wheelhouse: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(wheelhouse, tmp_path / "wheels"))
    target = next(copy.glob("idna-*.whl"))
    target.write_bytes(target.read_bytes() + b"\0")
    stderr = refused(install(copy, tmp_path / "venv"), tmp_path / "venv")
    assert "DO NOT MATCH THE HASHES" in stderr and target.name.split("-")[0] in stderr, stderr[-3000:]

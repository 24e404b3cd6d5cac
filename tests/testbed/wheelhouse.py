"""The offline wheelhouse the testbed hosts install taskorg from (they have no index).

It is what an air-gapped lab makes (docs/provisioning.md): the dependency
wheels of requirements.txt, fetched and built with every download checked
against its hashes, cached under /var/cache/taskorg-testbed/ by the hash of
requirements.txt; requirements.txt beside them, vouching also for the wheels
built here from source (provisioning/hash-built-wheels.py), so the hosts'
`pip install --require-hashes` accepts them; and a taskorg wheel built fresh
from the work tree for every run (with a fixed SOURCE_DATE_EPOCH, so the same
code gives the same bytes and a second playbook run sees nothing new).
Builds run without pip's build isolation, on this virtualenv's setuptools
(pinned with its hashes in requirements-dev.txt), so nothing unhashed is fetched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .image import CACHE_DIR, log

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, timeout: float = 600) -> None:
    env = {**os.environ, "SOURCE_DATE_EPOCH": "315532800", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def dependency_wheels() -> Path:
    """Wheels of the pinned requirements, built once per requirements.txt."""
    requirements = REPO_ROOT / "requirements.txt"
    key = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    target = CACHE_DIR / f"wheels-py{sys.version_info[0]}{sys.version_info[1]}-{key}"
    if target.is_dir():
        return target
    started = time.monotonic()
    partial = target.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    _run("-m", "pip", "wheel", "--quiet", "--require-hashes", "--no-build-isolation", "-r", str(requirements),
         "--wheel-dir", str(partial))
    partial.rename(target)
    log(f"dependency wheels built in {time.monotonic() - started:.0f}s: {target}")
    return target


def build_wheelhouse(dest: Path) -> Path:
    """DEST = dependency wheels + requirements.txt (vouching for them) + a taskorg wheel of the work tree."""
    dest.mkdir(parents=True, exist_ok=True)
    for wheel in dependency_wheels().glob("*.whl"):
        shutil.copy2(wheel, dest / wheel.name)
    shutil.copy2(REPO_ROOT / "requirements.txt", dest / "requirements.txt")
    _run(str(REPO_ROOT / "provisioning" / "hash-built-wheels.py"), str(dest))
    _run("-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(dest),
         str(REPO_ROOT))
    return dest

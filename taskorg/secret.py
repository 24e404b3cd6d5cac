"""The cluster secret: every service request carries it.

It is generated once (provisioning or `taskorg secret`), stored with mode
0600, and read from `TASKORG_SECRET` or the secret file. It is never logged.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from taskorg.config import Config, ConfigError


def generate_secret() -> str:
    return secrets.token_urlsafe(32)


def write_secret(path: str | os.PathLike[str], secret: str | None = None) -> str:
    """Write a secret file with mode 0600 (created that way, never widened)."""
    secret = secret or generate_secret()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    os.replace(tmp, target)
    return secret


def read_secret(config: Config, environ: dict[str, str] | None = None) -> str:
    """The secret from the environment, else from the file (which must be 0600)."""
    environ = dict(os.environ) if environ is None else environ
    if environ.get("TASKORG_SECRET"):
        return environ["TASKORG_SECRET"].strip()
    path = Path(config.secret_file)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(
            f"no cluster secret: {path} does not exist and TASKORG_SECRET is not set "
            "(create one with `taskorg secret --write PATH`)"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path}: the secret file must have mode 0600, it has {stat.S_IMODE(mode):04o}")
    secret = path.read_text().strip()
    if len(secret) < 16:
        raise ConfigError(f"{path}: the secret is too short (at least 16 characters)")
    return secret

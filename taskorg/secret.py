"""The cluster secret: every service request carries it.

It is generated once (provisioning or `taskorg secret`), stored with mode
0600 (or root:taskorg 0640 on provisioned hosts, where the services run as the
`taskorg` user), and read from `TASKORG_SECRET` or the secret file. It is never logged.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from taskorg.config import Config, ConfigError
from taskorg.security.files import shared_with_service_only


def generate_secret() -> str:
    return secrets.token_urlsafe(32)


def write_secret(path: str | os.PathLike[str], secret: str | None = None) -> str:
    """Write a secret file with mode 0600 (created that way, never widened)."""
    from taskorg.security.files import write_private

    secret = secret or generate_secret()
    write_private(path, (secret + "\n").encode())
    return secret


def read_secret(config: Config, environ: dict[str, str] | None = None) -> str:
    """The secret from the environment, else from the file (which must be 0600)."""
    environ = dict(os.environ) if environ is None else environ
    if environ.get("TASKORG_SECRET"):
        secret = environ["TASKORG_SECRET"].strip()
        if len(secret) < 16:
            # A whitespace-only secret once disabled authentication altogether.
            raise ConfigError("TASKORG_SECRET is empty, only whitespace or too short (at least 16 characters)")
        return secret
    path = Path(config.secret_file)
    try:
        too_open = shared_with_service_only(path)
    except FileNotFoundError:
        raise ConfigError(
            f"no cluster secret: {path} does not exist and TASKORG_SECRET is not set "
            "(create one with `taskorg secret --write PATH`)"
        ) from None
    if too_open:
        raise ConfigError(f"the secret file is readable by others: {too_open}")
    secret = path.read_text().strip()
    if len(secret) < 16:
        raise ConfigError(f"{path}: the secret is empty, only whitespace or too short (at least 16 characters)")
    return secret


def read_credential(config: Config, environ: dict[str, str] | None = None) -> str:
    """What a client sends as its Bearer token: $TASKORG_TOKEN, the `token_file` setting, else the secret."""
    environ = dict(os.environ) if environ is None else environ
    if environ.get("TASKORG_TOKEN", "").strip():
        return environ["TASKORG_TOKEN"].strip()
    if config.token_file:
        try:
            token = Path(config.token_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"setting 'token_file': cannot read {config.token_file}: {exc.strerror}") from None
        if not token:
            raise ConfigError(f"setting 'token_file': {config.token_file} is empty")
        return token
    return read_secret(config, environ)

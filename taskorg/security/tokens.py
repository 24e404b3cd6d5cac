"""User tokens for people and scripts: a role each, stored only as a SHA-256 hash.

The store is one JSON file (mode 0600) that every master, DNS and webview
process of a node reads; provisioning distributes it like the secret, and
`taskorg token create|list|revoke` edits it. Services re-read it when it
changes, so a revoked token stops working within one request. A token is 32
random bytes: a plain SHA-256 is enough (no password stretching needed for a
secret nobody chose), and the comparison is constant-time over every entry.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from taskorg.security.files import private_dir, write_private

ROLES = ("read", "submit", "admin")  # each includes the ones before it
TOKEN_PREFIX = "tko_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class TokenError(ValueError):
    """A token request is malformed, or the store cannot be read."""


@dataclass(frozen=True)
class Token:
    id: str
    name: str
    role: str
    sha256: str
    created: float


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def role_includes(role: str, needed: str) -> bool:
    """`admin` can do what `submit` can, which can do what `read` can."""
    return role in ROLES and needed in ROLES and ROLES.index(role) >= ROLES.index(needed)


class TokenStore:
    """The token file; reads are cached until the file changes (mtime, size, inode)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._tokens: list[Token] = []

    # ---- reading ---------------------------------------------------------------------------
    def tokens(self) -> list[Token]:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return []
        stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
        with self._lock:
            if stamp != self._stamp:
                self._tokens = self._read()
                self._stamp = stamp
            return list(self._tokens)

    def _read(self) -> list[Token]:
        try:
            data = json.loads(self.path.read_text())
            return [Token(**entry) for entry in data["tokens"]]
        except FileNotFoundError:
            return []
        except (ValueError, KeyError, TypeError) as exc:
            raise TokenError(f"{self.path}: not a taskorg token file: {exc}") from None

    def check(self, given: str) -> Token | None:
        """The token whose hash matches `given`, or None; every entry is compared (no early exit)."""
        if not given.startswith(TOKEN_PREFIX):
            return None
        digest = hash_token(given)
        found = None
        for token in self.tokens():
            if hmac.compare_digest(token.sha256, digest):
                found = token
        return found

    # ---- changing (the CLI) ---------------------------------------------------------------------
    @contextmanager
    def _editing(self) -> Iterator[list[Token]]:
        private_dir(self.path.parent)
        with open(self.path.with_name(f".{self.path.name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            tokens = self._read()
            yield tokens
            body = json.dumps({"tokens": [asdict(t) for t in tokens]}, indent=1).encode()
            write_private(self.path, body)

    def create(self, name: str, role: str) -> tuple[Token, str]:
        """A new token; the clear text is returned once and never stored."""
        if role not in ROLES:
            raise TokenError(f"role {role!r}: expected one of {', '.join(ROLES)}")
        if not _NAME.match(name):
            raise TokenError(f"token name {name!r}: 1-64 letters, digits, '_', '.', '@' or '-'")
        clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._editing() as tokens:
            if any(t.name == name for t in tokens):
                raise TokenError(f"a token named {name!r} exists already (revoke it first)")
            token = Token(id=f"tk-{secrets.token_hex(4)}", name=name, role=role,
                          sha256=hash_token(clear), created=round(time.time(), 3))
            tokens.append(token)
        return token, clear

    def revoke(self, which: str) -> Token:
        """Remove the token with this id or name."""
        with self._editing() as tokens:
            matches = [t for t in tokens if which in (t.id, t.name)]
            if not matches:
                raise TokenError(f"no token with id or name {which!r} in {self.path}")
            tokens.remove(matches[0])
        return matches[0]

    def listing(self) -> list[dict[str, Any]]:
        return [{"id": t.id, "name": t.name, "role": t.role, "created": t.created} for t in self._read()]

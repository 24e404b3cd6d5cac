"""Byte sizes as people write them: ``64M``, ``64Mi``, ``1G``, ``512k``.

K, M, G and T are powers of 1024 whether or not an ``i`` follows (as in
Docker's ``--memory``), letters are case-insensitive and a trailing ``B`` is
allowed. Shared by the spec (memory limits) and anyone printing sizes.
"""

from __future__ import annotations

import re
from fractions import Fraction

from .errors import describe

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?$", re.IGNORECASE)
SIZE_HINT = "must be a size like 64M or 1Gi"


def parse_size(value: int | str) -> int:
    """Bytes in `value`: an int of bytes or a string like "64M". ValueError if neither.

    Fractions round down to a whole byte ("1.5K" is 1536).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{SIZE_HINT}, got {describe(value)}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"{SIZE_HINT}, got {describe(value)}")
    match = _SIZE.match(value.strip())
    if not match:
        raise ValueError(f"{SIZE_HINT}, got {describe(value)}")
    unit = (match.group(2) or "")[:1].lower()
    return int(Fraction(match.group(1)) * _UNITS[unit])


def format_size(size: int) -> str:
    """The shortest exact spelling: 67108864 -> "64Mi", 1000 -> "1000"."""
    for letter in "TGMK":
        unit = _UNITS[letter.lower()]
        if size and size % unit == 0:
            return f"{size // unit}{letter}i"
    return str(size)

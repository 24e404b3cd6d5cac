"""Durations as compose writes them: ``30s``, ``1m30s``, ``1h``, ``500ms``, or a number of seconds.

The canonical form is seconds as a float, so every consumer (placement,
the slave's Docker calls, rolling updates) reads one unit.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .errors import describe

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:h|ms|m|s|us|µs|ns))+$")
DURATION_HINT = "must be a duration like 10s, 1m30s or 500ms"
MAX_SECONDS = 366 * 24 * 3600.0


def parse_duration(value: Any) -> float:
    """Seconds in `value` (a number of seconds or text like "1m30s"). ValueError if neither."""
    if isinstance(value, bool):
        raise ValueError(f"{DURATION_HINT}, got {describe(value)}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and len(value) <= 64 and _WHOLE.match(value.strip()):
        seconds = sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(value.strip()))
    else:
        raise ValueError(f"{DURATION_HINT}, got {describe(value)}")
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_SECONDS:
        raise ValueError(f"must be from 0s to 366 days, got {describe(value)}")
    return seconds


def format_duration(seconds: float) -> str:
    """10.0 -> "10s", 90.0 -> "1m30s", 0.5 -> "500ms": what a user would write."""
    if seconds and seconds < 1:
        return f"{round(seconds * 1000, 3):g}ms"
    whole, text = int(seconds), ""
    for unit, size in (("h", 3600), ("m", 60)):
        if whole >= size:
            text += f"{whole // size}{unit}"
            whole %= size
    rest = seconds - int(seconds) + whole
    return text + (f"{rest:g}s" if rest or not text else "")

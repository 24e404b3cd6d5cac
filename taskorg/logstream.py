"""Log windows and timestamped log lines: the pure part of `taskorg logs -f`.

A follow is a series of bounded streams (a stream ends when the master
fails over, the container stops, or the server's stream duration ends).
Each line carries Docker's timestamp (RFC 3339, nanoseconds, UTC, fixed
width, so the text orders like the time); the next stream starts from the
last timestamp seen, inclusive, and `LogCursor` drops what was already
shown: no line twice, none lost.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from datetime import datetime, timezone
from typing import Mapping

from taskorg.spec.durations import parse_duration

MAX_TAIL = 1_000_000
MAX_STREAM_SECONDS = 60.0
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z) ?")


class LogQueryError(ValueError):
    """A log request argument that makes no sense; the text names it."""


@dataclasses.dataclass(frozen=True)
class LogQuery:
    """Which output to send: the last `tail` lines (None: all), from `since` (Unix time, inclusive) on,
    with timestamps or not, followed for at most `duration` seconds or not."""

    tail: int | None = 200
    since: float | None = None
    timestamps: bool = False
    follow: bool = False
    duration: float = 30.0

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> "LogQuery":
        tail_text = args.get("tail", "200")
        if tail_text == "all":
            tail = None
        elif tail_text.isascii() and tail_text.isdigit() and int(tail_text) <= MAX_TAIL:
            tail = int(tail_text)
        else:
            raise LogQueryError(f"tail: expected a number of lines (0 to {MAX_TAIL}) or 'all', got {tail_text!r:.40}")
        since = None
        if args.get("since"):
            since = _number(args["since"], "since", "a Unix time in seconds")
            if since < 0:
                raise LogQueryError(f"since: expected a Unix time in seconds, got {args['since']!r:.40}")
        duration = _number(args.get("duration", "30"), "duration", "seconds")
        if not 0 < duration <= MAX_STREAM_SECONDS:
            raise LogQueryError(f"duration: expected seconds from 0 to {MAX_STREAM_SECONDS:g}, got {duration:g}")
        return cls(tail, since, _flag(args, "timestamps"), _flag(args, "follow"), duration)

    def params(self) -> dict[str, str]:
        """The query string that `from_args` reads back."""
        params = {"tail": "all" if self.tail is None else str(self.tail),
                  "timestamps": "1" if self.timestamps else "0", "follow": "1" if self.follow else "0",
                  "duration": f"{self.duration:g}"}
        if self.since is not None:
            params["since"] = f"{self.since:.9f}"
        return params


def _number(text: str, name: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LogQueryError(f"{name}: expected {what}, got {text!r:.40}") from None
    if not math.isfinite(value):
        raise LogQueryError(f"{name}: expected {what}, got {text!r:.40}")
    return value


def _flag(args: Mapping[str, str], name: str) -> bool:
    text = args.get(name, "0")
    if text not in ("0", "1", "true", "false"):
        raise LogQueryError(f"{name}: expected 1 or 0, got {text!r:.40}")
    return text in ("1", "true")


def parse_since(text: str, now: float | None = None) -> float:
    """A user's `--since`: a duration back from now (10m, 1h30m), a Unix time, or an RFC 3339 time."""
    now = time.time() if now is None else now
    text = text.strip()
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise LogQueryError(f"--since: expected a duration back from now (10m, 1h30m), a Unix time or an "
                            f"RFC 3339 time (2026-12-01T10:00:00Z), got {text!r:.60}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def stamp_seconds(stamp: str) -> float:
    """Docker's RFC 3339 nanosecond timestamp as Unix seconds (to the microsecond, rounded down)."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    base = datetime.fromisoformat(whole).replace(tzinfo=timezone.utc).timestamp()
    return base + int((fraction + "000000")[:6]) / 1e6


def split_stamp(line: str) -> tuple[str, str]:
    """(timestamp, the rest) of one line Docker wrote with timestamps; ("", line) without one."""
    found = _STAMP.match(line)
    if not found:
        return "", line
    return found.group(1), line[found.end():]


def strip_stamps(text: str) -> tuple[str, str]:
    """Text Docker wrote with timestamps, without them, and the last line's timestamp ("" if none)."""
    lines, last = [], ""
    for line in text.splitlines():
        stamp, rest = split_stamp(line)
        last = stamp or last
        lines.append(rest)
    return "".join(f"{line}\n" for line in lines), last


def _fixed(stamp: str) -> str:
    """The stamp with nine fraction digits, so that text order is time order."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return f"{whole}.{(fraction + '000000000')[:9]}Z"


def newer(line: str, after: str) -> bool:
    """Whether a timestamped line comes after the stamp `after` ("" : every line does)."""
    stamp = split_stamp(line)[0]
    return not after or not stamp or _fixed(stamp) > _fixed(after)


class LogCursor:
    """Where a follow stands: the last timestamp shown and the lines shown at exactly that time.

    `admit` says whether a line is new. The next stream starts at `since()` (inclusive), so lines
    written in the same nanosecond as the last shown are not lost; after `resume()` the copies of
    those already shown are dropped once each (a line printed twice on purpose still shows twice).
    """

    def __init__(self) -> None:
        self.last = ""
        self._shown_at_last: list[str] = []
        self._replay: list[str] = []

    def admit(self, line: str) -> bool:
        stamp, text = split_stamp(line)
        if not stamp:
            return True  # nothing to order it by: shown as it comes
        stamp = _fixed(stamp)
        if stamp < self.last:
            return False
        if stamp > self.last:
            self.last, self._shown_at_last, self._replay = stamp, [], []
        elif text in self._replay:
            self._replay.remove(text)
            return False
        self._shown_at_last.append(text)
        return True

    def resume(self) -> None:
        """A new stream starts: it sends the lines at the last time again."""
        self._replay = list(self._shown_at_last)

    def since(self) -> float | None:
        return stamp_seconds(self.last) if self.last else None

"""`taskorg logs -f`: a task instance's output as it is written, across failovers and restarts.

We chose the client loop over one endless stream: the master passes the
slave's stream through for at most `STREAM_SECONDS` (under its stream cap,
see taskorg/net/streams.py), and this loop opens the next one from the last
timestamp it printed, through whichever master DNS names at that moment.
The same loop covers a master killed mid-stream, a slave that went away and
a task that restarts (the master follows the instance's newest container,
wherever it now runs). `LogCursor` drops lines already printed, so every
line shows once and none is lost. The follow ends when the task has
finished and its last output is printed.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, TextIO

import requests

from taskorg.client import ClusterUnavailable
from taskorg.logstream import LogCursor, LogQuery, split_stamp
from taskorg.net.client import ServiceError, ServiceUnavailable

FINISHED = ("succeeded", "failed", "cancelled")
STREAM_SECONDS = 30.0
PAUSE = 0.25  # between streams when the last one ended at once (no container yet, a restart)
GIVE_UP_AFTER = 120.0  # seconds without reaching any master before the follow gives up


@dataclass
class FollowOptions:
    tail: int | None  # None: everything the container wrote
    since: float | None  # Unix time
    timestamps: bool
    as_json: bool


class LineWriter:
    """Prints admitted lines, as text (with or without their timestamp) or as JSON lines."""

    def __init__(self, out: TextIO, options: FollowOptions, task_id: str, index: int) -> None:
        self.out, self.options, self.task_id, self.index = out, options, task_id, index

    def write(self, line: str) -> None:
        stamp, text = split_stamp(line)
        if self.options.as_json:
            self.out.write(json.dumps({"task": self.task_id, "index": self.index, "time": stamp or None,
                                       "line": text}) + "\n")
        else:
            self.out.write((line if self.options.timestamps else text) + "\n")


def follow_logs(client: Any, task_id: str, index: int, options: FollowOptions, out: TextIO = sys.stdout,
                clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> int:
    """Print until the task has finished (exit 0); 1 when no master answered for GIVE_UP_AFTER seconds."""
    cursor, writer = LogCursor(), LineWriter(out, options, task_id, index)
    started_at = time.time()
    opened_once = False
    reached = clock()
    while True:
        query = LogQuery(tail=None if opened_once else options.tail, since=resume_point(cursor, options, opened_once,
                                                                                        started_at),
                         timestamps=True, follow=True, duration=STREAM_SECONDS)
        try:
            began = clock()
            response = client.log_stream(task_id, index, query)
            opened_once, reached = True, clock()
            cursor.resume()
            print_stream(response, cursor, writer, out)
            reached = clock()
            if finished(client, task_id):
                return print_rest(client, task_id, index, cursor, writer, out,
                                  resume_point(cursor, options, True, started_at))
            if clock() - began < 1.0:
                sleep(PAUSE)
        except (ServiceError, ServiceUnavailable, ClusterUnavailable, requests.RequestException) as exc:
            if isinstance(exc, ServiceError) and exc.status in (400, 401, 403, 404):
                raise  # a wrong task or credential: no use asking again
            if clock() - reached > GIVE_UP_AFTER:
                print(f"logs: gave up after {GIVE_UP_AFTER:g} s without a master: {exc}", file=sys.stderr)
                return 1
            sleep(PAUSE)


def resume_point(cursor: LogCursor, options: FollowOptions, opened_once: bool, started_at: float) -> float | None:
    """Where the next stream starts: after the last line printed; before any, the user's --since, or
    (for a --tail 0 follow whose first stream showed nothing) the moment the follow began."""
    if cursor.last:
        return cursor.since()
    if opened_once and options.tail == 0:
        return max(options.since or 0.0, started_at) or None
    return options.since


def print_stream(response: requests.Response, cursor: LogCursor, writer: LineWriter, out: TextIO) -> None:
    """Every whole line of one stream that the cursor admits, flushed as it comes. A line cut by the
    stream's end is dropped here: the next stream sends it again from the last timestamp."""
    pending = b""
    try:
        for chunk in response.iter_content(chunk_size=None):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", errors="replace")
                if cursor.admit(line):
                    writer.write(line)
            out.flush()
    except requests.RequestException:
        pass  # the master or slave went away mid-stream: the caller opens the next from the cursor
    finally:
        response.close()


def finished(client: Any, task_id: str) -> bool:
    return client.task(task_id)["status"] in FINISHED


def print_rest(client: Any, task_id: str, index: int, cursor: LogCursor, writer: LineWriter, out: TextIO,
               since: float | None) -> int:
    """What a finished task wrote after the last stream ended (e.g. while the master failed over)."""
    cursor.resume()
    try:
        answer = client.logs(task_id, index, LogQuery(tail=None, since=since, timestamps=True))
    except (ServiceError, ServiceUnavailable, ClusterUnavailable) as exc:
        print(f"logs: the task has finished; its last lines could not be fetched: {exc}", file=sys.stderr)
        return 1
    for line in (answer.get("logs") or "").splitlines():
        if cursor.admit(line):
            writer.write(line)
    out.flush()
    return 0

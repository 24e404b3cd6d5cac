"""The `logs -f` loop (taskorg/cli/log_follow.py) against a scripted client: streams cut mid-line, a
master that is gone for a while, a stream that starts again from the last timestamp. Every line is
printed once, in order, and the follow ends when the task has finished."""

from __future__ import annotations

import io
import json
from typing import Any, Iterator

import requests

from taskorg.cli.log_follow import FollowOptions, follow_logs
from taskorg.client import ClusterUnavailable
from taskorg.logstream import LogQuery, split_stamp, stamp_seconds


def stamp(n: int) -> str:
    return f"2026-12-01T10:00:{n // 10:02d}.{n % 10}00000000Z"


LINES = [f"{stamp(n)} {n}" for n in range(30)]


class Stream:
    """A requests.Response stand-in: chunks, then (maybe) a broken connection."""

    def __init__(self, chunks: list[bytes], breaks: bool) -> None:
        self.chunks, self.breaks, self.closed = chunks, breaks, False

    def iter_content(self, chunk_size: Any = None) -> Iterator[bytes]:
        yield from self.chunks
        if self.breaks:
            raise requests.ConnectionError("master killed")

    def close(self) -> None:
        self.closed = True


class ScriptedCluster:
    """Serves LINES from `since` on: the first stream is cut mid-line, then the master is away twice."""

    def __init__(self) -> None:
        self.queries: list[LogQuery] = []
        self.outages = 2
        self.streams = 0

    def lines_from(self, query: LogQuery) -> list[str]:
        chosen = [line for line in LINES if query.since is None or _seconds(line) >= query.since]
        return chosen if query.tail is None else chosen[len(chosen) - query.tail:] if query.tail else []

    def log_stream(self, task_id: str, index: int, query: LogQuery) -> Stream:
        self.queries.append(query)
        self.streams += 1
        if self.streams == 2 and self.outages:
            self.outages -= 1
            self.streams -= 1
            raise ClusterUnavailable("no active master")
        text = "".join(line + "\n" for line in self.lines_from(query)).encode()
        if self.streams == 1:
            cut = text.index(b"\n", len(text) // 3) + 5  # in the middle of a line
            return Stream([text[:cut]], breaks=True)
        return Stream([text[i:i + 7] for i in range(0, len(text), 7)], breaks=False)

    def task(self, task_id: str) -> dict[str, Any]:
        return {"status": "succeeded" if self.streams >= 2 else "running"}

    def logs(self, task_id: str, index: int, query: LogQuery) -> dict[str, Any]:
        return {"logs": "".join(line + "\n" for line in self.lines_from(query))}


def _seconds(line: str) -> float:
    return stamp_seconds(split_stamp(line)[0])


def test_every_line_once_in_order_across_a_cut_and_an_outage() -> None:
    cluster, out = ScriptedCluster(), io.StringIO()
    code = follow_logs(cluster, "t-1", 0, FollowOptions(tail=None, since=None, timestamps=False, as_json=False), out,
                       sleep=lambda seconds: None)
    assert code == 0
    assert out.getvalue().split() == [str(n) for n in range(30)]
    assert cluster.queries[0].tail is None and cluster.queries[-1].since is not None


def test_tail_applies_to_the_first_stream_only_and_json_lines_carry_the_time() -> None:
    cluster, out = ScriptedCluster(), io.StringIO()
    follow_logs(cluster, "t-1", 0, FollowOptions(tail=5, since=None, timestamps=False, as_json=True), out,
                sleep=lambda seconds: None)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [row["line"] for row in rows] == [str(n) for n in range(25, 30)]
    assert rows[0]["time"] == stamp(25) and rows[0]["task"] == "t-1"
    assert cluster.queries[0].tail == 5 and all(q.tail is None for q in cluster.queries[1:])


def test_a_follow_gives_up_when_no_master_answers_for_long() -> None:
    class Gone:
        def log_stream(self, *args: Any) -> None:
            raise ClusterUnavailable("no active master")

    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += 10

    code = follow_logs(Gone(), "t-1", 0, FollowOptions(None, None, False, False), io.StringIO(),
                       clock=lambda: now[0], sleep=sleep)
    assert code == 1

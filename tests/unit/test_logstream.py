"""Log windows and the follow cursor (taskorg/logstream.py): arguments are checked and named, and a
follow resumed from its last timestamp shows every line once, even lines written in the same nanosecond."""

from __future__ import annotations

import pytest

from taskorg.logstream import LogCursor, LogQuery, LogQueryError, parse_since, split_stamp, stamp_seconds

T1 = "2026-12-01T10:00:00.000000001Z"
T2 = "2026-12-01T10:00:00.100000000Z"
T3 = "2026-12-01T10:00:00.200000000Z"


def test_a_query_reads_back_its_own_parameters() -> None:
    query = LogQuery(tail=None, since=1796119200.25, timestamps=True, follow=True, duration=12)
    assert LogQuery.from_args(query.params()) == query
    assert LogQuery.from_args({}) == LogQuery(tail=200)
    assert LogQuery.from_args({"tail": "0"}).tail == 0


@pytest.mark.parametrize("args, named", [({"tail": "-1"}, "tail"), ({"tail": "some"}, "tail"),
                                         ({"since": "yesterday"}, "since"), ({"since": "nan"}, "since"),
                                         ({"since": "-5"}, "since"), ({"duration": "0"}, "duration"),
                                         ({"duration": "3600"}, "duration"), ({"follow": "yes"}, "follow")])
def test_bad_arguments_are_named(args: dict[str, str], named: str) -> None:
    with pytest.raises(LogQueryError, match=f"^{named}:"):
        LogQuery.from_args(args)


def test_since_takes_durations_unix_times_and_rfc3339() -> None:
    assert parse_since("10m", now=1000.0) == 400.0
    assert parse_since("1796119200.5") == 1796119200.5
    assert parse_since("2026-12-01T10:00:00Z") == 1796119200.0
    with pytest.raises(LogQueryError, match="--since"):
        parse_since("last tuesday")


def test_stamps_split_and_convert() -> None:
    assert split_stamp(f"{T2} hello world") == (T2, "hello world")
    assert split_stamp("no stamp here") == ("", "no stamp here")
    assert stamp_seconds(T2) == pytest.approx(1796119200.1)
    assert stamp_seconds(T1) == 1796119200.0  # rounded down: a resumed stream starts at or before it


def test_a_resumed_stream_shows_nothing_twice_and_loses_nothing() -> None:
    cursor = LogCursor()
    first = [f"{T1} 0", f"{T2} 1", f"{T2} 1b"]
    assert [cursor.admit(line) for line in first] == [True, True, True]
    assert cursor.since() == stamp_seconds(T2)
    cursor.resume()
    # The next stream starts at T2 inclusive: it repeats what was shown at T2 and carries a line of the
    # same nanosecond that the first stream was cut before, then newer lines.
    second = [f"{T2} 1", f"{T2} 1b", f"{T2} 1c", f"{T3} 2"]
    assert [cursor.admit(line) for line in second] == [False, False, True, True]


def test_a_line_printed_twice_on_purpose_shows_twice() -> None:
    cursor = LogCursor()
    assert cursor.admit(f"{T2} same") and cursor.admit(f"{T2} same")
    cursor.resume()
    assert [cursor.admit(f"{T2} same"), cursor.admit(f"{T2} same"), cursor.admit(f"{T2} same")] == [False, False, True]


def test_older_lines_are_dropped_and_unstamped_lines_pass() -> None:
    cursor = LogCursor()
    cursor.admit(f"{T3} late")
    assert not cursor.admit(f"{T2} early")
    assert cursor.admit("no stamp")

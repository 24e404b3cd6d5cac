"""The cap on long streams (taskorg/net/streams.py): past the limit a stream is refused at once with a
503 naming the cap, and a slot comes back however a stream ends: run out, closed by the server before
its first chunk, or failing to open."""

from __future__ import annotations

import pytest

from taskorg.net.server import ApiError
from taskorg.net.streams import StreamSlots


def test_past_the_limit_a_stream_is_refused_with_503() -> None:
    slots = StreamSlots(2, "log follows")
    first, second = slots.hold(lambda: iter(["a"])), slots.hold(lambda: iter(["b"]))
    with pytest.raises(ApiError) as refused:
        slots.hold(lambda: iter(["c"]))
    assert refused.value.status == 503 and "at most 2" in refused.value.message and "log follows" in refused.value.message
    assert list(first) == ["a"]  # ran out: its slot is back
    third = slots.hold(lambda: iter(["c"]))
    second.close()  # closed before its first chunk (the client left)
    second.close()  # twice changes nothing
    fourth = slots.hold(lambda: iter(["d"]))
    assert list(third) + list(fourth) == ["c", "d"]


def test_a_stream_that_fails_to_open_gives_its_slot_back() -> None:
    slots = StreamSlots(1, "streams")

    def missing() -> list[str]:
        raise LookupError("no container")

    with pytest.raises(LookupError):
        slots.hold(missing)
    assert list(slots.hold(lambda: iter(["ok"]))) == ["ok"]


def test_closing_a_stream_closes_what_it_streams() -> None:
    closed: list[bool] = []

    def chunks():  # type: ignore[no-untyped-def]
        try:
            yield "a"
            yield "b"
        finally:
            closed.append(True)

    slots = StreamSlots(1, "streams")
    held = slots.hold(chunks)
    iterator = iter(held)
    assert next(iterator) == "a"
    held.close()
    assert closed == [True]

"""The master's parsed-spec cache: same text, same dict; new text, parsed again; bounded."""

import json

from taskorg.master import specs
from taskorg.master.specs import SpecCache


def test_the_same_text_gives_the_same_parsed_spec() -> None:
    cache = SpecCache()
    text = json.dumps({"name": "a", "image": "busybox"})
    first = cache.get("t1", text)
    assert cache.get("t1", text) is first
    assert cache.known("t1") is first
    assert cache.known("t2") is None


def test_a_changed_text_is_parsed_again() -> None:
    cache = SpecCache()
    cache.get("t1", json.dumps({"name": "a"}))
    assert cache.get("t1", json.dumps({"name": "b"})) == {"name": "b"}


def test_the_cache_starts_over_past_its_bound(monkeypatch) -> None:
    monkeypatch.setattr(specs, "MAX_SPECS", 3)
    cache = SpecCache()
    for n in range(3):
        cache.get(f"t{n}", "{}")
    cache.get("t3", "{}")
    assert cache.known("t0") is None and cache.known("t3") == {}

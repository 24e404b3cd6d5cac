"""Property-based fuzz of the spec parser (issue 15): whatever the input, SpecError or a JobSpec.

Inputs are built from the tokens that broke parsers before (brackets, anchors,
aliases, merge keys, tags, huge numbers, variables) spliced into valid specs
and compose files, plus arbitrary text and arbitrary JSON-like data. Each run
is bounded in examples and derandomized, so CI sees the same inputs every
time and stays well under a minute; no input under 64 KiB may take 1 s of CPU
(CPU time, so that a busy machine does not fail the test).
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskorg.spec import SpecError, SpecPolicy, job_from_dict, parse_spec_text

MAX_SECONDS = 1.0
BOUNDED = settings(max_examples=250, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

TOKENS = [
    "[", "]", "{", "}", ",", ":", ": ", "- ", "\n", "\n  ", "\n    ", "  ", "'", '"', "#", "&a ", "*a", "<<: ",
    "!!int ", "!!timestamp ", "!!binary ", "!!python/object:os.system ", "!foo ", "? ", "---\n", "...\n",
    "|\n  ", ">\n  ", "\t", "\x00", "\ufeff", "2001-02-30", "0x1F", "0o17", "1e999", ".nan", "-.inf",
    "1" * 50, "9" * 4400, "8080:80", "1000:1000", "~", "null", "yes", "no", "=", "$", "$$", "${A}", "${A:-x}",
    "${A:?boom}", "${", "job", "tasks", "name", "image", "after", "depends_on", "services", "deploy",
    "replicas", "resources", "limits", "reservations", "memory", "64M", "cpus", "0.5", "ports", "volumes",
    "healthcheck", "test", "secrets", "file", "environment", "env_file", "restart", "on-failure:3",
    "constraints", "node.labels.a == b", "x-ext", "build", "gpus", "all", "devices", "/dev/null",
]

VALID = [
    "name: a\nimage: x\n",
    "job: j\nseed: 1\ntasks:\n  - name: a\n    image: x\n  - name: b\n    image: x\n    after: [a]\n",
    "services:\n  web:\n    image: x\n    ports: ['8080:80']\n    deploy:\n      replicas: 2\n"
    "      resources: {limits: {memory: 64M}}\n    depends_on: {db: {condition: service_healthy}}\n"
    "  db:\n    image: x\n    healthcheck: {test: 'true'}\n",
]


# The slowest example seen (CPU seconds, its size in bytes) and how many ran: printed at the end.
SLOWEST = {"seconds": 0.0, "size": 0, "examples": 0}


def check(parse: Callable[[], Any], size: int) -> None:
    """Only SpecError may escape, and small inputs answer within MAX_SECONDS."""
    started = time.thread_time()
    try:
        parse()
    except SpecError as error:
        assert error.problems and all(str(problem) for problem in error.problems)
    elapsed = time.thread_time() - started
    SLOWEST["examples"] += 1
    if elapsed > SLOWEST["seconds"]:
        SLOWEST.update(seconds=elapsed, size=size)
    if size < 64 * 1024:
        assert elapsed < MAX_SECONDS, f"{elapsed:.2f} s for {size} bytes"


@pytest.fixture(scope="module", autouse=True)
def report_slowest() -> Iterator[None]:
    yield
    print(f"\nspec fuzz: {SLOWEST['examples']} parses, the slowest {SLOWEST['seconds'] * 1000:.0f} ms of CPU "
          f"({SLOWEST['size']} bytes; limit {MAX_SECONDS:.0f} s under 64 KiB)")


@BOUNDED
@given(st.lists(st.sampled_from(TOKENS), max_size=80))
def test_token_soup(tokens: list[str]) -> None:
    text = "".join(tokens)
    check(lambda: parse_spec_text(text), len(text))


@BOUNDED
@given(st.sampled_from(VALID), st.integers(0, 400), st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12))
def test_valid_specs_with_tokens_spliced_in(base: str, at: int, tokens: list[str]) -> None:
    cut = at % (len(base) + 1)
    text = base[:cut] + "".join(tokens) + base[cut:]
    check(lambda: parse_spec_text(text, policy=SpecPolicy(allow_host_paths=True)), len(text))


@BOUNDED
@given(st.text(max_size=2000))
def test_arbitrary_text(text: str) -> None:
    check(lambda: parse_spec_text(text), len(text.encode("utf-8", "surrogatepass")))


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.sampled_from(["x", "a", "64M", "8080:80", "on-failure", "always", "node1", "/data", "data:/data"]),
    lambda children: st.lists(children, max_size=6)
    | st.dictionaries(st.sampled_from(TOKENS[40:]) | st.text(max_size=8), children, max_size=6),
    max_leaves=40)


@BOUNDED
@given(JSONISH)
def test_arbitrary_data(data: Any) -> None:
    check(lambda: job_from_dict(data), 0)
    try:
        text = json.dumps(data)
    except ValueError:
        return
    check(lambda: parse_spec_text(text), len(text))


@BOUNDED
@given(st.dictionaries(st.sampled_from(TOKENS[40:]), JSONISH, max_size=8))
def test_arbitrary_tasks_and_services(fields: dict[str, Any]) -> None:
    task = {"name": "a", "image": "x", **fields}
    check(lambda: job_from_dict({"job": "j", "tasks": [task]}), 0)
    check(lambda: job_from_dict({"services": {"web": fields}}), 0)


TOP_LEVEL = ["services", "volumes", "secrets", "configs", "networks", "name", "version", "include", "x-a"]


@BOUNDED
@given(st.dictionaries(st.sampled_from(TOP_LEVEL), JSONISH, max_size=5), JSONISH)
def test_arbitrary_compose_files(top: dict[str, Any], service: Any) -> None:
    top.setdefault("services", {"web": service})
    check(lambda: job_from_dict(top), 0)


LARGE = settings(BOUNDED, max_examples=30)


@LARGE
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=40), st.integers(8 * 1024, 63 * 1024))
def test_token_soup_up_to_64_kib(tokens: list[str], size: int) -> None:
    """Repeated fragments near the size limit: nesting, anchors and numbers at scale."""
    unit = "".join(tokens)
    text = (unit * (size // max(1, len(unit.encode())) + 1))[:size]
    check(lambda: parse_spec_text(text), len(text.encode("utf-8", "surrogatepass")))


@LARGE
@given(st.integers(1, 1200), st.sampled_from(["", "    after: [t0]\n", "    depends_on: [t0]\n"]),
       st.sampled_from(["", "    replicas: 3\n    resources: {limits: {memory: 64M}}\n",
                        "    ports: ['8080:80']\n", "    env: {A: '${B:-x}'}\n"]))
def test_valid_jobs_up_to_64_kib(tasks: int, wait: str, extra: str) -> None:
    """A valid job of many tasks (all waiting on the first, or not) stays fast up to the size limit."""
    body = "".join(f"  - name: t{n}\n    image: busybox\n{wait if n else ''}{extra}" for n in range(tasks))
    text = f"job: big\ntasks:\n{body}"
    if len(text.encode()) >= 64 * 1024:
        return
    check(lambda: parse_spec_text(text, policy=SpecPolicy(allow_host_paths=True)), len(text.encode()))

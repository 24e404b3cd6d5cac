"""The spec's building blocks on their own, and the example specs users start from.

`parse_size` and the dependency graph are used beyond validation (the CLI
prints sizes, the master orders tasks), and every file in examples/ must be
submittable as it is: these tests keep both true.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from taskorg.spec import JobSpec, load_spec_file, parse_size
from taskorg.spec.graph import dependency_order, find_cycles
from taskorg.spec.sizes import format_size

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))
MiB = 2**20


# ---- sizes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("written, size", [
    (0, 0), (4096, 4096), ("4096", 4096), ("100B", 100), ("100b", 100),
    ("512k", 512 * 1024), ("512K", 512 * 1024), ("512KiB", 512 * 1024),
    ("64M", 64 * MiB), ("64m", 64 * MiB), ("64Mi", 64 * MiB), ("64MB", 64 * MiB), ("64MiB", 64 * MiB),
    ("1G", 2**30), ("1Gi", 2**30), ("2T", 2 * 2**40), ("2Ti", 2 * 2**40),
    ("1.5K", 1536), ("0.5G", 2**29), (" 1 G ", 2**30), ("1.0001", 1),
])
def test_parse_size(written: int | str, size: int) -> None:
    assert parse_size(written) == size


@pytest.mark.parametrize("written", ["", "lots", "-1", "1X", "1iB", "M", "1e3", "0x10", "1,5G",
                                     -1, 1.5, True, None, [1]])
def test_parse_size_refuses(written: object) -> None:
    with pytest.raises(ValueError, match="must be a size like 64M or 1Gi, got "):
        parse_size(written)  # type: ignore[arg-type]


@pytest.mark.parametrize("size, text", [
    (0, "0"), (1000, "1000"), (1024, "1Ki"), (64 * MiB, "64Mi"), (1536 * MiB, "1536Mi"), (2**40, "1Ti"),
])
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text
    assert parse_size(text) == size


# ---- dependency graph ---------------------------------------------------------------------------

def test_no_cycles_in_a_dag() -> None:
    deps = {"b": ["a"], "c": ["a", "b"]}
    assert find_cycles(["a", "b", "c"], deps) == []
    assert dependency_order(["c", "b", "a"], deps) == ["a", "b", "c"]


def test_cycles_start_at_their_first_task_and_take_the_shortest_way() -> None:
    deps = {"a": ["b"], "b": ["c", "a"], "c": ["a"], "x": ["x"], "y": ["a"]}
    assert find_cycles(["y", "a", "b", "c", "x"], deps) == [["a", "b", "a"], ["x", "x"]]


def test_dependency_order_refuses_a_cycle() -> None:
    with pytest.raises(ValueError):
        dependency_order(["a", "b"], {"a": ["b"], "b": ["a"]})


def test_long_chains_are_fast_and_need_no_recursion() -> None:
    names = [f"t{i}" for i in range(5000)]
    deps = {name: [names[i + 1]] for i, name in enumerate(names[:-1])}
    started = time.monotonic()
    assert find_cycles(names, deps) == []
    assert dependency_order(names, deps) == names[::-1]
    deps[names[-1]] = [names[0]]
    assert len(find_cycles(names, deps)[0]) == 5001
    assert time.monotonic() - started < 5


# ---- examples ---------------------------------------------------------------------------------------

def test_the_documented_examples_exist() -> None:
    assert {"hello.yaml", "web.yaml", "worker.yaml", "pipeline.yaml"} <= {f.name for f in EXAMPLE_FILES}


@pytest.fixture(params=EXAMPLE_FILES, ids=lambda path: path.name)
def example(request: pytest.FixtureRequest) -> JobSpec:
    return load_spec_file(request.param)


def test_examples_use_the_local_image_and_small_limits(example: JobSpec) -> None:
    for task in example.tasks:
        assert task.image == "taskorg/busybox:latest"
        assert task.resources.memory is not None and 16 * MiB <= task.resources.memory <= 64 * MiB
        assert task.resources.cpus is not None and 0.1 <= task.resources.cpus <= 0.5
        assert task.command, "examples spell out what they run"


def test_only_web_publishes_a_host_port(example: JobSpec) -> None:
    host_ports = [p.host for t in example.tasks for p in t.ports if p.host is not None]
    assert host_ports == ([18080] if example.name == "web" else [])


def test_hello_runs_once() -> None:
    hello = load_spec_file(EXAMPLES / "hello.yaml").tasks[0]
    assert hello.restart.policy == "never" and hello.instance_count == 1


def test_web_serves_with_two_replicas_that_always_restart() -> None:
    web = load_spec_file(EXAMPLES / "web.yaml").tasks[0]
    assert (web.replicas, web.restart.policy) == (2, "always")
    assert [p.to_dict() for p in web.ports] == [{"host": 18080, "container": 8080, "protocol": "tcp", "host_ip": None}]
    assert "httpd -f -v -p 8080" in web.command[-1]


def test_worker_restarts_on_failure() -> None:
    worker = load_spec_file(EXAMPLES / "worker.yaml").tasks[0]
    assert worker.restart.policy == "on-failure" and worker.env


def test_pipeline_runs_its_steps_in_order() -> None:
    pipeline = load_spec_file(EXAMPLES / "pipeline.yaml")
    assert [(t.name, t.after) for t in pipeline.tasks] == [
        ("prepare", ()), ("compute", ("prepare",)), ("report", ("compute",))]

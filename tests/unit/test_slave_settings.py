"""The slave's container settings and the pure readings of docker's answers, without dockerd.

Proves: the new node settings (allow_low_ports, default_memory_limit,
default_pids_limit, image_pull_timeout) have their documented defaults, a bad
value is an error naming the setting, and they become the runner's site (the
memory limit in bytes, secret files under the state dir); health is read from
docker's inspect data and from a listing's status text; a result path's stat
names what is not one small regular file, and a result's text nested too deeply is named, not
decoded into a RecursionError on every report.
"""

from __future__ import annotations

import io
import tarfile
from typing import Any

import pytest

from taskorg.config import ConfigError, load_config
from taskorg.slave.runner.docker_results import MAX_RESULT_DEPTH, _not_a_small_file, _parse
from taskorg.slave.runner.docker_state import health, listed_health
from taskorg.slave.service import runner_site


def test_defaults_and_the_site_they_make() -> None:
    config = load_config(environ={}, overrides={"state_dir": "/srv/state", "address": "127.0.9.3"})
    assert (config.allow_low_ports, config.default_memory_limit, config.default_pids_limit,
            config.image_pull_timeout) == (False, "512M", 512, 300.0)
    site = runner_site(config.replace(default_memory_limit="1G", default_pids_limit=64), "node3")
    assert (site.node, site.address, site.memory_limit, site.pids_limit, site.files_dir) == \
        ("node3", "127.0.9.3", 1024**3, 64, "/srv/state/slave/files")


@pytest.mark.parametrize("name, value, message", [
    ("default_memory_limit", "lots", "setting 'default_memory_limit': must be a size like 64M or 1Gi, got 'lots'"),
    ("default_memory_limit", "1M", "setting 'default_memory_limit': at least 4M (Docker's minimum), got '1M'"),
    ("default_pids_limit", 0, "settings 'default_pids_limit' and 'image_pull_timeout' must be positive"),
    ("image_pull_timeout", 0, "settings 'default_pids_limit' and 'image_pull_timeout' must be positive"),
    ("allow_low_ports", "maybe", "setting 'allow_low_ports': expected true or false, got 'maybe'"),
])
def test_bad_values_name_the_setting(name: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={}, overrides={name: value})
    assert str(info.value) == message


def test_health_from_inspect_data_and_from_a_listing() -> None:
    assert health({"Status": "running", "Health": {"Status": "unhealthy"}}) == "unhealthy"
    assert health({"Status": "running"}) is None
    assert health({"Health": {"Status": "none"}}) is None
    assert [listed_health(text) for text in ("Up 3 seconds (health: starting)", "Up 1 hour (healthy)",
                                             "Up 2 minutes (unhealthy)", "Up 5 seconds")] == \
        ["starting", "healthy", "unhealthy", None]


@pytest.mark.parametrize("mode, size, named", [
    (1 << 31 | 0o755, 4096, "is a directory, not one regular file: not read"),
    (1 << 27 | 0o777, 11, "is a symlink, not one regular file: not read"),
    (1 << 25 | 0o644, 0, "is a fifo, not one regular file: not read"),
    (0o644, 70000, "is larger than 65536 bytes"),
    (0o644, 100, None),
])
def test_a_result_stat_names_what_is_not_one_small_regular_file(mode: int, size: int, named: str | None) -> None:
    problem = _not_a_small_file({"mode": mode, "size": size}, "/tmp/r.json", 65536)
    assert problem == (None if named is None else f"result file /tmp/r.json {named}")


def archived(text: str) -> bytes:
    """One regular file holding `text`, as docker's get_archive streams it."""
    buffer = io.BytesIO()
    data = text.encode()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        member = tarfile.TarInfo("r.json")
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("text", ["[" * 40_000 + "]" * 40_000, "[" * 40_000, '{"a":' * 65 + "1" + "}" * 65])
def test_a_result_nested_too_deeply_is_named_not_read(text: str) -> None:
    assert _parse(archived(text), "/tmp/r.json", 65536 * 2) == (
        None, f"result file /tmp/r.json nests deeper than {MAX_RESULT_DEPTH} levels: not read")


def test_a_result_within_the_depth_is_read() -> None:
    assert _parse(archived("[" * 64 + "]" * 64), "/tmp/r.json", 65536)[1] is None
    assert _parse(archived('{"rows": [1, 2]}'), "/tmp/r.json", 65536) == ({"rows": [1, 2]}, None)

"""Telemetry: shape of a sample, the measured speed score, sensor and GPU parsing."""

from __future__ import annotations

from collections import namedtuple

import pytest

from taskorg.slave import telemetry

Reading = namedtuple("Reading", "label current high critical")


def test_a_sample_has_every_documented_field() -> None:
    telemetry.prime()
    sample = telemetry.collect("node2", state_dir="/tmp")
    assert set(sample) == {"node", "time", "cpu_count", "cpu_percent", "load1", "memory_total",
                           "memory_available", "temperatures", "gpus", "speed", "disk", "docker_disk"}
    assert 0 <= sample["disk"]["percent"] <= 100 and sample["disk"]["used"] <= sample["disk"]["total"]
    assert telemetry.collect("node2")["disk"] is None  # no state dir given: nothing to measure
    assert sample["node"] == "node2"
    assert sample["time"].endswith("Z")
    assert sample["cpu_count"] >= 1
    assert 0 <= sample["cpu_percent"] <= 100
    assert sample["load1"] >= 0
    assert 0 < sample["memory_available"] <= sample["memory_total"]
    assert isinstance(sample["temperatures"], dict)
    assert isinstance(sample["gpus"], list)


def test_speed_is_measured_once_and_positive() -> None:
    first = telemetry.measure_speed()
    assert first > 0
    assert telemetry.measure_speed() == first  # computed once per process


def test_speed_is_about_one_on_a_reference_class_machine() -> None:
    # Loose: CI machines differ, but an order of magnitude off means a broken benchmark.
    assert 0.1 < telemetry.measure_speed() < 10


def test_temperatures_are_flattened_by_chip_and_label() -> None:
    chips = {
        "coretemp": [Reading("Package id 0", 47.0, 80.0, 100.0), Reading("Core 0", 45.55, 80.0, 100.0)],
        "acpitz": [Reading("", 40.0, None, None), Reading("", 41.0, None, None)],
        "nvme": [Reading("Composite", None, None, None)],
    }
    assert telemetry.flatten_temperatures(chips) == {
        "coretemp/Package id 0": 47.0,
        "coretemp/Core 0": 45.5,
        "acpitz": 40.0,
        "acpitz#1": 41.0,
    }


def test_machine_without_sensors_gives_an_empty_dict() -> None:
    assert telemetry.flatten_temperatures({}) == {}
    assert isinstance(telemetry.temperatures(), dict)


def test_nvidia_smi_output_is_parsed_to_bytes_and_percent() -> None:
    text = "NVIDIA GeForce RTX 3060, 12288, 1024, 17\nTesla T4, 15360, [N/A], [N/A]\nA, comma name, 8, 2, 0\n\n"
    assert telemetry.parse_nvidia_smi(text) == [
        {"name": "NVIDIA GeForce RTX 3060", "memory_total": 12288 << 20, "memory_used": 1024 << 20,
         "utilization": 17.0},
        {"name": "Tesla T4", "memory_total": 15360 << 20, "memory_used": None, "utilization": None},
        {"name": "A, comma name", "memory_total": 8 << 20, "memory_used": 2 << 20, "utilization": 0.0},
    ]


def test_no_nvidia_smi_means_no_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry.shutil, "which", lambda name: None)
    assert telemetry.gpus() == []



def test_the_state_disk_is_measured_and_a_docker_root_on_it_is_not_repeated(tmp_path) -> None:
    state, docker = tmp_path / "state", tmp_path / "docker"
    state.mkdir()
    docker.mkdir()
    sample = telemetry.collect("node2", state_dir=str(state), docker_root=str(docker))
    assert sample["disk"]["mount"] == telemetry.mount_of(str(tmp_path))
    assert 0 < sample["disk"]["used"] <= sample["disk"]["total"] and 0 <= sample["disk"]["percent"] <= 100
    assert sample["docker_disk"] is None  # the same filesystem: `disk` says it
    assert telemetry.collect("node2")["disk"] is None and telemetry.collect("node2")["docker_disk"] is None


def test_a_docker_root_on_another_filesystem_is_measured_and_an_unreadable_one_left_out(
        monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    mounts = {str(tmp_path): "/", "/srv/docker": "/srv", "/secret/docker": "/secret"}
    monkeypatch.setattr(telemetry, "mount_of", lambda path: mounts[path])
    real = telemetry.psutil.disk_usage

    def usage(path: str):
        if path == "/secret":
            raise PermissionError(13, "Permission denied")
        return real("/")

    monkeypatch.setattr(telemetry.psutil, "disk_usage", usage)
    assert telemetry.docker_disk("/srv/docker", str(tmp_path))["mount"] == "/srv"
    assert telemetry.docker_disk("/secret/docker", str(tmp_path)) is None


def test_docker_root_comes_from_docker_info_or_is_empty() -> None:
    class Runner:
        def __init__(self, answer):
            self.client = self
            self.answer = answer

        def info(self):
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

    assert telemetry.docker_root_of(Runner({"DockerRootDir": "/srv/docker"})) == "/srv/docker"
    assert telemetry.docker_root_of(Runner(ConnectionError("no dockerd"))) == ""
    assert telemetry.docker_root_of(object()) == ""  # a stand-in runner has no docker client


def test_a_sample_converts_to_the_typed_message_with_its_disk(tmp_path) -> None:
    from taskorg.protocol import Telemetry, convert

    typed = convert(telemetry.collect("node2", state_dir=str(tmp_path)), Telemetry)
    assert typed.disk is not None and 0 <= typed.disk.percent <= 100

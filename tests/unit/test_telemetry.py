"""Telemetry: shape of a sample, the measured speed score, sensor and GPU parsing."""

from __future__ import annotations

from collections import namedtuple

import pytest

from taskorg.slave import telemetry

Reading = namedtuple("Reading", "label current high critical")


def test_a_sample_has_every_documented_field() -> None:
    telemetry.prime()
    sample = telemetry.collect("node2")
    assert set(sample) == {"node", "time", "cpu_count", "cpu_percent", "load1", "memory_total",
                           "memory_available", "temperatures", "gpus", "speed", "disks"}
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
    text = "NVIDIA GeForce RTX 3060, 12288, 17\nTesla T4, 15360, [N/A]\n\n"
    assert telemetry.parse_nvidia_smi(text) == [
        {"name": "NVIDIA GeForce RTX 3060", "memory_total": 12288 * 1024 * 1024, "utilization": 17.0},
        {"name": "Tesla T4", "memory_total": 15360 * 1024 * 1024, "utilization": None},
    ]


def test_no_nvidia_smi_means_no_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry.shutil, "which", lambda name: None)
    assert telemetry.gpus() == []


def test_disks_report_the_state_directory_first_and_share_a_mount(tmp_path) -> None:
    state, docker = tmp_path / "state", tmp_path / "docker"
    state.mkdir()
    docker.mkdir()
    [disk] = telemetry.disks(telemetry.DiskPaths(str(state), str(docker)))
    assert disk["mount"] == telemetry.mount_of(str(tmp_path))
    assert disk["holds"] == ["state", "docker"]  # one filesystem holding both: one entry
    assert 0 < disk["used"] <= disk["size"] and 0 <= disk["free"] <= disk["size"]


def test_an_unreadable_docker_root_is_left_out(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    real = telemetry.psutil.disk_usage

    def usage(path: str):
        if path == "/var/lib/docker-secret":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(telemetry.psutil, "disk_usage", usage)
    found = telemetry.disks(telemetry.DiskPaths(str(tmp_path), "/var/lib/docker-secret"))
    assert [d["holds"] for d in found] == [["state"]]


def test_docker_root_comes_from_docker_info_or_is_none() -> None:
    class Client:
        def __init__(self, answer):
            self.answer = answer

        def info(self):
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

    assert telemetry.docker_root(Client({"DockerRootDir": "/srv/docker"})) == "/srv/docker"
    assert telemetry.docker_root(Client(ConnectionError("no dockerd"))) is None
    assert telemetry.docker_root(None) is None


def test_a_sample_converts_to_the_typed_message_with_its_disks(tmp_path) -> None:
    from taskorg.protocol import Telemetry, convert

    sample = telemetry.collect("node2", paths=telemetry.DiskPaths(str(tmp_path)))
    typed = convert(sample, Telemetry)
    assert typed.disks[0].holds == ["state"]
    assert 0 <= typed.disks[0].percent <= 100

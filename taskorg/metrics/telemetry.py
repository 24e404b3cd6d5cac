"""The machine under a slave, read when Prometheus scrapes: CPU, memory, load, disks, sensors, GPUs, FPGAs.

CPU time is exported as counters (Prometheus takes the rate), so a scrape
never moves the baseline of the `cpu_percent` the slave's reports carry.
Disks: every physical mount psutil lists, plus the one holding taskorg's
state directory (a tmpfs or an SD card's only partition alike): a full state
directory is how a small node dies. FPGA devices are read from
`/sys/class/fpga_manager` where the kernel has it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from taskorg.slave import telemetry

FPGA_ROOT = Path("/sys/class/fpga_manager")


def read(state_dir: str, fpga_root: Path = FPGA_ROOT) -> Iterator[Metric]:
    cpu = CounterMetricFamily("taskorg_node_cpu_seconds", "CPU time of the whole machine, by mode", labels=["mode"])
    for mode, seconds in psutil.cpu_times()._asdict().items():
        cpu.add_metric([mode], seconds)
    yield cpu
    yield GaugeMetricFamily("taskorg_node_cpus", "CPUs of the machine", value=psutil.cpu_count() or 1)
    memory = psutil.virtual_memory()
    yield GaugeMetricFamily("taskorg_node_memory_total_bytes", "Memory of the machine", value=memory.total)
    yield GaugeMetricFamily("taskorg_node_memory_available_bytes", "Memory available without swapping",
                            value=memory.available)
    load = GaugeMetricFamily("taskorg_node_load", "Load average, by period", labels=["period"])
    for period, value in zip(("1m", "5m", "15m"), os.getloadavg()):
        load.add_metric([period], value)
    yield load
    yield from _disks(state_dir)
    yield from _sensors()
    yield from _gpus()
    yield from fpgas(fpga_root)


mount_of = telemetry.mount_of  # the state dir's mount: read for the slave's reports too


def _disks(state_dir: str) -> Iterator[Metric]:
    mounts = {p.mountpoint for p in psutil.disk_partitions(all=False)}
    state_mount = mount_of(state_dir)
    mounts.add(state_mount)
    size = GaugeMetricFamily("taskorg_node_disk_size_bytes", "Size of a mounted filesystem", labels=["mount"])
    used = GaugeMetricFamily("taskorg_node_disk_used_bytes", "Bytes used on a mounted filesystem", labels=["mount"])
    ratio = GaugeMetricFamily("taskorg_node_disk_used_ratio",
                              "Used fraction of a mounted filesystem (as df counts it: used / (used + free))",
                              labels=["mount", "state_dir"])
    for mount in sorted(mounts):
        try:
            usage = psutil.disk_usage(mount)
        except OSError:
            continue  # unmounted meanwhile, or unreadable
        size.add_metric([mount], usage.total)
        used.add_metric([mount], usage.used)
        ratio.add_metric([mount, "true" if mount == state_mount else "false"], usage.percent / 100)
    yield size
    yield used
    yield ratio


def _sensors() -> Iterator[Metric]:
    temperatures = GaugeMetricFamily("taskorg_node_temperature_celsius", "Temperature sensors", labels=["sensor"])
    for sensor, celsius in telemetry.temperatures().items():
        temperatures.add_metric([sensor], celsius)
    yield temperatures
    fans = GaugeMetricFamily("taskorg_node_fan_rpm", "Fan speeds", labels=["sensor"])
    reader = getattr(psutil, "sensors_fans", None)
    try:
        chips = reader() if reader else {}
    except (OSError, RuntimeError):
        chips = {}
    for chip, readings in chips.items():
        for number, reading in enumerate(readings):
            fans.add_metric([f"{chip}/{reading.label or number}"], reading.current)
    yield fans


def _gpus() -> Iterator[Metric]:
    utilisation = GaugeMetricFamily("taskorg_node_gpu_utilization_ratio", "GPU utilisation (nvidia-smi)",
                                    labels=["gpu", "name"])
    memory = GaugeMetricFamily("taskorg_node_gpu_memory_total_bytes", "GPU memory (nvidia-smi)",
                               labels=["gpu", "name"])
    used = GaugeMetricFamily("taskorg_node_gpu_memory_used_bytes", "GPU memory in use (nvidia-smi)",
                             labels=["gpu", "name"])
    for number, gpu in enumerate(telemetry.gpus()):
        labels = [str(number), str(gpu.get("name") or "")]
        if gpu.get("utilization") is not None:
            utilisation.add_metric(labels, float(gpu["utilization"]) / 100)
        if gpu.get("memory_total") is not None:
            memory.add_metric(labels, float(gpu["memory_total"]))
        if gpu.get("memory_used") is not None:
            used.add_metric(labels, float(gpu["memory_used"]))
    yield utilisation
    yield memory
    yield used


def fpgas(root: Path = FPGA_ROOT) -> Iterator[Metric]:
    """One sample per FPGA manager the kernel lists: its name and state as labels (value 1)."""
    found = GaugeMetricFamily("taskorg_node_fpga_info", "FPGA managers of the machine (/sys/class/fpga_manager)",
                              labels=["device", "name", "state"])
    devices = sorted(root.iterdir()) if root.is_dir() else []
    for device in devices:
        found.add_metric([device.name, _read(device / "name"), _read(device / "state")], 1.0)
    yield found


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""

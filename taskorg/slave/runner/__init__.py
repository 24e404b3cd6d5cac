"""Runners: what starts, lists and stops this node's task instances.

`Runner` (protocol.py) is what the slave service and reporter use;
`DockerRunner` runs containers on the local dockerd; the stand-in runner of
taskorg/slave/standin.py keeps instances in memory and starts nothing. The
node setting `runner` (docker | standin) chooses.
"""

from taskorg.slave.runner.docker_runner import DockerRunner
from taskorg.slave.runner.order import OrderError, check_order
from taskorg.slave.runner.protocol import ContainerState, DeathFeed, Runner

__all__ = ["ContainerState", "DeathFeed", "DockerRunner", "OrderError", "Runner", "check_order"]

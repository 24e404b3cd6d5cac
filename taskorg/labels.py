"""Docker labels on every task container.

They let a restarted slave adopt what it already runs, let a master find
duplicates after a partition, and let tests and `cluster down` remove only
what belongs to one cluster.
"""

import platform
import socket

CLUSTER = "taskorg.cluster"
NODE = "taskorg.node"
TASK = "taskorg.task"
INSTANCE = "taskorg.instance"  # "<task id>/<replica index>"
EPOCH = "taskorg.epoch"
ATTEMPT = "taskorg.attempt"
JOB = "taskorg.job"
STOP_GRACE = "taskorg.stop-grace"  # seconds between the stop signal and SIGKILL (the spec's stop_grace_period)

# Node labels taskorg sets itself (registered with the DNS service; users may not set `taskorg.*`).
NO_MASTER_SERVICE = "taskorg.no-master-service"  # "true": the node runs no master service (setting master_service)

# Node labels every node registers about its machine, usable in constraints (`node.labels.arch ==
# aarch64`, `node.hostname == pi3`, `node.platform.os == linux`). A configured label of the same name
# wins: several local-cluster nodes share one machine, and an operator may name a node's role.
ARCH = "arch"  # as `uname -m` says: x86_64, aarch64, armv7l
HOSTNAME = "hostname"
OS = "os"


def machine_labels() -> dict[str, str]:
    return {ARCH: platform.machine() or "unknown", HOSTNAME: socket.gethostname() or "unknown",
            OS: platform.system().lower() or "unknown"}

"""Every compose key and what taskorg does with it: mapped, ignored (with a warning), refused.

One table serves the converter (which key goes where, what a refusal says)
and docs/spec.md (a test keeps the documentation's table equal to this one).
"""

from __future__ import annotations

MAPPED, IGNORED, REFUSED = "mapped", "ignored", "refused"

# Top-level keys of a compose file.
TOP_LEVEL: dict[str, tuple[str, str]] = {
    "services": (MAPPED, "each service becomes a task of the job"),
    "name": (MAPPED, "the job's name (else the file's, or its directory's for docker-compose.yml)"),
    "version": (IGNORED, "obsolete in compose too"),
    "volumes": (MAPPED, "declares named volumes; only the local driver (each node keeps its own)"),
    "secrets": (MAPPED, "file: or environment: sources; the content travels in the spec"),
    "configs": (MAPPED, "file:, environment: or content: sources; the content travels in the spec"),
    "networks": (IGNORED, "tasks reach each other by name in the cluster DNS, no custom networks"),
    "include": (REFUSED, "merge the included files into one"),
    "models": (REFUSED, "no model runner on a cluster node"),
}

# Keys of a service.
SERVICE: dict[str, tuple[str, str]] = {
    "image": (MAPPED, "image"),
    "command": (MAPPED, "command"),
    "entrypoint": (MAPPED, "entrypoint"),
    "environment": (MAPPED, "env (a name without a value is taken from the environment)"),
    "env_file": (MAPPED, "env (read beside the compose file; environment wins)"),
    "ports": (MAPPED, "ports, short syntax (IP:host:container, ranges, /udp) and long syntax"),
    "volumes": (MAPPED, "volumes: named, bind (if the cluster allows host paths), tmpfs"),
    "tmpfs": (MAPPED, "volumes of type tmpfs"),
    "deploy": (MAPPED, "see the deploy keys below"),
    "restart": (MAPPED, "restart: no -> never, always, on-failure[:N], unless-stopped -> always; none given -> always (as Swarm)"),
    "healthcheck": (MAPPED, "healthcheck"),
    "depends_on": (MAPPED, "service_started/service_healthy -> depends_on, "
                           "service_completed_successfully -> after"),
    "labels": (MAPPED, "labels (container labels)"),
    "user": (MAPPED, "user"),
    "working_dir": (MAPPED, "workdir"),
    "stop_grace_period": (MAPPED, "stop_grace_period (default 10s, as Docker)"),
    "stop_signal": (MAPPED, "stop_signal"),
    "devices": (MAPPED, "devices (if the cluster allows host paths)"),
    "gpus": (MAPPED, "gpus"),
    "cap_add": (MAPPED, "cap_add (Docker's default set; others if the cluster allows privileged)"),
    "cap_drop": (MAPPED, "cap_drop"),
    "secrets": (MAPPED, "secrets, at /run/secrets/NAME"),
    "configs": (MAPPED, "configs, at /NAME"),
    "platform": (MAPPED, "platform"),
    "privileged": (MAPPED, "privileged (if the cluster allows it)"),
    "network_mode": (MAPPED, "network: bridge, host (if allowed) or none"),
    "scale": (MAPPED, "replicas"),
    "mem_limit": (MAPPED, "resources.memory"),
    "cpus": (MAPPED, "resources.cpus"),
    "mem_reservation": (MAPPED, "reservations.memory"),
    "container_name": (IGNORED, "taskorg names containers; other tasks reach this one by its service name"),
    "hostname": (IGNORED, "other tasks reach this one by its service name in the cluster DNS"),
    "domainname": (IGNORED, "the cluster DNS names tasks"),
    "networks": (IGNORED, "every task is on its node's bridge network; tasks reach each other "
                          "by name in the cluster DNS"),
    "links": (IGNORED, "tasks reach each other by name in the cluster DNS"),
    "external_links": (IGNORED, "tasks reach each other by name in the cluster DNS"),
    "expose": (IGNORED, "documentation only; publish with ports"),
    "logging": (IGNORED, "the slave keeps each container's log (taskorg logs)"),
    "tty": (IGNORED, "tasks run without a terminal"),
    "stdin_open": (IGNORED, "tasks run without input"),
    "pull_policy": (IGNORED, "the slave pulls a missing image"),
    "profiles": (IGNORED, "every service of the file runs; leave out the ones you do not want"),
    "develop": (IGNORED, "compose watch is a local development tool"),
    "attach": (IGNORED, "logs are read with taskorg logs"),
    "annotations": (IGNORED, "no OCI annotations on cluster containers"),
    "build": (REFUSED, "taskorg runs images and cannot build them: build and push the image, "
                       "then write image: (with image: set, build is ignored)"),
    "extends": (REFUSED, "write the service out in full"),
    "volumes_from": (REFUSED, "tasks may land on different nodes: share a named volume instead"),
    "pid": (REFUSED, "sharing the node's process namespace is not allowed"),
    "ipc": (REFUSED, "sharing an IPC namespace is not allowed"),
    "uts": (REFUSED, "sharing the node's UTS namespace is not allowed"),
    "userns_mode": (REFUSED, "the node's user namespace setting applies"),
    "cgroup": (REFUSED, "the node's cgroup setting applies"),
    "cgroup_parent": (REFUSED, "the node's cgroup setting applies"),
    "isolation": (REFUSED, "Linux nodes only"),
    "security_opt": (REFUSED, "the cluster sets the security options of every container"),
    "sysctls": (REFUSED, "not supported yet: set them in the image or on the node"),
    "ulimits": (REFUSED, "not supported yet: the node's limits apply"),
    "shm_size": (REFUSED, "not supported yet: mount a tmpfs at /dev/shm instead"),
    "pids_limit": (REFUSED, "the cluster sets the pids limit of every container"),
    "oom_kill_disable": (REFUSED, "not supported: a node must be able to reclaim memory"),
    "oom_score_adj": (REFUSED, "not supported yet"),
    "cpu_shares": (REFUSED, "write deploy.resources.limits.cpus"),
    "cpu_quota": (REFUSED, "write deploy.resources.limits.cpus"),
    "cpu_period": (REFUSED, "write deploy.resources.limits.cpus"),
    "cpu_count": (REFUSED, "write deploy.resources.limits.cpus"),
    "cpu_percent": (REFUSED, "write deploy.resources.limits.cpus"),
    "cpu_rt_runtime": (REFUSED, "not supported"),
    "cpu_rt_period": (REFUSED, "not supported"),
    "cpuset": (REFUSED, "placement chooses the node, not the CPUs"),
    "blkio_config": (REFUSED, "not supported yet"),
    "memswap_limit": (REFUSED, "write deploy.resources.limits.memory"),
    "mem_swappiness": (REFUSED, "not supported yet"),
    "device_cgroup_rules": (REFUSED, "list the devices under devices"),
    "storage_opt": (REFUSED, "not supported"),
    "runtime": (REFUSED, "the node's default runtime applies (GPUs: write gpus)"),
    "group_add": (REFUSED, "not supported yet: write user: UID:GID"),
    "init": (REFUSED, "not supported yet: use an image with an init, or exec the server"),
    "read_only": (REFUSED, "not supported yet"),
    "dns": (REFUSED, "containers use the node's resolver, which knows the cluster names"),
    "dns_opt": (REFUSED, "containers use the node's resolver"),
    "dns_search": (REFUSED, "containers use the node's resolver"),
    "extra_hosts": (REFUSED, "not supported yet: publish the name in the cluster DNS"),
    "mac_address": (REFUSED, "not supported"),
    "credential_spec": (REFUSED, "Windows only"),
    "post_start": (REFUSED, "not supported yet: run it in the entrypoint"),
    "pre_stop": (REFUSED, "not supported yet: handle the stop signal"),
    "pre_start": (REFUSED, "not supported yet: run it in the entrypoint"),
    "label_file": (REFUSED, "write the labels under labels"),
    "use_api_socket": (REFUSED, "a task never gets the node's Docker socket"),
    "models": (REFUSED, "no model runner on a cluster node"),
    "provider": (REFUSED, "services come from images only"),
}

# Keys under deploy:.
DEPLOY: dict[str, tuple[str, str]] = {
    "replicas": (MAPPED, "replicas"),
    "resources": (MAPPED, "limits -> resources (Docker enforces), reservations -> reservations "
                          "(placement counts); reservations.devices with capabilities [gpu] -> gpus"),
    "restart_policy": (MAPPED, "restart: condition none/on-failure/any -> never/on-failure/always, "
                               "delay, max_attempts (taskorg's 3 when unset), window"),
    "placement": (MAPPED, "constraints: node.labels.X == Y -> labels, node.hostname and "
                          "node.platform.* and != -> rules; node.role is ignored; "
                          "preferences and max_replicas_per_node are ignored"),
    "update_config": (MAPPED, "update_config"),
    "rollback_config": (MAPPED, "rollback_config"),
    "labels": (MAPPED, "labels"),
    "mode": (MAPPED, "replicated only: global and the job modes are refused"),
    "endpoint_mode": (IGNORED, "the cluster DNS lists every node running the task"),
}


def table_rows() -> list[tuple[str, str, str]]:
    """(key, status, note) for every key, as docs/spec.md lists them."""
    rows = [(key, status, note) for key, (status, note) in TOP_LEVEL.items()]
    rows += [(f"services.*.{key}", status, note) for key, (status, note) in SERVICE.items()]
    rows += [(f"services.*.deploy.{key}", status, note) for key, (status, note) in DEPLOY.items()]
    return rows

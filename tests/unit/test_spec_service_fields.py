"""The service fields compose files need (issue 16), in taskorg's own format.

Each field is checked with its canonical value, every field survives
to_dict -> from_dict and to_dict -> job_from_dict unchanged, and bad values
are named with their path and line.
"""

from __future__ import annotations

import json
from textwrap import dedent

import pytest

from taskorg.spec import JobSpec, SpecError, SpecPolicy, TaskSpec, job_from_dict, parse_spec_text

FULL = """\
    job: shop
    tasks:
      - name: db
        image: taskorg/busybox:latest
        healthcheck:
          test: [CMD-SHELL, "test -e /tmp/ready"]
          interval: 2s
          timeout: 1s
          retries: 5
          start_period: 1m30s
          start_interval: 500ms
      - name: web
        image: taskorg/busybox:latest
        entrypoint: [sh, -c]
        command: ["httpd -f -p 80"]
        workdir: /srv
        user: "1000:1000"
        ports: ["127.0.0.1:8080:80", "9000-9001:9000-9001/udp"]
        volumes:
          - data:/data
          - {type: tmpfs, target: /cache, size: 16M}
        resources: {cpus: 1, memory: 256M}
        reservations: {cpus: 0.25, memory: 64M}
        restart: {policy: on-failure, max_attempts: 4, delay: 5s, window: 2m}
        constraints: {labels: {zone: a}, rules: ["node.hostname != pi3", "node.platform.arch == aarch64"]}
        depends_on: {db: healthy}
        labels: {com.example.team: shop}
        stop_grace_period: 1m
        stop_signal: sigint
        devices: ["/dev/ttyUSB0:/dev/ttyACM0:rw"]
        gpus: {count: 1, driver: nvidia}
        cap_add: [NET_BIND_SERVICE]
        cap_drop: [ALL]
        secrets: [{name: db_password, content: hunter2, mode: 0400}]
        configs: [{name: site.conf, target: /etc/site.conf, content: "listen 80\\n"}]
        update_config: {parallelism: 2, delay: 10s, failure_action: rollback, order: start-first}
        rollback_config: {parallelism: 0, failure_action: continue}
        platform: linux/arm64
    """


def full_job() -> JobSpec:
    return parse_spec_text(dedent(FULL), "shop.yaml", SpecPolicy(allow_host_paths=True))


def test_every_service_field_reaches_the_canonical_form() -> None:
    web = full_job().task("web").to_dict()
    assert web["ports"] == [
        {"host": 8080, "container": 80, "protocol": "tcp", "host_ip": "127.0.0.1"},
        {"host": 9000, "container": 9000, "protocol": "udp", "host_ip": None},
        {"host": 9001, "container": 9001, "protocol": "udp", "host_ip": None}]
    assert web["volumes"][1] == {"source": "", "target": "/cache", "read_only": False,
                                 "type": "tmpfs", "size": 16 * 2**20}
    assert web["resources"] == {"cpus": 1.0, "memory": 256 * 2**20}
    assert web["reservations"] == {"cpus": 0.25, "memory": 64 * 2**20}
    assert web["restart"] == {"policy": "on-failure", "max_attempts": 4, "delay": 5.0, "window": 120.0}
    assert web["constraints"]["rules"] == [
        {"attribute": "node.hostname", "op": "!=", "value": "pi3"},
        {"attribute": "node.platform.arch", "op": "==", "value": "aarch64"}]
    assert web["depends_on"] == {"db": "healthy"}
    assert web["labels"] == {"com.example.team": "shop"}
    assert (web["stop_grace_period"], web["stop_signal"]) == (60.0, "SIGINT")
    assert web["devices"] == [{"source": "/dev/ttyUSB0", "target": "/dev/ttyACM0", "permissions": "rw"}]
    assert web["gpus"] == {"count": 1, "device_ids": [], "driver": "nvidia", "capabilities": ["gpu"]}
    assert (web["cap_add"], web["cap_drop"]) == (["NET_BIND_SERVICE"], ["ALL"])
    assert web["secrets"] == [{"name": "db_password", "target": "/run/secrets/db_password",
                               "content": "hunter2", "mode": 0o400, "uid": None, "gid": None}]
    assert web["configs"][0]["target"] == "/etc/site.conf"
    assert web["update_config"] == {"parallelism": 2, "delay": 10.0, "failure_action": "rollback",
                                    "monitor": 5.0, "max_failure_ratio": 0.0, "order": "start-first"}
    assert web["rollback_config"]["parallelism"] == 0
    assert web["platform"] == "linux/arm64"
    db = full_job().task("db").to_dict()
    assert db["healthcheck"] == {"test": ["CMD-SHELL", "test -e /tmp/ready"], "interval": 2.0,
                                 "timeout": 1.0, "retries": 5, "start_period": 90.0,
                                 "start_interval": 0.5}
    assert db["stop_grace_period"] == 10.0  # Docker's default


def test_every_field_round_trips() -> None:
    job = full_job()
    stored = json.loads(json.dumps(job.to_dict()))
    assert JobSpec.from_dict(stored) == job
    assert job_from_dict(stored, "stored", SpecPolicy(allow_host_paths=True)) == job
    for task in job.tasks:
        assert TaskSpec.from_dict(task.to_dict()) == task
        assert hash(TaskSpec.from_dict(task.to_dict())) == hash(task)


def test_dependencies_wait_in_order() -> None:
    assert [t.name for t in full_job().tasks] == ["db", "web"]


@pytest.mark.parametrize("extra, expected", [
    ("healthcheck: {interval: 2s}\n",
     [("healthcheck.test", 3, "is required (a command like [CMD, wget, -q, -O-, http://localhost/], "
                              "or disable: true to turn the image's check off)")]),
    ("healthcheck: {test: [RUN, x]}\n",
     [("healthcheck.test", 3, "a list must start with CMD (then the command), CMD-SHELL (then a shell "
                              "line) or be [NONE], got 'RUN' first")]),
    ("healthcheck: {test: x, interval: soon}\n",
     [("healthcheck.interval", 3, "must be a duration like 10s, 1m30s or 500ms, got 'soon'")]),
    ("stop_grace_period: -1\n", [("stop_grace_period", 3, "must be from 0s to 366 days, got -1")]),
    ("stop_signal: TERM\n", [("stop_signal", 3, "must be a signal name like SIGTERM or SIGINT, got 'TERM'")]),
    ("reservations: {memory: 1G}\nresources: {memory: 64M}\n",
     [("reservations.memory", 3, "is more than the limit resources.memory")]),
    ("cap_add: [SYS_ADMIN]\n",
     [("cap_add", 3, "adding SYS_ADMIN is refused by the cluster policy: only Docker's default "
                     "capabilities may be added back (the cluster setting allow_privileged: true "
                     "allows the others)")]),
    ("devices: [/dev/sda]\n",
     [("devices[0]", 3, "device /dev/sda is refused by the cluster policy (the cluster setting "
                        "allow_host_paths: true allows it)")]),
    ("devices: [/etc/passwd]\n", [("devices[0]", 3, "must name a device under /dev, got '/etc/passwd'")]),
    ("gpus: {capabilities: [tpu]}\n",
     [("gpus.capabilities", 3, "must include gpu (only GPUs can be requested), got ['tpu']")]),
    ("update_config: {order: random}\n",
     [("update_config.order", 3, "must be stop-first or start-first, got 'random'")]),
    ("rollback_config: {failure_action: rollback}\n",
     [("rollback_config.failure_action", 3, "must be pause or continue, got 'rollback'")]),
    ("constraints: {rules: ['node.role == manager']}\n",
     [("constraints.rules[0]", 3, "must be like node.hostname == pi3, node.labels.zone != a or "
                                  "node.platform.arch == aarch64, got 'node.role == manager'")]),
    ("platform: amd64\n", [("platform", 3, "must be like linux/amd64, linux/arm64 or linux/arm/v7, "
                                           "got 'amd64'")]),
    ("secrets: [{name: x}]\n", [("secrets[0].content", 3, "is required (the file's text)")]),
    ("depends_on: {a: done}\n",
     [("depends_on.a", 3, "must be started or healthy, got 'done' (to wait until a task has "
                          "succeeded, list it in after)")]),
])
def test_bad_service_fields_are_named(extra: str, expected: list[tuple[str, int, str]]) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec_text("name: a\nimage: x\n" + extra, "t.yaml")
    assert [(p.path, p.line, p.message) for p in info.value.problems] == expected


def test_waiting_for_health_needs_a_healthcheck() -> None:
    text = "job: j\ntasks:\n  - {name: db, image: x}\n  - {name: web, image: x, depends_on: {db: healthy}}\n"
    with pytest.raises(SpecError) as info:
        parse_spec_text(text)
    assert str(info.value) == ("<input>:4: tasks[1].depends_on.db: waits for db to be healthy, "
                               "but db has no healthcheck")


def test_depends_on_cycles_and_unknown_names() -> None:
    text = ("job: j\ntasks:\n  - {name: a, image: x, depends_on: [b]}\n"
            "  - {name: b, image: x, depends_on: {a: started, c: started}}\n")
    with pytest.raises(SpecError) as info:
        parse_spec_text(text)
    assert [p.message for p in info.value.problems] == [
        "dependency cycle: a -> b -> a", "unknown task 'c' (tasks in this job: a, b)"]

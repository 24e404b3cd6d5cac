"""Valid task specs: every accepted form of every field, defaults, the canonical dict.

The master stores `to_dict()` and the slave runs it, so these tests pin the
canonical form down exactly and check that it survives a round trip through
`TaskSpec.from_dict` and through validation again (`job_from_dict`).
"""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent
from types import SimpleNamespace
from typing import Any

import pytest

from taskorg.spec import (JobSpec, SpecError, SpecPolicy, TaskSpec, job_from_dict, load_spec_file,
                          parse_spec_text)

BASE = "name: a\nimage: taskorg/busybox:latest\n"
ALLOW_ALL = SpecPolicy(allow_privileged=True, allow_host_network=True, allow_host_paths=True)


def task(extra: str = "", policy: SpecPolicy | None = None) -> TaskSpec:
    """The single task of a file made of BASE plus `extra` lines."""
    job = parse_spec_text(BASE + dedent(extra), "spec.yaml", policy)
    assert len(job.tasks) == 1
    return job.tasks[0]


def canonical(extra: str = "", policy: SpecPolicy | None = None) -> dict[str, Any]:
    return task(extra, policy).to_dict()

SERVICE_DEFAULTS = {
    "reservations": {"cpus": None, "memory": None}, "healthcheck": None, "depends_on": {},
    "labels": {}, "stop_grace_period": 10.0, "stop_signal": None, "devices": [], "gpus": None,
    "cap_add": [], "cap_drop": [], "secrets": [], "configs": [],
    "update_config": {"parallelism": 1, "delay": 0.0, "failure_action": "pause", "monitor": 5.0,
                      "max_failure_ratio": 0.0, "order": "stop-first"},
    "rollback_config": {"parallelism": 1, "delay": 0.0, "failure_action": "pause", "monitor": 5.0,
                        "max_failure_ratio": 0.0, "order": "stop-first"},
    "platform": None,
}


def test_minimal_task_gets_every_default() -> None:
    assert canonical() == {
        "name": "a", "image": "taskorg/busybox:latest", "command": None, "entrypoint": None,
        "env": {}, "ports": [], "volumes": [],
        "resources": {"cpus": None, "memory": None},
        "constraints": {"labels": {}, "nodes": [], "rules": []},
        "restart": {"policy": "on-failure", "max_attempts": 3, "delay": None, "window": None},
        "replicas": 1, "parallel": 1, "after": [], "privileged": False, "network": "bridge",
        "workdir": None, "user": None, "result_file": None, **SERVICE_DEFAULTS,
    }


def test_single_task_file_is_a_job_named_after_the_task() -> None:
    job = parse_spec_text(BASE)
    assert (job.name, job.seed, [t.name for t in job.tasks]) == ("a", None, ["a"])


def test_full_task_matches_the_documented_canonical_dict() -> None:
    text = """\
        job: site
        tasks:
          - name: prep
            image: taskorg/busybox:latest
          - name: web
            image: taskorg/busybox:latest
            command: sh -c 'httpd -f -p 80'
            env: {K: V}
            ports: ["8080:80"]
            volumes: ["data:/data"]
            resources: {cpus: 0.5, memory: 64M}
            constraints: {labels: {gpu: true}, nodes: [node1]}
            after: [prep]
            healthcheck: {test: "wget -q -O- http://localhost/"}
        """
    web = parse_spec_text(dedent(text)).task("web")
    assert web.to_dict() == {
        "name": "web", "image": "taskorg/busybox:latest",
        "command": ["sh", "-c", "httpd -f -p 80"], "entrypoint": None,
        "env": {"K": "V"}, "ports": [{"host": 8080, "container": 80, "protocol": "tcp", "host_ip": None}],
        "volumes": [{"source": "data", "target": "/data", "read_only": False, "type": "volume", "size": None}],
        "resources": {"cpus": 0.5, "memory": 67108864},
        "constraints": {"labels": {"gpu": "true"}, "nodes": ["node1"], "rules": []},
        "restart": {"policy": "on-failure", "max_attempts": 3, "delay": None, "window": None}, "replicas": 1, "parallel": 1,
        "after": ["prep"], "privileged": False, "network": "bridge", "workdir": None,
        "user": None, "result_file": None, **SERVICE_DEFAULTS,
        "healthcheck": {"test": ["CMD-SHELL", "wget -q -O- http://localhost/"], "interval": 30.0,
                        "timeout": 30.0, "retries": 3, "start_period": 0.0, "start_interval": 5.0},
    }


def test_job_with_seed() -> None:
    job = parse_spec_text("job: nightly\nseed: 42\ntasks:\n  - {name: a, image: x}\n")
    assert job.to_dict() == {"job": "nightly", "seed": 42, "tasks": [job.tasks[0].to_dict()]}


# ---- command, entrypoint ---------------------------------------------------------

@pytest.mark.parametrize("written, words", [
    ("echo hello", ["echo", "hello"]),
    ("sh -c 'echo \"a b\"; exit 0'", ["sh", "-c", 'echo "a b"; exit 0']),
    ("echo $HOME", ["echo", "$HOME"]),  # no variable expansion, unlike compose
    ("[sh, -c, 'echo hi']", ["sh", "-c", "echo hi"]),
    ("[sleep, 10]", ["sleep", "10"]),  # YAML made 10 a number
])
def test_command_forms(written: str, words: list[str]) -> None:
    assert canonical(f"command: {written}\n")["command"] == words


def test_entrypoint_forms() -> None:
    assert canonical("entrypoint: /bin/sh -c\n")["entrypoint"] == ["/bin/sh", "-c"]
    assert canonical("entrypoint: [/bin/sh]\n")["entrypoint"] == ["/bin/sh"]


# ---- env -----------------------------------------------------------------------------

def test_env_mapping_turns_scalars_into_strings() -> None:
    env = canonical("env: {S: text, I: 3, F: 0.5, T: true, N: false, E: ''}\n")["env"]
    assert env == {"S": "text", "I": "3", "F": "0.5", "T": "true", "N": "false", "E": ""}


def test_env_list_of_key_value() -> None:
    env = canonical("env: [A=1, 'B=x=y', C=]\n")["env"]
    assert env == {"A": "1", "B": "x=y", "C": ""}


# ---- ports ------------------------------------------------------------------------------

@pytest.mark.parametrize("written, port", [
    ('"8080:80"', {"host": 8080, "container": 80, "protocol": "tcp", "host_ip": None}),
    ("8080:80", {"host": 8080, "container": 80, "protocol": "tcp", "host_ip": None}),  # not base 60
    ('"8080:80/udp"', {"host": 8080, "container": 80, "protocol": "udp", "host_ip": None}),
    ('"53/UDP"', {"host": None, "container": 53, "protocol": "udp", "host_ip": None}),
    ('"80"', {"host": None, "container": 80, "protocol": "tcp", "host_ip": None}),
    ("80", {"host": None, "container": 80, "protocol": "tcp", "host_ip": None}),
    ("{host: 18080, container: 8080}", {"host": 18080, "container": 8080, "protocol": "tcp", "host_ip": None}),
    ("{container: 53, protocol: udp}", {"host": None, "container": 53, "protocol": "udp", "host_ip": None}),
    ("{host: null, container: 1, protocol: tcp}", {"host": None, "container": 1, "protocol": "tcp", "host_ip": None}),
    ('"65535:65535"', {"host": 65535, "container": 65535, "protocol": "tcp", "host_ip": None}),
])
def test_port_forms(written: str, port: dict[str, Any]) -> None:
    assert canonical(f"ports: [{written}]\n")["ports"] == [port]


def test_same_host_port_for_tcp_and_udp_is_fine() -> None:
    ports = canonical('ports: ["5353:53", "5353:53/udp"]\n')["ports"]
    assert [p["protocol"] for p in ports] == ["tcp", "udp"]


# ---- volumes ----------------------------------------------------------------------------

@pytest.mark.parametrize("written, volume", [
    ("data:/data", {"source": "data", "target": "/data", "read_only": False, "type": "volume", "size": None}),
    ("data:/data:ro", {"source": "data", "target": "/data", "read_only": True, "type": "volume", "size": None}),
    ("my.vol_1:/v:rw", {"source": "my.vol_1", "target": "/v", "read_only": False, "type": "volume", "size": None}),
    ("{source: data, target: /data}",
     {"source": "data", "target": "/data", "read_only": False, "type": "volume", "size": None}),
    ("{source: data, target: /data, read_only: true, type: volume}",
     {"source": "data", "target": "/data", "read_only": True, "type": "volume", "size": None}),
])
def test_named_volume_forms(written: str, volume: dict[str, Any]) -> None:
    assert canonical(f"volumes: [{written}]\n")["volumes"] == [volume]


def test_bind_volumes_when_the_policy_allows_host_paths() -> None:
    policy = SpecPolicy(allow_host_paths=True)
    volumes = canonical('volumes: ["/srv/in:/in:ro", "/srv/out:/out", '
                        '{source: /var/x, target: /x, type: bind}]\n', policy)["volumes"]
    assert volumes == [
        {"source": "/srv/in", "target": "/in", "read_only": True, "type": "bind", "size": None},
        {"source": "/srv/out", "target": "/out", "read_only": False, "type": "bind", "size": None},
        {"source": "/var/x", "target": "/x", "read_only": False, "type": "bind", "size": None},
    ]


# ---- resources, constraints ---------------------------------------------------------------

@pytest.mark.parametrize("written, cpus, memory", [
    ("{cpus: 0.5, memory: 64M}", 0.5, 64 * 2**20),
    ("{cpus: 2, memory: 64Mi}", 2.0, 64 * 2**20),
    ("{cpus: '0.25', memory: 1G}", 0.25, 2**30),
    ("{cpus: 0.01, memory: 6291456}", 0.01, 6 * 2**20),
    ("{cpus: 256, memory: 16Ti}", 256.0, 16 * 2**40),
    ("{memory: 512MB}", None, 512 * 2**20),
    ("{cpus: 1}", 1.0, None),
    ("{}", None, None),
])
def test_resources(written: str, cpus: float | None, memory: int | None) -> None:
    assert canonical(f"resources: {written}\n")["resources"] == {"cpus": cpus, "memory": memory}


def test_cpus_are_stored_as_floats() -> None:
    assert isinstance(task("resources: {cpus: 1}\n").resources.cpus, float)


def test_constraints() -> None:
    constraints = canonical("constraints: {labels: {gpu: true, arch: arm64, cores: 4}, "
                            "nodes: [node1, node2, node1]}\n")["constraints"]
    assert constraints == {"labels": {"gpu": "true", "arch": "arm64", "cores": "4"},
                           "nodes": ["node1", "node2"], "rules": []}


def test_constraint_nodes_may_be_one_name() -> None:
    assert canonical("constraints: {nodes: node3}\n")["constraints"]["nodes"] == ["node3"]


# ---- restart, counts --------------------------------------------------------------------------

@pytest.mark.parametrize("written, restart", [
    ("always", {"policy": "always", "max_attempts": None, "delay": None, "window": None}),
    ("never", {"policy": "never", "max_attempts": None, "delay": None, "window": None}),
    ("on-failure", {"policy": "on-failure", "max_attempts": 3, "delay": None, "window": None}),
    ("on-failure:7", {"policy": "on-failure", "max_attempts": 7, "delay": None, "window": None}),
    ("on-failure:1000", {"policy": "on-failure", "max_attempts": 1000, "delay": None, "window": None}),
    ("{policy: on-failure, max_attempts: 5}", {"policy": "on-failure", "max_attempts": 5, "delay": None, "window": None}),
    ("{policy: on-failure}", {"policy": "on-failure", "max_attempts": 3, "delay": None, "window": None}),
    ("{max_attempts: 2}", {"policy": "on-failure", "max_attempts": 2, "delay": None, "window": None}),
    ("{policy: always, max_attempts: null}", {"policy": "always", "max_attempts": None, "delay": None, "window": None}),
])
def test_restart_forms(written: str, restart: dict[str, Any]) -> None:
    assert canonical(f"restart: {written}\n")["restart"] == restart


def test_replicas_and_parallel_set_the_instance_count() -> None:
    assert task().instance_count == 1
    assert task("replicas: 3\n").instance_count == 3
    assert task("parallel: 8\n").instance_count == 8
    assert task("replicas: 1\nparallel: 1000\n").instance_count == 1000


# ---- the remaining fields ---------------------------------------------------------------

def test_plain_fields() -> None:
    spec = canonical("workdir: /work\nuser: 1000:1000\nresult_file: /out/result.json\n"
                     "network: none\nprivileged: false\n")
    assert (spec["workdir"], spec["user"], spec["result_file"], spec["network"], spec["privileged"]) \
        == ("/work", "1000:1000", "/out/result.json", "none", False)


def test_numeric_user_becomes_a_string() -> None:
    assert canonical("user: 1000\n")["user"] == "1000"


def test_risky_fields_pass_when_the_policy_allows_them() -> None:
    spec = canonical("privileged: true\nnetwork: host\n", ALLOW_ALL)
    assert (spec["privileged"], spec["network"]) == (True, "host")


def test_policy_from_config_reads_the_allow_settings() -> None:
    config = SimpleNamespace(allow_privileged=True, allow_host_network=False, allow_host_paths=True)
    assert SpecPolicy.from_config(config) == SpecPolicy(True, False, True)


# ---- dependencies and order ---------------------------------------------------------------

def job_of(*tasks: str, seed: str = "") -> JobSpec:
    lines = ["job: j", seed] + ["tasks:"] + [f"  - {t}" for t in tasks]
    return parse_spec_text("\n".join(line for line in lines if line) + "\n")


def names(job: JobSpec) -> list[str]:
    return [t.name for t in job.tasks]


def test_tasks_keep_file_order_without_dependencies() -> None:
    assert names(job_of("{name: c, image: x}", "{name: a, image: x}", "{name: b, image: x}")) \
        == ["c", "a", "b"]


def test_dependencies_come_first() -> None:
    job = job_of("{name: report, image: x, after: compute}",
                 "{name: compute, image: x, after: [prepare]}",
                 "{name: prepare, image: x}")
    assert names(job) == ["prepare", "compute", "report"]


def test_diamond_keeps_file_order_among_ready_tasks() -> None:
    job = job_of("{name: end, image: x, after: [left, right]}", "{name: right, image: x, after: start}",
                 "{name: left, image: x, after: start}", "{name: start, image: x}")
    assert names(job) == ["start", "right", "left", "end"]


def test_after_is_deduplicated_and_a_string_means_one_name() -> None:
    job = job_of("{name: a, image: x}", "{name: b, image: x, after: [a, a]}", "{name: c, image: x, after: a}")
    assert (job.task("b").after, job.task("c").after) == (("a",), ("a",))


# ---- canonical round trips and other inputs ---------------------------------------------

FULL_JOB = """\
    job: full
    seed: 7
    tasks:
      - name: base
        image: taskorg/busybox:latest
        restart: never
      - name: all
        image: taskorg/busybox:latest
        command: [sh, -c, "echo hi"]
        entrypoint: /bin/env
        env: [A=1, B=two]
        ports: ["18080:8080", "9000/udp", {container: 7000}]
        volumes: ["data:/data:ro", "/srv:/srv"]
        resources: {cpus: 0.25, memory: 32M}
        constraints: {labels: {arch: arm64}, nodes: [node2]}
        restart: on-failure:4
        parallel: 3
        after: base
        privileged: true
        network: bridge
        workdir: /data
        user: nobody
        result_file: /data/out.json
    """


@pytest.fixture
def full_job() -> JobSpec:
    return parse_spec_text(dedent(FULL_JOB), "full.yaml", ALLOW_ALL)


def test_task_round_trip_through_canonical_dict(full_job: JobSpec) -> None:
    for spec in full_job.tasks:
        assert TaskSpec.from_dict(spec.to_dict()) == spec


def test_canonical_dict_is_json_and_validates_to_the_same_job(full_job: JobSpec) -> None:
    data = json.loads(json.dumps(full_job.to_dict()))
    assert JobSpec.from_dict(data) == full_job
    assert job_from_dict(data, "stored", ALLOW_ALL) == full_job
    assert parse_spec_text(json.dumps(data), "x.json", ALLOW_ALL) == full_job


def test_from_dict_fills_missing_keys_with_defaults() -> None:
    assert TaskSpec.from_dict({"name": "a", "image": "x"}) == TaskSpec(name="a", image="x")


def test_specs_are_hashable_and_compare_by_value(full_job: JobSpec) -> None:
    again = JobSpec.from_dict(full_job.to_dict())
    assert hash(again) == hash(full_job) and {again, full_job} == {full_job}


def test_to_dict_returns_fresh_containers(full_job: JobSpec) -> None:
    spec = full_job.task("all")
    spec.to_dict()["env"]["A"] = "changed"
    assert spec.env["A"] == "1"


def test_json_text_is_accepted() -> None:
    job = parse_spec_text('{"name": "a", "image": "x", "ports": ["80"]}', "a.json")
    assert job.tasks[0].ports[0].container == 80


def test_flow_yaml_that_is_not_json_is_accepted() -> None:
    assert parse_spec_text("{name: a, image: x}").name == "a"


def test_job_from_dict_validates_plain_mappings() -> None:
    assert job_from_dict({"job": "j", "tasks": [{"name": "a", "image": "x"}]}).name == "j"


def test_load_spec_file_reads_utf8_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_bytes("\ufeff".encode() + BASE.encode())
    assert load_spec_file(path).name == "a"
    assert load_spec_file(str(path)).name == "a"


def test_yaml_aliases_and_merge_keys_are_refused() -> None:
    """They multiply parsing work (issue 15); a spec writes its values out."""
    text = """\
        job: j
        tasks:
          - &base {name: a, image: x, resources: {memory: 16M}}
          - {<<: *base, name: b}
        """
    with pytest.raises(SpecError) as info:
        parse_spec_text(dedent(text))
    assert str(info.value) == ("<input>:4: invalid YAML: aliases (*base) are not allowed: "
                               "write the value out where it is used")

"""Compose conversion, piece by piece: interpolation, env files, keys, and where problems point."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from taskorg.spec import SpecError, SpecPolicy, load_spec_file, parse_spec_text
from taskorg.spec.compose import ComposeContext
from taskorg.spec.compose_env import interpolate_text


@pytest.mark.parametrize("text, expected", [
    ("${A}", "1"), ("$A-x", "1-x"), ("${UNSET:-d}", "d"), ("${EMPTY:-d}", "d"), ("${EMPTY-d}", ""),
    ("${UNSET-d}", "d"), ("${A:+yes}", "yes"), ("${UNSET:+yes}", ""), ("$$HOME", "$HOME"),
    ("${UNSET:-${A}}", "1"), ("a$${A}", "a${A}"), ("no variables", "no variables"),
])
def test_interpolation_forms(text: str, expected: str) -> None:
    missing: list[str] = []
    assert interpolate_text(text, {"A": "1", "EMPTY": ""}, missing) == expected
    assert missing == []


def problems(text: str, context: ComposeContext | None = None,
             policy: SpecPolicy | None = None) -> list[tuple[int | None, str, str]]:
    with pytest.raises(SpecError) as info:
        parse_spec_text(dedent(text), "compose.yml", policy, context)
    return [(p.line, p.path, p.message) for p in info.value.problems]


def test_a_required_variable_names_itself_where_it_is_used() -> None:
    text = """\
        services:
          web:
            image: "taskorg/busybox:${TAG:?set TAG to the release}"
        """
    assert problems(text) == [(3, "services.web.image", "variable TAG is required: set TAG to the release")]


def test_an_unset_variable_is_empty_with_one_warning() -> None:
    text = "services:\n  web:\n    image: x\n    environment: [A=$NOPE, B=$NOPE]\n"
    job = parse_spec_text(text, "compose.yml")
    assert job.task("web").env == {"A": "", "B": ""}
    assert job.warnings == ("compose.yml:4: services.web.environment[0]: variable NOPE is not set; "
                            "it becomes an empty string",)


def test_numbers_after_interpolation_are_numbers() -> None:
    text = "services:\n  web:\n    image: x\n    deploy: {replicas: '${N:-3}'}\n"
    assert parse_spec_text(text, "compose.yml").task("web").replicas == 3


def test_env_file_and_environment_beside_the_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TAG=1.2\n")
    (tmp_path / "web.env").write_text("# settings\nexport A=from-file\nB='quoted # not a comment'\nC=x # comment\n")
    (tmp_path / "compose.yaml").write_text(dedent("""\
        services:
          web:
            image: taskorg/busybox:${TAG}
            env_file: web.env
            environment: {A: from-environment, HOME: null}
        """))
    job = load_spec_file(tmp_path / "compose.yaml", environ={"HOME": "/home/me"})
    web = job.task("web")
    assert web.image == "taskorg/busybox:1.2"
    assert web.env == {"A": "from-environment", "B": "quoted # not a comment", "C": "x", "HOME": "/home/me"}
    assert job.name == tmp_path.name.lower()  # compose.yaml: named after its directory


def test_files_beside_the_compose_file_need_the_file() -> None:
    text = "services:\n  web:\n    image: x\n    env_file: web.env\n"
    assert problems(text) == [(4, "services.web.env_file", "web.env is read beside the compose file, which "
                               "is not at hand here: run taskorg convert FILE and submit its output")]


def test_keys_ignored_refused_unknown() -> None:
    text = """\
        services:
          web:
            image: x
            container_name: web1
            sysctls: {net.core.somaxconn: 1024}
            imag: y
            x-notes: anything
        x-common: {a: 1}
        """
    assert problems(text) == [
        (5, "services.web.sysctls", "not supported: not supported yet: set them in the image or on the node"),
        (6, "services.web.imag", "unknown compose service key 'imag' (did you mean 'image'?)")]


def test_problems_point_at_the_compose_key() -> None:
    text = """\
        services:
          web:
            image: x
            deploy:
              replicas: 0
              resources:
                limits: {memory: lots}
                reservations: {cpus: 9000}
              restart_policy: {condition: sometimes}
            healthcheck: {test: [RUN, x]}
            depends_on: {db: {condition: service_healthy}}
          db:
            image: x
        """
    assert problems(text) == [
        (5, "services.web.deploy.replicas", "must be from 1 to 1000, got 0"),
        (7, "services.web.deploy.resources.limits.memory", "must be a size like 64M or 1Gi, got 'lots'"),
        (8, "services.web.deploy.resources.reservations.cpus", "must be from 0.01 to 256, got 9000"),
        (9, "services.web.deploy.restart_policy.condition", "must be none, on-failure or any, got 'sometimes'"),
        (10, "services.web.healthcheck.test", "a list must start with CMD (then the command), CMD-SHELL "
                                               "(then a shell line) or be [NONE], got 'RUN' first"),
        (11, "services.web.depends_on.db", "waits for db to be healthy, but db has no healthcheck")]


def test_compose_restart_and_placement_forms() -> None:
    text = """\
        services:
          a: {image: x, restart: "no"}
          b: {image: x, restart: no}
          c: {image: x, restart: "on-failure:5"}
          d:
            image: x
            deploy:
              restart_policy: {condition: any, max_attempts: 2}
              placement: {constraints: ["node.labels.zone==east", "node.platform.arch != armv7l"]}
          e: {image: x, depends_on: {a: {condition: service_completed_successfully}}, network_mode: none}
        """
    job = parse_spec_text(dedent(text), "compose.yml")
    assert [job.task(n).restart.policy for n in "abcd"] == ["never", "never", "on-failure", "always"]
    assert job.task("c").restart.max_attempts == 5
    d = job.task("d")
    assert dict(d.constraints.labels) == {"zone": "east"}
    assert [str(rule) for rule in d.constraints.rules] == ["node.platform.arch != armv7l"]
    assert job.task("e").after == ("a",) and job.task("e").network == "none"
    assert any("max_attempts: ignored" in w for w in job.warnings)


def test_network_modes_that_share_a_container_are_refused() -> None:
    assert problems("services:\n  a: {image: x, network_mode: 'service:b'}\n  b: {image: x}\n") == [
        (2, "services.a.network_mode", "service:b is not supported: tasks may land on different nodes; "
                                       "they reach each other by name in the cluster DNS")]


def test_global_mode_is_refused() -> None:
    assert problems("services:\n  a: {image: x, deploy: {mode: global}}\n") == [
        (2, "services.a.deploy.mode", "'global' is not supported: taskorg runs replicated services (for one "
                                      "per node, set replicas to the node count and publish a host port)")]


def test_a_compose_job_round_trips_through_its_canonical_form() -> None:
    from taskorg.spec import job_from_dict

    job = parse_spec_text("services:\n  a: {image: x, ports: ['127.0.0.1:8000-8001:80-81/udp'], tmpfs: /run}\n",
                          "c.yml")
    assert job_from_dict(job.to_dict()) == job
    assert [(p.host_ip, p.host, p.container, p.protocol) for p in job.task("a").ports] == [
        ("127.0.0.1", 8000, 80, "udp"), ("127.0.0.1", 8001, 81, "udp")]


def test_long_port_syntax() -> None:
    """Compose's long form: target, published (a string too, or a range over as many ports), host_ip."""
    job = parse_spec_text(dedent("""\
        services:
          a:
            image: x
            ports:
              - {target: 443, published: "8443", protocol: tcp, host_ip: 127.0.0.2, mode: host}
              - {target: 80}
              - {target: 53, published: 5353, protocol: udp}
              - {target: 90-91, published: "9000-9001"}
        """), "c.yml")
    assert [(p.host_ip, p.host, p.container, p.protocol) for p in job.task("a").ports] == [
        ("127.0.0.2", 8443, 443, "tcp"), (None, None, 80, "tcp"), (None, 5353, 53, "udp"),
        (None, 9000, 90, "tcp"), (None, 9001, 91, "tcp")]


def test_a_bad_env_file_beside_the_compose_file_is_named(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("this is not a variable\n")
    (tmp_path / "compose.yaml").write_text("services:\n  web: {image: x}\n")
    with pytest.raises(SpecError) as info:
        load_spec_file(tmp_path / "compose.yaml", environ={})
    assert [p.message for p in info.value.problems] == [
        f"the .env beside the compose file: {tmp_path / '.env'}:1: expected KEY=VALUE, got 'this is not a variable'"]


def test_a_task_with_a_stray_services_key_stays_a_task() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec_text("name: a\nimage: x\nservices: {}\n", "t.yaml")
    assert [(p.path, p.message) for p in info.value.problems] == [
        ("services", "unknown field 'services' (a compose file has only services and its other keys at "
                     "the top, no image)")]


def test_convert_prints_the_taskorg_form_that_submits_as_the_compose_file_does(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    import yaml

    from taskorg.cli.main import main
    (tmp_path / ".env").write_text("TAG=2\n")
    compose = tmp_path / "compose.yaml"
    compose.write_text("name: shop\nservices:\n  web:\n    image: 'img:${TAG}'\n    container_name: web1\n"
                       "    deploy: {replicas: 2}\n")
    assert main(["convert", str(compose)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"# taskorg form of {compose}\n")
    assert "container_name" in err and err.startswith("warning: ")  # warnings apart from the output
    converted = parse_spec_text(out, "converted.yaml")
    assert converted == load_spec_file(compose) and converted.task("web").image == "img:2"
    assert main(["convert", "--json", str(compose)]) == 0
    assert json.loads(capsys.readouterr().out) == yaml.safe_load(out)
    compose.write_text("services:\n  web:\n    build: .\n")
    assert main(["convert", str(compose)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "services.web.build: not supported" in err

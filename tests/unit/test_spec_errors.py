"""Invalid task specs: each problem with its exact path, line and message.

Users fix specs from these messages alone, so the wording is part of the
interface: a change here is a change users see. Each case is a small file
and the complete list of problems it must produce.
"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from taskorg.spec import SpecError, SpecPolicy, SpecProblem, job_from_dict, load_spec_file, parse_spec_text

Problem = tuple[str, int | None, str]
BASE = "name: a\nimage: x\n"  # lines 1-2; a case's extra lines start at line 3


def problems_of(text: str, policy: SpecPolicy | None = None, source: str = "spec.yaml") -> list[Problem]:
    with pytest.raises(SpecError) as info:
        parse_spec_text(text, source, policy)
    assert all(p.source == source for p in info.value.problems)
    return [(p.path, p.line, p.message) for p in info.value.problems]


def task_problems(extra: str, policy: SpecPolicy | None = None) -> list[Problem]:
    return problems_of(BASE + dedent(extra), policy)


# ---- the file as a whole -------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("name: a\n  image: x\n", [("", 2, "invalid YAML: mapping values are not allowed here")]),
    ("name: a\n\timage: x\n",
     [("", 2, "invalid YAML: found character '\\t' that cannot start any token "
              "(while scanning for the next token)")]),
    ("name: a\nimage: x\n---\nname: b\n",
     [("", 3, "invalid YAML: a spec holds one YAML document, but a second one starts here")]),
    ("name: [a\n", [("", 2, "invalid YAML: expected ',' or ']', but got '<stream end>' "
                            "(while parsing a flow sequence)")]),
    ("name: !!python/object:os.system x\n",
     [("", 1, "invalid YAML: the tag !!python/object:os.system is not allowed: a spec holds "
              "strings, numbers, booleans, null, lists and mappings")]),
], ids=["indent", "tab", "two-documents", "unclosed", "unsafe-tag"])
def test_malformed_yaml_names_its_line(text: str, expected: list[Problem]) -> None:
    assert problems_of(text) == expected


@pytest.mark.parametrize("text", ["", "  \n\n", "# only a comment\n", "---\n", "--- # nothing\n..."])
def test_empty_file(text: str) -> None:
    assert problems_of(text) == [
        ("", None, "the spec is empty: expected a task (name, image, ...) or a job (job, tasks)")]


@pytest.mark.parametrize("text, got", [
    ("- name: a\n  image: x\n", "a list (several tasks go in a job: job: NAME, tasks: [...])"),
    ("hello\n", "'hello'"),
    ("42\n", "42"),
])
def test_top_level_must_be_a_mapping(text: str, got: str) -> None:
    assert problems_of(text) == [
        ("", 1, f"the top level must be a mapping: a task (name, image, ...), a job (job, tasks) "
                f"or a compose file (services), got {got}")]


def test_control_characters_are_refused_with_their_line() -> None:
    assert problems_of("name: a\nimage: x\x00\n") == [
        ("", 2, "invalid YAML: the control character U+0000 is not allowed")]


def test_text_that_is_neither_json_nor_yaml_gets_the_likelier_error() -> None:
    assert problems_of("{[1]: x}") == [("", 1, "invalid YAML: found unhashable key (while constructing a mapping)")]
    assert problems_of('{"name": "a" "image": "x"}') == [
        ("", 1, "invalid JSON: Expecting ',' delimiter (column 14)")]


def test_malformed_json_names_its_line() -> None:
    assert problems_of('{\n  "name": "a",\n  "image": "x",,\n}') == [
        ("", 3, "invalid JSON: Expecting property name enclosed in double quotes (column 16)")]


def test_json_problems_have_no_line() -> None:
    assert problems_of('{"name": "a", "image": "x", "replicas": 0}') == [
        ("replicas", None, "must be from 1 to 1000, got 0")]


def test_duplicate_keys_are_reported() -> None:
    assert problems_of("name: a\nimage: x\nimage: y\n") == [
        ("image", 3, "duplicate key (first set at line 2)")]
    assert problems_of('{"name": "a", "image": "x", "name": "b"}') == [
        ("", None, "duplicate key 'name' in a JSON object")]


def test_error_text_is_one_line_per_problem() -> None:
    text = "job: web\ntasks:\n  - name: web\n    image: x\n    resources:\n      cpus: 0\n      memory: lots\n"
    with pytest.raises(SpecError) as info:
        parse_spec_text(text, "examples/web.yaml")
    assert str(info.value) == (
        "examples/web.yaml:6: tasks[0].resources.cpus: must be from 0.01 to 256, got 0\n"
        "examples/web.yaml:7: tasks[0].resources.memory: must be a size like 64M or 1Gi, got 'lots'")
    assert info.value.to_dicts()[1] == {
        "source": "examples/web.yaml", "path": "tasks[0].resources.memory", "line": 7,
        "message": "must be a size like 64M or 1Gi, got 'lots'"}


def test_problem_text_without_line_or_path() -> None:
    assert str(SpecProblem("a.json", "replicas", None, "bad")) == "a.json: replicas: bad"
    assert str(SpecProblem("a.yaml", "", 3, "bad")) == "a.yaml:3: bad"


def test_every_problem_of_a_file_is_reported_in_line_order() -> None:
    text = """\
        job: j
        tasks:
          - name: b
            image: x
            after: [c]
          - name: c
            image: x
            replicas: 0
            after: b
        """
    assert problems_of(dedent(text)) == [
        ("tasks[0].after", 5, "dependency cycle: b -> c -> b"),
        ("tasks[1].replicas", 8, "must be from 1 to 1000, got 0"),
    ]


# ---- fields in general ------------------------------------------------------------------------

@pytest.mark.parametrize("extra, expected", [
    ("imagee: y\n", [("imagee", 3, "unknown field 'imagee' (did you mean 'image'?)")]),
    ("replica: 2\n", [("replica", 3, "unknown field 'replica' (did you mean 'replicas'?)")]),
    ("colour: blue\n", [("colour", 3, "unknown field 'colour'")]),
    ("environment: {A: 1}\n", [("environment", 3, "unknown field 'environment' (did you mean 'env'?)")]),
    ("depend_on: [b]\n", [("depend_on", 3, "unknown field 'depend_on' (did you mean 'depends_on'?)")]),
    ("memory: 64M\n", [("memory", 3, "unknown field 'memory' (write resources: {memory: ...})")]),
    ("seed: 1\n", [("seed", 3, "unknown field 'seed' (a seed belongs to a job: write job, seed and tasks)")]),
])
def test_unknown_fields_are_named_with_a_suggestion(extra: str, expected: list[Problem]) -> None:
    assert task_problems(extra) == expected


@pytest.mark.parametrize("text, expected", [
    ("image: x\n", [("name", 1, "is required (a name like web: 1 to 63 lowercase letters, digits, "
                                "'_', '.' or '-', starting with a letter or digit)")]),
    ("name: a\n", [("image", 1, "is required (the container image, like taskorg/busybox:latest)")]),
    ("name: a\nimage:\n", [("image", 2, "is required (the container image, like taskorg/busybox:latest)")]),
    ("name: Web\nimage: x\n", [("name", 1, "must be 1 to 63 lowercase letters, digits, '_', '.' or '-', "
                                           "starting with a letter or digit, got 'Web'")]),
    ("name: -a\nimage: x\n", [("name", 1, "must be 1 to 63 lowercase letters, digits, '_', '.' or '-', "
                                          "starting with a letter or digit, got '-a'")]),
    (f"name: {'a' * 64}\nimage: x\n", [("name", 1, "must be 1 to 63 lowercase letters, digits, '_', '.' "
                                                   f"or '-', starting with a letter or digit, got '{'a' * 60}...'")]),
    ("name: 7\nimage: x\n", [("name", 1, "must be a string, got 7")]),
    ("name: a\nimage: ''\n", [("image", 2, "must not be empty")]),
    ("name: a\nimage: [x]\n", [("image", 2, "must be a string, got a list")]),
    ("name: a\nimage: my image\n", [("image", 2, "must be an image reference like "
                                                 "taskorg/busybox:latest, got 'my image'")]),
], ids=["no-name", "no-image", "null-image", "uppercase", "dash", "too-long", "int-name",
        "empty-image", "list-image", "space-image"])
def test_name_and_image(text: str, expected: list[Problem]) -> None:
    assert problems_of(text) == expected


# ---- command, env ------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, expected", [
    ("command: {run: x}\n", [("command", 3, "must be a string or a list of strings, got a mapping")]),
    ("command: ''\n", [("command", 3, "must not be empty (leave it out to use the image's default)")]),
    ("command: []\n", [("command", 3, "must not be empty (leave it out to use the image's default)")]),
    ("command: echo 'hi\n", [("command", 3, "cannot be split into words: no closing quotation")]),
    ("command: [sleep, 0.5, null]\n", [("command[1]", 3, "must be a string, got 0.5"),
                                       ("command[2]", 3, "must be a string, got null")]),
    ("entrypoint: 3\n", [("entrypoint", 3, "must be a string or a list of strings, got 3")]),
])
def test_command(extra: str, expected: list[Problem]) -> None:
    assert task_problems(extra) == expected


@pytest.mark.parametrize("extra, expected", [
    ("env: A=1\n", [("env", 3, "must be a mapping or a list of KEY=VALUE strings, got 'A=1'")]),
    ("env: [FOO]\n", [("env[0]", 3, "must be a KEY=VALUE string, got 'FOO'")]),
    ("env: [3]\n", [("env[0]", 3, "must be a KEY=VALUE string, got 3")]),
    ("env: [A=1, B=2, A=3]\n", [("env[2]", 3, "A is set twice (first at env[0])")]),
    ("env: ['=x']\n", [("env[0]", 3, "invalid variable name '': it must not be empty or hold '=', spaces or NUL")]),
    ("env: {'A B': 1}\n", [("env['A B']", 3, "invalid variable name 'A B': it must not be empty "
                                             "or hold '=', spaces or NUL")]),
    ("env: {TASKORG_SEED: 1}\n", [("env.TASKORG_SEED", 3, "the name 'TASKORG_SEED' is reserved: names starting "
                                  "with TASKORG_ are for the variables taskorg sets (TASKORG_INDEX, TASKORG_COUNT, "
                                  "TASKORG_SEED, ...)")]),
    ("env:\n  A:\n", [("env.A", 4, "A has no value (write '' for an empty string)")]),
    ("env:\n  A: [1]\n", [("env.A", 4, "the value of A must be a string, number or boolean, got a list")]),
    ("env: {1: x}\n", [("env.1", 3, "variable names must be strings, got 1")]),
])
def test_env(extra: str, expected: list[Problem]) -> None:
    assert task_problems(extra) == expected


# ---- ports, volumes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, expected", [
    ("ports: 80\n", [("ports", 3, "must be a list, got 80")]),
    ("ports: [http]\n", [("ports[0]", 3, "must be like 8080:80, 8080:80/udp, 127.0.0.1:8080:80, 8000-8009:8000-8009 or 80, got 'http'")]),
    ("ports: ['999.0.0.1:80:80']\n", [("ports[0]", 3, "host_ip must be an IP address like 127.0.0.1, "
                                                      "got '999.0.0.1'")]),
    ("ports: ['8000-8010:80']\n", [("ports[0]", 3, "the host range has 11 ports but the container "
                                                    "range 1, got '8000-8010:80'")]),
    ("ports: ['8000-8200:8000-8200']\n", [("ports[0]", 3, "container port range 8000-8200 holds more "
                                                           "than 100 ports")]),
    ("ports: ['70000:80']\n", [("ports[0]", 3, "host port must be from 1 to 65535, got 70000")]),
    ("ports: ['8080:0']\n", [("ports[0]", 3, "container port must be from 1 to 65535, got 0")]),
    ("ports: [0]\n", [("ports[0]", 3, "port must be from 1 to 65535, got 0")]),
    ("ports: ['80/sctp']\n", [("ports[0]", 3, "protocol must be tcp or udp, got 'sctp'")]),
    ("ports: [true]\n", [("ports[0]", 3, "must be like 8080:80, 8080:80/udp, 127.0.0.1:8080:80, 8000-8009:8000-8009 or 80 or a mapping "
                                         "with host, container and protocol, got true")]),
    ("ports:\n  - host: 8080\n", [("ports[0].container", 4, "is required (the port inside the container, like 80)")]),
    ("ports:\n  - {container: 80, host: x, proto: tcp}\n",
     [("ports[0].proto", 4, "unknown field 'proto' (did you mean 'protocol'?)"),
      ("ports[0].host", 4, "must be an integer, got 'x'")]),
    ("ports:\n  - {target: 80}\n", [("ports[0].target", 4, "unknown field 'target' (did you mean 'container'?)"),
                                    ("ports[0].container", 4, "is required (the port inside the container, like 80)")]),
    ("ports:\n  - '8080:80'\n  - 9000\n  - {host: 8080, container: 81}\n",
     [("ports[2]", 6, "host port 8080/tcp is already used by ports[0]")]),
    ("network: host\nports: ['80']\n", [
        ("network", 3, "host networking is refused by the cluster policy "
                       "(the cluster setting allow_host_network: true allows it)"),
        ("ports", 4, "cannot be published with network: host (the container uses the node's ports directly)")]),
    ("network: none\nports: ['80']\n", [
        ("ports", 4, "cannot be published with network: none (the container has no network)")]),
])
def test_ports(extra: str, expected: list[Problem]) -> None:
    assert task_problems(extra) == expected


FORMS = "must be like name:/path, name:/path:ro or /host/path:/path"


@pytest.mark.parametrize("extra, expected", [
    ("volumes: data:/data\n", [("volumes", 3, "must be a list, got 'data:/data'")]),
    ("volumes: [data]\n", [("volumes[0]", 3, f"{FORMS}, got 'data'")]),
    ("volumes: ['a:/b:ro:z']\n", [("volumes[0]", 3, f"{FORMS}, got 'a:/b:ro:z'")]),
    ("volumes: [3]\n", [("volumes[0]", 3, f"{FORMS}, got 3")]),
    ("volumes: ['./data:/data']\n", [("volumes[0]", 3, "host path './data' must be absolute "
                                                       "(a relative path means nothing on a cluster node)")]),
    ("volumes: ['~/data:/data']\n", [("volumes[0]", 3, "host path '~/data' must be absolute "
                                                       "(a relative path means nothing on a cluster node)")]),
    ("volumes: ['d:/data']\n", [("volumes[0]", 3, "volume name 'd' must be 2 or more letters, digits, "
                                                  "'_', '.' or '-', starting with a letter or digit")]),
    ("volumes: [':/data']\n", [("volumes[0]", 3, "has no source: write a volume name or an absolute "
                                                 "host path before the ':'")]),
    ("volumes: ['data:data']\n", [("volumes[0]", 3, "target 'data' must be an absolute path in the container")]),
    ("volumes: ['data:/']\n", [("volumes[0]", 3, "target must not be / (the container's root)")]),
    ("volumes: ['data:/d:rx']\n", [("volumes[0]", 3, "mode must be ro or rw, got 'rx'")]),
    ("volumes:\n  - data:/d\n  - other:/d/\n", [("volumes[1]", 5, "target /d/ is already used by volumes[0]")]),
    ("volumes:\n  - {source: data}\n", [("volumes[0].target", 4, "is required (like /data)")]),
    ("volumes:\n  - {source: data, target: /d, type: bind}\n",
     [("volumes[0].type", 4, "is bind but the source 'data' is a volume name")]),
    ("volumes:\n  - {source: data, target: /d, read_only: 1}\n",
     [("volumes[0].read_only", 4, "must be true or false, got 1")]),
    ("volumes: ['/srv/data:/data']\n",
     [("volumes[0]", 3, "host path /srv/data is refused by the cluster policy "
                        "(the cluster setting allow_host_paths: true allows it)")]),
])
def test_volumes(extra: str, expected: list[Problem]) -> None:
    assert task_problems(extra) == expected


# ---- resources, constraints ---------------------------------------------------------------------------

@pytest.mark.parametrize("extra, expected", [
    ("resources: 2\n", [("resources", 3, "must be a mapping, got 2")]),
    ("resources: {cpu: 1}\n", [("resources.cpu", 3, "unknown field 'cpu' (did you mean 'cpus'?)")]),
    ("resources: {cpus: 0}\n", [("resources.cpus", 3, "must be from 0.01 to 256, got 0")]),
    ("resources: {cpus: -1}\n", [("resources.cpus", 3, "must be from 0.01 to 256, got -1")]),
    ("resources: {cpus: 0.001}\n", [("resources.cpus", 3, "must be from 0.01 to 256, got 0.001")]),
    ("resources: {cpus: 1000}\n", [("resources.cpus", 3, "must be from 0.01 to 256, got 1000")]),
    ("resources: {cpus: lots}\n", [("resources.cpus", 3, "must be a number of CPUs like 0.5, got 'lots'")]),
    ("resources: {cpus: .nan}\n", [("resources.cpus", 3, "must be a number of CPUs like 0.5, got nan")]),
    ("resources: {cpus: true}\n", [("resources.cpus", 3, "must be a number of CPUs like 0.5, got true")]),
    ("resources: {memory: lots}\n", [("resources.memory", 3, "must be a size like 64M or 1Gi, got 'lots'")]),
    ("resources: {memory: -64M}\n", [("resources.memory", 3, "must be a size like 64M or 1Gi, got '-64M'")]),
    ("resources: {memory: -1}\n", [("resources.memory", 3, "must be a size like 64M or 1Gi, got -1")]),
    ("resources: {memory: 1.5}\n", [("resources.memory", 3, "must be a size like 64M or 1Gi, got 1.5")]),
    ("resources: {memory: 64X}\n", [("resources.memory", 3, "must be a size like 64M or 1Gi, got '64X'")]),
    ("resources: {memory: 0}\n", [("resources.memory", 3, "must be at least 6Mi, got 0")]),
    ("resources: {memory: 4M}\n", [("resources.memory", 3, "must be at least 6Mi, got '4M'")]),
    ("resources: {memory: 17T}\n", [("resources.memory", 3, "must be at most 16Ti, got '17T'")]),
    ("resources:\n  cpus: 0\n  memory: 1k\n", [("resources.cpus", 4, "must be from 0.01 to 256, got 0"),
                                                 ("resources.memory", 5, "must be at least 6Mi, got '1k'")]),
])
def test_resources(extra: str, expected: list[Problem]) -> None:
    assert task_problems(extra) == expected


@pytest.mark.parametrize("extra, expected", [
    ("constraints: [gpu]\n", [("constraints", 3, "must be a mapping, got a list")]),
    ("constraints: {label: {gpu: true}}\n",
     [("constraints.label", 3, "unknown field 'label' (did you mean 'labels'?)")]),
    ("constraints: {labels: [gpu]}\n", [("constraints.labels", 3, "must be a mapping, got a list")]),
    ("constraints:\n  labels: {gpu: null}\n",
     [("constraints.labels.gpu", 4, "must be a string, number or boolean, got null")]),
    ("constraints:\n  nodes: [node1, worker-2, 3]\n",
     [("constraints.nodes[1]", 4, "must be a node name like node1, got 'worker-2'"),
      ("constraints.nodes[2]", 4, "must be a node name like node1, got 3")]),
    ("constraints: {nodes: node1.taskorg.internal}\n",
     [("constraints.nodes", 3, "must be a node name like node1, got 'node1.taskorg.internal'")]),
])
def test_constraints(extra: str, expected: list[Problem]) -> None:
    assert task_problems(extra) == expected


# ---- restart, counts, the remaining fields -------------------------------------------------------------

RESTART = "must be always, never, on-failure or on-failure:N, or a mapping with policy and max_attempts"


@pytest.mark.parametrize("extra, expected", [
    ("restart: sometimes\n", [("restart", 3, f"{RESTART}, got 'sometimes'")]),
    ("restart: 'no'\n", [("restart", 3, f"{RESTART}, got 'no' (write never)")]),
    ("restart: no\n", [("restart", 3, f"{RESTART}, got false (YAML reads a bare no as false; write never)")]),
    ("restart: unless-stopped\n", [("restart", 3, f"{RESTART}, got 'unless-stopped' (write always)")]),
    ("restart: on-failure:x\n", [("restart", 3, "must be always, never, on-failure or on-failure:N, "
                                                "got 'on-failure:x'")]),
    ("restart: on-failure:0\n", [("restart", 3, "max_attempts must be from 1 to 1000, got 0")]),
    ("restart: always:3\n", [("restart", 3, f"{RESTART}, got 'always:3'")]),
    ("restart: {policy: always, max_attempts: 3}\n",
     [("restart.max_attempts", 3, "is only allowed with policy on-failure, not always")]),
    ("restart: {policy: sometimes}\n", [("restart.policy", 3, "must be always, never or on-failure, got 'sometimes'")]),
    ("restart: {max_attempts: 1001}\n", [("restart.max_attempts", 3, "max_attempts must be from 1 to 1000, got 1001")]),
    ("restart: {max_attempts: many}\n", [("restart.max_attempts", 3, "max_attempts must be an integer, got 'many'")]),
    ("restart: {attempts: 2}\n", [("restart.attempts", 3, "unknown field 'attempts' (did you mean 'max_attempts'?)")]),
])
def test_restart(extra: str, expected: list[Problem]) -> None:
    assert task_problems(extra) == expected


@pytest.mark.parametrize("extra, expected", [
    ("replicas: 0\n", [("replicas", 3, "must be from 1 to 1000, got 0")]),
    ("replicas: 1001\n", [("replicas", 3, "must be from 1 to 1000, got 1001")]),
    ("replicas: '2'\n", [("replicas", 3, "must be an integer, got '2'")]),
    ("replicas: true\n", [("replicas", 3, "must be an integer, got true")]),
    ("parallel: -1\n", [("parallel", 3, "must be from 1 to 1000, got -1")]),
    ("replicas: 2\nparallel: 3\n",
     [("parallel", 4, "cannot be combined with replicas: 2 (replicas run identical copies, "
                      "parallel splits one piece of work in parts; choose one)")]),
    ("privileged: yes please\n", [("privileged", 3, "must be true or false, got 'yes please'")]),
    ("privileged: true\n", [("privileged", 3, "privileged containers are refused by the cluster policy "
                                              "(the cluster setting allow_privileged: true allows them)")]),
    ("network: overlay\n", [("network", 3, "must be bridge, host or none, got 'overlay'")]),
    ("workdir: tmp\n", [("workdir", 3, "must be an absolute path in the container, got 'tmp'")]),
    ("user: ''\n", [("user", 3, "must be a user name or uid like 1000 or 1000:1000, got ''")]),
    ("user: -1\n", [("user", 3, "must be a user name or uid like 1000 or 1000:1000, got -1")]),
    ("result_file: out.json\n", [("result_file", 3, "must be an absolute path in the container, got 'out.json'")]),
    ("result_file: /out/\n", [("result_file", 3, "must be a file, not a directory, got '/out/'")]),
])
def test_counts_and_plain_fields(extra: str, expected: list[Problem]) -> None:
    assert task_problems(extra) == expected


def test_policy_refusals_all_at_once() -> None:
    extra = "privileged: true\nnetwork: host\nvolumes: ['/:/host']\n"
    assert [path for path, _, _ in task_problems(extra)] == ["privileged", "network", "volumes[0]"]
    assert task_problems(extra, SpecPolicy(allow_privileged=True, allow_host_network=True)) == [
        ("volumes[0]", 5, "host path / is refused by the cluster policy "
                          "(the cluster setting allow_host_paths: true allows it)")]


# ---- jobs: structure, names, dependencies ---------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("tasks:\n  - {name: a, image: x}\n", [("job", 1, "is required (a name like nightly: 1 to 63 lowercase "
                                                      "letters, digits, '_', '.' or '-', starting with a letter "
                                                      "or digit)")]),
    ("job: j\n", [("tasks", 1, "is required (a list of tasks)")]),
    ("job: j\ntasks: []\n", [("tasks", 2, "must hold at least one task")]),
    ("job: j\ntasks: {name: a}\n", [("tasks", 2, "must be a list of tasks, got a mapping")]),
    ("job: j\ntasks:\n  - a\n", [("tasks[0]", 3, "a task must be a mapping with a name and an image, got 'a'")]),
    ("job: J\ntasks:\n  - {name: a, image: x}\n",
     [("job", 1, "must be 1 to 63 lowercase letters, digits, '_', '.' or '-', starting with a letter or digit, "
                 "got 'J'")]),
    ("job: j\nseed: yes\ntasks:\n  - {name: a, image: x}\n", [("seed", 2, "must be an integer, got true")]),
    ("job: j\nseed: '7'\ntasks:\n  - {name: a, image: x}\n", [("seed", 2, "must be an integer, got '7'")]),
    (f"job: j\nseed: {2**63}\ntasks:\n  - {{name: a, image: x}}\n",
     [("seed", 2, f"must fit in 64 bits, got {2**63}")]),
    ("job: j\nimage: x\ntasks:\n  - {name: a, image: x}\n",
     [("image", 2, "unknown field 'image' (task fields go inside a task, in the tasks list)")]),
    ("name: j\ntasks:\n  - {name: a, image: x}\n",
     [("name", 1, "unknown field 'name' (a job is named with job: NAME)"),
      ("job", 1, "is required (a name like nightly: 1 to 63 lowercase letters, digits, '_', '.' or '-', "
                 "starting with a letter or digit)")]),
    ("job: j\nstuff: 1\ntasks:\n  - {name: a, image: x}\n",
     [("stuff", 2, "unknown field 'stuff' (known fields: job, seed, tasks)")]),
], ids=["no-job-name", "no-tasks", "empty-tasks", "tasks-mapping", "task-string", "bad-job-name",
        "bool-seed", "string-seed", "huge-seed", "task-field-in-job", "name-for-job", "unknown-job-field"])
def test_job_structure(text: str, expected: list[Problem]) -> None:
    assert problems_of(text) == expected


def test_missing_fields_point_at_their_task() -> None:
    text = "job: j\ntasks:\n  - name: a\n    image: x\n  - command: echo\n    restart: never\n"
    assert problems_of(text) == [
        ("tasks[1].name", 5, "is required (a name like web: 1 to 63 lowercase letters, digits, '_', '.' "
                             "or '-', starting with a letter or digit)"),
        ("tasks[1].image", 5, "is required (the container image, like taskorg/busybox:latest)"),
    ]


def test_duplicate_task_names() -> None:
    text = "job: j\ntasks:\n  - {name: a, image: x}\n  - {name: b, image: x}\n  - {name: a, image: y}\n"
    assert problems_of(text) == [("tasks[2].name", 5, "duplicate task name 'a' (already used by tasks[0])")]


@pytest.mark.parametrize("after, expected", [
    ("[prepre]", [("tasks[1].after[0]", 4, "unknown task 'prepre' (did you mean 'prepare'?)")]),
    ("zz", [("tasks[1].after", 4, "unknown task 'zz' (tasks in this job: prepare, compute)")]),
    ("[prepare, zz, yy]", [("tasks[1].after[1]", 4, "unknown task 'zz' (tasks in this job: prepare, compute)"),
                           ("tasks[1].after[2]", 4, "unknown task 'yy' (tasks in this job: prepare, compute)")]),
    ("[compute]", [("tasks[1].after", 4, "dependency cycle: compute -> compute")]),
    ("{a: b}", [("tasks[1].after", 4, "must be a task name or a list of them, got a mapping")]),
    ("[prepare, 3]", [("tasks[1].after[1]", 4, "must be a task name, got 3")]),
])
def test_dependencies(after: str, expected: list[Problem]) -> None:
    text = f"job: j\ntasks:\n  - {{name: prepare, image: x}}\n  - {{name: compute, image: x, after: {after}}}\n"
    assert problems_of(text) == expected


def test_unknown_dependency_in_a_single_task_file() -> None:
    assert task_problems("after: [setup]\n") == [("after[0]", 3, "unknown task 'setup' (tasks in this job: a)")]


def test_cycles_are_named_from_the_first_task_in_the_file() -> None:
    text = """\
        job: j
        tasks:
          - {name: ok, image: x}
          - {name: a, image: x, after: [ok, c]}
          - {name: b, image: x, after: [a]}
          - {name: c, image: x, after: [b]}
          - {name: d, image: x, after: [e]}
          - {name: e, image: x, after: [d]}
        """
    assert problems_of(dedent(text)) == [
        ("tasks[1].after", 4, "dependency cycle: a -> c -> b -> a"),
        ("tasks[4].after", 7, "dependency cycle: d -> e -> d"),
    ]


# ---- other entry points ------------------------------------------------------------------------------

def test_job_from_dict_reports_without_lines() -> None:
    with pytest.raises(SpecError) as info:
        job_from_dict({"job": "j", "tasks": [{"name": "a", "image": "x", "ports": ["x"]}]}, "api")
    assert str(info.value) == "api: tasks[0].ports[0]: must be like 8080:80, 8080:80/udp, 127.0.0.1:8080:80, 8000-8009:8000-8009 or 80, got 'x'"


def test_job_from_dict_refuses_a_non_mapping() -> None:
    with pytest.raises(SpecError):
        job_from_dict(["a"])  # type: ignore[arg-type]


def test_load_spec_file_names_the_path_as_given(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: a\n")
    with pytest.raises(SpecError) as info:
        load_spec_file(path)
    assert str(info.value) == f"{path}:1: image: is required (the container image, like taskorg/busybox:latest)"


def test_load_spec_file_missing_or_binary(tmp_path: Path) -> None:
    missing = tmp_path / "none.yaml"
    with pytest.raises(SpecError) as info:
        load_spec_file(missing)
    assert str(info.value) == f"{missing}: cannot read the spec: No such file or directory"
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"name: \xff\n")
    with pytest.raises(SpecError) as info:
        load_spec_file(binary)
    assert str(info.value) == f"{binary}: not UTF-8 text (bad byte at offset 6)"


def test_policy_is_applied_by_every_entry_point(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(BASE + "privileged: true\n")
    allow = SpecPolicy(allow_privileged=True)
    assert load_spec_file(path, allow).tasks[0].privileged
    assert job_from_dict({"name": "a", "image": "x", "privileged": True}, policy=allow).tasks[0].privileged
    with pytest.raises(SpecError):
        job_from_dict({"name": "a", "image": "x", "privileged": True})

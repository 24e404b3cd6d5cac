"""The public compose files in tests/compose: each is accepted with what it asks for, or refused
with exactly the lines docs/spec.md promises (one per unsupported key or value).

Conversion only; tests/cluster/test_compose_files.py runs them on a local cluster and checks Docker's
view of their containers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from taskorg.spec import JobSpec, SpecError, SpecPolicy, job_from_dict, load_spec_file

FILES = Path(__file__).resolve().parents[1] / "compose"
MiB = 2**20


def load(name: str, policy: SpecPolicy | None = None) -> JobSpec:
    path = next(p for p in sorted((FILES / name).iterdir()) if p.suffix in (".yml", ".yaml"))
    job = load_spec_file(path, policy, environ={})
    assert job_from_dict(job.to_dict(), "stored", policy) == job  # the taskorg form is itself valid
    return job


def refusals(name: str) -> list[tuple[int | None, str, str]]:
    path = next(p for p in sorted((FILES / name).iterdir()) if p.suffix in (".yml", ".yaml"))
    with pytest.raises(SpecError) as info:
        load_spec_file(path, environ={})
    return [(p.line, p.path, p.message.split(":")[0]) for p in info.value.problems]


def test_there_are_at_least_eight_files_each_naming_its_origin() -> None:
    files = [p for p in FILES.glob("*/*") if p.suffix in (".yml", ".yaml")]
    assert len(files) >= 8
    for path in files:
        assert path.read_text().startswith("# From"), path
        images = [line.split("image:")[1].strip() for line in path.read_text().splitlines()
                  if line.strip().startswith("image:")]
        assert images and set(images) == {"taskorg/busybox:latest"}, path


def test_gitea_postgres() -> None:
    job = load("gitea-postgres")
    assert job.name == "gitea-postgres"
    assert [t.name for t in job.tasks] == ["gitea", "db"]
    gitea = job.task("gitea")
    assert gitea.restart.policy == "always" and gitea.env["DB_HOST"] == "db:5432"
    assert [(p.host, p.container) for p in gitea.ports] == [(3000, 3000)]
    assert [(v.source, v.target) for v in job.task("db").volumes] == [("db_data", "/var/lib/postgresql/data")]
    assert [w.split(": ", 1)[1] for w in job.warnings] == [
        "services.db.expose: ignored: documentation only; publish with ports"]
    assert job.warnings[0].split(": ")[0].endswith("gitea-postgres/compose.yaml:27")


def test_nginx_flask_mysql_waits_for_health_and_mounts_its_secret() -> None:
    job = load("nginx-flask-mysql")
    assert [t.name for t in job.tasks] == ["db", "backend", "proxy"]  # dependencies first
    db, backend, proxy = job.tasks
    assert db.healthcheck is not None
    assert db.healthcheck.test == ("CMD-SHELL", 'mysqladmin ping -h 127.0.0.1 '
                                   '--password="$(cat /run/secrets/db-password)" --silent')  # $$ -> $
    assert (db.healthcheck.interval, db.healthcheck.timeout, db.healthcheck.retries,
            db.healthcheck.start_period) == (10.0, 5.0, 3, 30.0)
    assert dict(backend.depends_on) == {"db": "healthy"} and dict(proxy.depends_on) == {"backend": "healthy"}
    assert [(s.name, s.target, s.content) for s in db.secrets] == [
        ("db-password", "/run/secrets/db-password", "db-78n9n\n")]
    assert db.restart.policy == "always"  # unless-stopped
    assert sum("ignored" in w for w in job.warnings) == len(job.warnings) == 10


def test_postgresql_pgadmin_takes_its_variables_from_the_env_file_beside_it() -> None:
    job = load("postgresql-pgadmin")
    assert job.task("postgres").env == {"POSTGRES_USER": "yourUser", "POSTGRES_PASSWORD": "changeit",
                                        "POSTGRES_DB": "postgres"}
    assert job.task("pgadmin").env["PGADMIN_DEFAULT_EMAIL"] == "your@email.com"


def test_the_environment_wins_over_the_env_file(tmp_path: Path) -> None:
    path = FILES / "postgresql-pgadmin" / "compose.yaml"
    job = load_spec_file(path, environ={"POSTGRES_PW": "from-the-shell"})
    assert job.task("postgres").env["POSTGRES_PASSWORD"] == "from-the-shell"


def test_example_voting_app_stack_with_host_paths_allowed() -> None:
    job = load("example-voting-app", SpecPolicy(allow_host_paths=True))
    assert job.name == "docker-stack"
    replicas = {t.name: t.replicas for t in job.tasks}
    assert replicas == {"redis": 2, "db": 1, "vote": 2, "result": 2, "worker": 1, "visualizer": 1}
    redis, worker = job.task("redis"), job.task("worker")
    assert (redis.update_config.parallelism, redis.update_config.delay) == (2, 10.0)
    assert (redis.restart.policy, redis.restart.max_attempts) == ("on-failure", 3)  # taskorg's default
    assert (worker.restart.delay, worker.restart.max_attempts, worker.restart.window) == (10.0, 3, 120.0)
    assert dict(worker.labels) == {"APP": "VOTING"}
    assert job.task("visualizer").stop_grace_period == 90.0
    assert dict(job.task("vote").depends_on) == {"redis": "started"}
    assert job.task("redis").ports[0].host is None  # "6379": Docker chooses the host port
    assert any("node.role" not in w and "no roles" in w for w in job.warnings)


def test_compose_spec_deploy_examples() -> None:
    job = load("compose-spec-deploy")
    frontend = job.task("frontend")
    assert frontend.replicas == 6
    assert (frontend.resources.cpus, frontend.resources.memory) == (0.5, 50 * MiB)
    assert (frontend.reservations.cpus, frontend.reservations.memory) == (0.25, 20 * MiB)
    assert (frontend.restart.policy, frontend.restart.delay, frontend.restart.window) == ("on-failure", 5.0, 120.0)
    assert frontend.update_config.order == "stop-first"
    assert frontend.labels["com.example.description"].startswith("This label")
    assert dict(job.task("web").depends_on) == {"db": "healthy", "redis": "started"}
    db = job.task("db").healthcheck
    assert db is not None and (db.interval, db.start_interval) == (90.0, 5.0)
    gpus = job.task("model").gpus
    assert gpus is not None and (gpus.driver, gpus.count, gpus.capabilities) == ("3dfx", 2, ("gpu",))
    assert [t.name for t in job.tasks].index("web") > [t.name for t in job.tasks].index("db")


def test_docker_docs_gpu_examples() -> None:
    job = load("docker-docs-gpu")
    one, specific = job.task("test").gpus, job.task("specific").gpus
    assert one is not None and (one.driver, one.count, one.device_ids) == ("nvidia", 1, ())
    assert specific is not None and (specific.count, specific.device_ids) == (None, ("0", "3"))


@pytest.mark.parametrize("name, expected", [
    ("prometheus-grafana", [
        (14, "services.prometheus.volumes[0].source", "host path './etc/prometheus' must be absolute (a relative path means nothing on a cluster node)"),
        (26, "services.grafana.volumes[0].source", "host path './grafana' must be absolute (a relative path means nothing on a cluster node)")]),
    ("elasticsearch-logstash-kibana", [
        (28, "services.logstash.volumes[0].source", "host path './logstash/pipeline/logstash-nginx.config' must be absolute (a relative path means nothing on a cluster node)"),
        (29, "services.logstash.volumes[1].source", "host path './logstash/nginx.log' must be absolute (a relative path means nothing on a cluster node)")]),
    ("react-express-mysql", [
        (7, "services.backend.build", "not supported"),
        (26, "services.backend.volumes[0].source", "host path './backend/src' must be absolute (a relative path means nothing on a cluster node)"),
        (27, "services.backend.volumes[1].source", "host path './backend/package.json' must be absolute (a relative path means nothing on a cluster node)"),
        (28, "services.backend.volumes[2].source", "host path './backend/package-lock.json' must be absolute (a relative path means nothing on a cluster node)"),
        (52, "services.frontend.build", "not supported"),
        (58, "services.frontend.volumes[0].source", "host path './frontend/src' must be absolute (a relative path means nothing on a cluster node)")]),
    ("compose-spec-model", [
        (27, "volumes.db-data.driver", "'flocker' is not supported"),
        (28, "volumes.db-data.driver_opts", "not supported"),
        (32, "configs.httpd-config", "external configs are not supported"),
        (36, "secrets.server-certificate", "external secrets are not supported")]),
    ("example-voting-app", [
        (80, "services.visualizer.volumes[0]", "host path /var/run/docker.sock is refused by the cluster policy (the cluster setting allow_host_paths")]),
])
def test_refused_files_name_each_unsupported_key(name: str, expected: list[tuple[int, str, str]]) -> None:
    assert refusals(name) == expected


def test_the_documented_table_lists_every_compose_key_as_the_converter_treats_it() -> None:
    from taskorg.spec.compose_keys import table_rows

    docs = (Path(__file__).resolve().parents[2] / "docs" / "spec.md").read_text()
    section = docs.split("### Compose keys", 1)[1].split("\n\n", 2)[1]
    rows = [tuple(cell.strip().strip("`") for cell in line.strip("|").split(" | "))
            for line in section.splitlines()[2:]]
    assert rows == table_rows()

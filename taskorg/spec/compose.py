"""A docker-compose file, as it is, into taskorg's own job format.

Each service becomes a task written in taskorg's format; the usual task
checks then validate it, with every problem pointed back at the compose key
it came from (`services.web.deploy.resources.limits.memory`, with its line).
What each compose key becomes is in compose_keys.py and docs/spec.md; keys
that mean nothing on a cluster are warnings, keys that cannot be honoured are
errors naming what to do instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .checks import Invalid, checked
from .compose_deploy import convert_deploy
from .compose_env import interpolate, read_env_file
from .compose_files import declared_files, file_refs
from .compose_keys import SERVICE, TOP_LEVEL
from .compose_parts import ComposeContext, TaskOut, beside, check_compose_keys, gpus_of, labels_of
from .compose_volumes import convert_tmpfs, convert_volumes, declared_volumes
from .errors import Path as SpecPath, PathPart, describe
from .report import Reporter

GENERIC_NAMES = ("docker-compose", "compose")
NOT_NAME_CHARS = re.compile(r"[^a-z0-9_.-]+")
DEPENDENCY_CONDITIONS = {"service_started": "started", "service_healthy": "healthy"}
COMPLETED = "service_completed_successfully"
PLAIN_RESTART = {"no": "never", False: "never", "always": "always", "unless-stopped": "always"}


def is_compose(data: Any) -> bool:
    """A compose file has services; taskorg's own format has job/tasks or name/image.

    A mapping with an image is a task (whose `services` key is then a mistake to name).
    """
    return (isinstance(data, dict) and "services" in data
            and not any(key in data for key in ("job", "tasks", "image")))


@dataclass
class Service:
    """One service in taskorg's task format, and the compose path each task field came from."""

    task: dict[str, Any]
    origins: dict[str, SpecPath]


class MappedReporter(Reporter):
    """A Reporter at a service that reports a task field at the compose key it came from."""

    origins: dict[str, SpecPath]

    def at(self, *parts: PathPart) -> Reporter:
        if parts and isinstance(parts[0], str) and parts[0] in self.origins:
            return Reporter(self.source, self.lines, self.problems, self.origins[parts[0]] + parts[1:],
                            self.budget, self.warnings)
        return super().at(*parts)


def reporter_for(service: Service, rep: Reporter, name: str) -> MappedReporter:
    mapped = MappedReporter(rep.source, rep.lines, rep.problems, ("services", name), rep.budget,
                            rep.warnings)
    mapped.origins = service.origins
    return mapped


def convert(data: dict[Any, Any], rep: Reporter, context: ComposeContext) -> tuple[str, dict[str, Service]]:
    """The job name and the services of a compose file, in taskorg's task format."""
    if context.dotenv_problem:
        rep.add(f"the .env beside the compose file: {context.dotenv_problem}")
    variables = rep.at()
    variables.problems = []  # variable problems first: the values they leave behind mean nothing
    data = interpolate(data, context.environ, variables, set())
    if variables.problems:
        rep.problems.extend(variables.problems)
        return _job_name(None, rep), {}
    check_compose_keys(data, TOP_LEVEL, rep, "top-level key")
    name = _job_name(data.get("name"), rep)
    services = data.get("services")
    if not isinstance(services, dict) or not services:
        rep.at("services").add(f"must be a mapping of services (web: {{image: ...}}), got {describe(services)}")
        return name, {}
    volumes = declared_volumes(data.get("volumes"), rep.at("volumes"))
    files = {kind: declared_files(data.get(kind), rep.at(kind), context, kind) for kind in ("secrets", "configs")}
    converted: dict[str, Service] = {}
    for service_name, body in services.items():
        srep = rep.at("services", str(service_name))
        rep.check_time()
        if not isinstance(body, dict):
            srep.add(f"a service must be a mapping with an image, got {describe(body)}")
            continue
        converted[str(service_name)] = _service(str(service_name), body, srep, context, volumes, files)
    return name, converted


def _job_name(value: Any, rep: Reporter) -> str:
    if value is not None:
        return value if isinstance(value, str) else str(value)
    stem = Path(rep.source).stem
    if stem in GENERIC_NAMES:
        stem = Path(rep.source).resolve().parent.name if not rep.source.startswith("<") else ""
    name = NOT_NAME_CHARS.sub("-", stem.lower()).strip("-._")[:63]
    return name or "compose"


def _service(name: str, body: dict[Any, Any], rep: Reporter, context: ComposeContext,
             volumes: Mapping[str, str],
             files: Mapping[str, Mapping[str, dict[str, Any] | None]]) -> Service:
    keys = dict(body)
    task: dict[str, Any] = {"name": name}
    if "build" in keys and "image" in keys:
        keys.pop("build")
        rep.at("build").warn(f"ignored: the image {describe(body['image'])} is run as it is")
    elif "build" in keys:
        task["image"] = "build-only"  # refused for its build: one line, not a second about the image
    check_compose_keys(keys, SERVICE, rep, "service key")
    origins: dict[str, SpecPath] = {"name": rep.path}
    out = TaskOut(task, origins, rep.path)
    for key in ("image", "command", "entrypoint", "user", "stop_grace_period", "stop_signal",
                "devices", "cap_add", "cap_drop", "platform", "privileged", "healthcheck"):
        out.copy(body, key)
    out.copy(body, "working_dir", "workdir")
    out.copy(body, "scale", "replicas")
    out.set("env", _environment(body, rep, context), "environment" if "environment" in body else "env_file")
    out.set("labels", labels_of(body.get("labels"), rep.at("labels")), "labels")
    mounts = convert_volumes(body.get("volumes"), rep.at("volumes"), volumes)
    tmpfs = convert_tmpfs(body.get("tmpfs"), rep.at("tmpfs"))
    out.set("volumes", mounts + tmpfs if isinstance(mounts, list) else mounts, "volumes")
    out.set("ports", _ports(body.get("ports"), rep.at("ports")), "ports")
    out.set("restart", _plain_restart(body.get("restart"), rep.at("restart")), "restart")
    out.set("gpus", gpus_of(body.get("gpus"), rep.at("gpus")), "gpus")
    _dependencies(body.get("depends_on"), rep.at("depends_on"), out)
    _network(body, rep, out)
    _legacy_resources(body, out)
    for kind in ("secrets", "configs"):
        out.set(kind, file_refs(body.get(kind), rep.at(kind), files[kind], kind), kind)
    if isinstance(body.get("deploy"), dict):
        convert_deploy(body["deploy"], rep.at("deploy"), out)
    elif body.get("deploy") is not None:
        rep.at("deploy").add(f"must be a mapping, got {describe(body['deploy'])}")
    return Service(task, origins)


# ---- environment and labels --------------------------------------------------------------

def _environment(body: Mapping[Any, Any], rep: Reporter, context: ComposeContext) -> dict[Any, Any] | None:
    """env_file entries first, then `environment` over them (compose's order)."""
    env: dict[Any, Any] = {}
    if body.get("env_file") is not None:
        env.update(checked(lambda v, r: _env_files(v, r, context), body["env_file"], rep.at("env_file"), {}))
    value = body.get("environment")
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str) and "=" not in item:
                _from_environment(item, env, context, rep.at("environment", index))
            elif isinstance(item, str):
                key, _, text = item.partition("=")
                env[key] = text
            else:
                rep.at("environment", index).add(f"must be a KEY=VALUE string, got {describe(item)}")
    elif isinstance(value, dict):
        for key, text in value.items():
            if text is None:
                _from_environment(str(key), env, context, rep.at("environment", str(key)))
            else:
                env[key] = text
    elif value is not None:
        rep.at("environment").add(f"must be a mapping or a list of KEY=VALUE strings, got {describe(value)}")
    return env or None


def _from_environment(name: str, env: dict[Any, Any], context: ComposeContext, rep: Reporter) -> None:
    """`- NAME` alone: the value comes from the environment, as compose does; unset, it is left out."""
    if name in context.environ:
        env[name] = context.environ[name]
    else:
        rep.warn(f"{name} has no value and is not set in the environment; it is left out")


def _env_files(value: Any, rep: Reporter, context: ComposeContext) -> dict[str, str]:
    single = isinstance(value, (str, dict))
    entries = [value] if single else value
    if not isinstance(entries, list):
        raise Invalid(f"must be a file name or a list of them, got {describe(value)}")
    env: dict[str, str] = {}
    for index, entry in enumerate(entries):
        at = rep if single else rep.at(index)
        path, required = (entry.get("path"), entry.get("required", True)) if isinstance(entry, dict) else (entry, True)
        if not isinstance(path, str):
            at.add(f"must be a file name, got {describe(path)}")
            continue
        file = beside(path, context, at)
        if file is None:
            continue
        if not file.is_file():
            if required is not False:
                at.add(f"{path}: no such file")
            continue
        env.update(checked(lambda v, r: read_env_file(v), file, at, {}))
    return env


# ---- ports -------------------------------------------------------------------------------

LONG_PORT_KEYS = ("target", "published", "host_ip", "protocol", "mode", "app_protocol", "name")


def _ports(value: Any, rep: Reporter) -> Any:
    """Long-syntax entries ({target, published, host_ip, protocol}) in taskorg's forms."""
    if not isinstance(value, list):
        return value
    return [_long_port(item, rep.at(index)) if isinstance(item, dict) else item
            for index, item in enumerate(value)]


def _long_port(item: dict[Any, Any], rep: Reporter) -> Any:
    for key in item:
        if key not in LONG_PORT_KEYS:
            rep.at(str(key)).add(f"unknown key {describe(key)} (known: {', '.join(LONG_PORT_KEYS)})")
    published = item.get("published")
    if isinstance(published, str) and "-" in published:  # a range: the short form expands it
        host_ip = f"{item['host_ip']}:" if item.get("host_ip") else ""
        return f"{host_ip}{published}:{item.get('target')}/{item.get('protocol', 'tcp')}"
    if isinstance(published, str) and published.isdigit():
        published = int(published)
    port = {"container": item.get("target"), "host": published,
            "protocol": item.get("protocol", "tcp"), "host_ip": item.get("host_ip")}
    return {key: val for key, val in port.items() if val is not None}


# ---- restart, dependencies, network, resources -------------------------------------------

def _plain_restart(value: Any, rep: Reporter) -> Any:
    """Compose's `restart:`. With none (and no deploy.restart_policy), a service restarts whatever
    happens, as `docker stack deploy` does (restart_policy condition `any`)."""
    if value is None:
        return "always"
    if isinstance(value, (str, bool)) and value in PLAIN_RESTART:
        return PLAIN_RESTART[value]
    return value  # always, on-failure, on-failure:N, or a mistake the task check names


def _dependencies(value: Any, rep: Reporter, out: TaskOut) -> None:
    if value is None:
        return
    if isinstance(value, list):
        out.set("depends_on", value, "depends_on")
        return
    if not isinstance(value, dict):
        rep.add(f"must be a list of services or a mapping of them to conditions, got {describe(value)}")
        return
    depends: dict[str, str] = {}
    after: list[str] = []
    for name, options in value.items():
        options = options or {}
        at = rep.at(str(name))
        if not isinstance(options, dict):
            at.add(f"must be a mapping with a condition, got {describe(options)}")
            continue
        condition = options.get("condition", "service_started")
        if not isinstance(name, str):
            rep.add(f"service names must be strings, got {describe(name)}")
        elif not isinstance(condition, str):
            at.at("condition").add(f"must be service_started, service_healthy or {COMPLETED}, "
                                   f"got {describe(condition)}")
        elif condition == COMPLETED:
            after.append(name)
        elif condition in DEPENDENCY_CONDITIONS:
            depends[name] = DEPENDENCY_CONDITIONS[condition]
        else:
            at.at("condition").add(f"must be service_started, service_healthy or {COMPLETED}, "
                                   f"got {describe(condition)}")
        if options.get("required") is False:
            at.at("required").warn("ignored: taskorg always waits for a dependency")
        if options.get("restart"):
            at.at("restart").warn("ignored: a task is not restarted when its dependency restarts")
    out.set("depends_on", depends, "depends_on")
    out.set("after", after, "depends_on")


def _network(body: Mapping[Any, Any], rep: Reporter, out: TaskOut) -> None:
    mode = body.get("network_mode")
    if isinstance(mode, str) and mode.startswith(("service:", "container:")):
        rep.at("network_mode").add(f"{mode} is not supported: tasks may land on different nodes; "
                                   "they reach each other by name in the cluster DNS")
    elif mode is not None:
        out.set("network", "bridge" if mode == "default" else mode, "network_mode")


def _legacy_resources(body: Mapping[Any, Any], out: TaskOut) -> None:
    """mem_limit, cpus and mem_reservation (compose's older keys); deploy's win."""
    limits = {key: body[old] for old, key in (("cpus", "cpus"), ("mem_limit", "memory")) if body.get(old) is not None}
    if limits:
        out.set("resources", limits, "mem_limit" if "mem_limit" in body else "cpus")
    if body.get("mem_reservation") is not None:
        out.set("reservations", {"memory": body["mem_reservation"]}, "mem_reservation")



"""What each service process loads at start: the heavy packages it does not use stay out (issue 14).

Every regular machine runs five service processes, and a module's code and objects are paid for
in each process that imports it (docs/bench.md, Footprint). Each case starts a fresh interpreter
that does what `taskorg agent NAME` does before the service runs: the agent-only parser, the
modules `run_agent` imports, then the agent's own module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from taskorg.cli.agent_commands import AGENT_MODULES

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
from taskorg.cli import main
main.build_parser(agents_only=True).parse_args(["agent", sys.argv[1]])
import taskorg.logs, taskorg.net.sdnotify, taskorg.security.process
from taskorg.cli.agent_commands import AGENT_MODULES
__import__(AGENT_MODULES[sys.argv[1]])
print(json.dumps(sorted(sys.modules)))
"""

# In no service: cryptography (only certificate issuance, in the CLI, needs it), and the client
# commands and local-cluster tools. apscheduler runs the slow jobs of the DNS service; the frequent
# loops are plain threads (taskorg.net.loops), and so is the slave's report loop (taskorg.slave.cadence
# decides when), so the others do without it.
EVERYWHERE = ("cryptography", "taskorg.devtools", "taskorg.security.ca", "taskorg.cli.task_commands",
              "taskorg.cli.cluster_commands", "taskorg.cli.admin_commands")
NOT_IN = {
    "node": ("apscheduler", "docker", "pysyncobj", "flask_wtf", "taskorg.spec.parse", "taskorg.spec.compose", "taskorg.master",
             "taskorg.slave", "taskorg.webview", "taskorg.dns"),
    "webview": ("apscheduler", "docker", "pysyncobj", "taskorg.spec.parse", "taskorg.spec.compose", "taskorg.slave",
                "taskorg.dns.service", "taskorg.master.service"),
    "master": ("apscheduler", "docker", "pysyncobj", "flask_wtf", "taskorg.slave", "taskorg.webview", "taskorg.dns.service"),
    "slave": ("apscheduler", "pysyncobj", "flask_wtf", "taskorg.spec.compose", "taskorg.master", "taskorg.webview", "taskorg.dns"),
    "dns": ("docker", "flask_wtf", "taskorg.spec.parse", "taskorg.spec.compose", "taskorg.master", "taskorg.slave",
            "taskorg.webview"),
}


def loaded_by(agent: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, agent], cwd=REPO, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return json.loads(out)


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("agent", sorted(AGENT_MODULES))
def test_a_service_loads_none_of_what_it_does_not_use(agent: str) -> None:
    modules = loaded_by(agent)
    assert AGENT_MODULES[agent] in modules
    found = {package: [m for m in modules if within(m, package)][:3] for package in EVERYWHERE + NOT_IN[agent]}
    assert {package: names for package, names in found.items() if names} == {}


def test_every_agent_is_held_to_a_list() -> None:
    assert set(NOT_IN) == set(AGENT_MODULES)

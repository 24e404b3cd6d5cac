"""Task specs: the YAML (or JSON) a user submits, validated into a JobSpec.

A file holds one task or a job of several; validation reports every problem
of a file at once (SpecError), with the file, the field path and the line.
The canonical dict form (`JobSpec.to_dict`, `TaskSpec.to_dict`) is what the
master stores and the slave runs. A docker-compose file is accepted as it
is and becomes the same JobSpec (compose*.py). See docs/spec.md.
"""

import importlib
from typing import TYPE_CHECKING, Any

# Names load on first use (PEP 562): `taskorg.config` needs only `sizes`, and the node, DNS and
# slave services must not pay for the compose and YAML parsers they never run (issue 14, memory).
_HOMES = {
    "ComposeContext": "compose",
    "SpecError": "errors", "SpecProblem": "errors",
    **dict.fromkeys(("Constraints", "Device", "FileMount", "GpuRequest", "HealthCheck", "JobSpec", "Port",
                     "Resources", "RestartPolicy", "Rule", "SpecPolicy", "TaskSpec", "UpdateConfig", "Volume"),
                    "model"),
    "job_from_dict": "parse", "load_spec_file": "parse", "parse_spec_text": "parse",
    "format_size": "sizes", "parse_size": "sizes",
}

if TYPE_CHECKING:
    from .compose import ComposeContext
    from .errors import SpecError, SpecProblem
    from .model import (Constraints, Device, FileMount, GpuRequest, HealthCheck, JobSpec, Port, Resources,
                        RestartPolicy, Rule, SpecPolicy, TaskSpec, UpdateConfig, Volume)
    from .parse import job_from_dict, load_spec_file, parse_spec_text
    from .sizes import format_size, parse_size


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "ComposeContext",
    "Constraints",
    "Device",
    "FileMount",
    "GpuRequest",
    "HealthCheck",
    "Rule",
    "UpdateConfig",
    "JobSpec",
    "Port",
    "Resources",
    "RestartPolicy",
    "SpecError",
    "SpecPolicy",
    "SpecProblem",
    "TaskSpec",
    "Volume",
    "format_size",
    "job_from_dict",
    "load_spec_file",
    "parse_size",
    "parse_spec_text",
]

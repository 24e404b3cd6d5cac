"""Task specs: the YAML (or JSON) a user submits, validated into a JobSpec.

A file holds one task or a job of several; validation reports every problem
of a file at once (SpecError), with the file, the field path and the line.
The canonical dict form (`JobSpec.to_dict`, `TaskSpec.to_dict`) is what the
master stores and the slave runs. A docker-compose file is accepted as it
is and becomes the same JobSpec (compose*.py). See docs/spec.md.
"""

from .compose import ComposeContext
from .errors import SpecError, SpecProblem
from .model import (Constraints, Device, FileMount, GpuRequest, HealthCheck, JobSpec, Port, Resources,
                    RestartPolicy, Rule, SpecPolicy, TaskSpec, UpdateConfig, Volume)
from .parse import job_from_dict, load_spec_file, parse_spec_text
from .sizes import format_size, parse_size

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

"""What every schemathesis run of this project checks, in process (tests/unit) and on a cluster (tests/cluster)."""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

# The credentials the tests send in place of whatever schemathesis generated.
CREDENTIALS = {"Authorization", "taskorg_session"}


@schemathesis.check
def no_internal_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """No 500, ever. A 502 or 503 the description lists for the operation is an answer (not ready, no
    quorum, a peer down), held to its schema by the other checks; one it does not list fails them."""
    if response.status_code == 500:
        raise AssertionError(f"500 from {case.method} {case.path}: {response.text[:300]}")
    return None


CHECKS = [no_internal_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def negates_only_the_credential(case: Any) -> bool:
    """A negative case whose only flaw is a missing or mangled credential: the valid one the test sends
    in its place would make it a valid request (refusals without a credential: test_openapi.py)."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative:
        return False
    data = meta.phase.data
    names = {data.parameter} if getattr(data, "parameter", None) else \
        {m.parameter for m in getattr(data, "mutations", ()) if m.parameter}
    return bool(names) and names <= CREDENTIALS

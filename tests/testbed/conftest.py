"""One provisioned 4-host testbed for the session: test_quorum and test_testbed share it, since a
provisioning (boot, playbook, task image) costs 3-6 minutes. Each module leaves it as it found it:
its jobs cancelled, every host back and every unit active."""

from __future__ import annotations

from typing import Iterator

import pytest

from .hosts import Testbed
from .provisioned import LEASE_LOG, provisioned_testbed


@pytest.fixture(scope="session")
def shared_testbed(request: pytest.FixtureRequest) -> Iterator[Testbed]:
    yield from provisioned_testbed(request, {"taskorg_settings": {"lease_log": LEASE_LOG}})

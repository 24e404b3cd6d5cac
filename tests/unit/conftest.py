"""The whole-tick harness most master unit tests start from (tickharness.py: a real store, fake
members, a fake clock); a module that needs another shape defines its own `harness`."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from tickharness import TickHarness


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[TickHarness]:
    made = TickHarness(tmp_path)
    yield made
    made.close()

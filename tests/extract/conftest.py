"""The pull tests' warehouse: tests/conftest.py's, on each backend, under the name they use."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine


@pytest.fixture
def engine(warehouse: Engine) -> Engine:
    return warehouse

"""The `account` fixture of the Checkfront emulator's tests (tests/sandbox/checkfront_account.py)."""

from __future__ import annotations

import pytest

from tests.sandbox.checkfront_account import Account


@pytest.fixture
def account() -> Account:
    return Account()

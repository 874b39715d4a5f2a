"""Shared fixtures."""
from __future__ import annotations

import pytest


@pytest.fixture
def speedups_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests of aunet's fast paths build them whatever AUNET_FAST says in the caller's environment."""
    monkeypatch.delenv("AUNET_FAST", raising=False)

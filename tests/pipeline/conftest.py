"""Shared fixtures for the daemon's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pipeline.live_store import LiveStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LiveStore]:
    """A real case store (tests/pipeline/live_store.py), closed afterwards."""
    live = LiveStore(tmp_path)
    live.start()
    yield live
    live.close()

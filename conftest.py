"""Shared fixtures for the core's and the plugins' tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own empty compile cache and no backend override."""
    cache = tmp_path_factory.mktemp("unirun-cache")
    monkeypatch.setenv("UNIRUN_CACHE_DIR", str(cache))
    monkeypatch.delenv("UNIRUN_BACKEND", raising=False)
    return cache


@pytest.fixture
def cache_dir(_isolated_cache: Path) -> Path:
    return _isolated_cache

"""External weights through the Core ML translator (issue 11): read from the model's folder
wherever the model keeps them, and part of the cache key. Compiling runs anywhere; running the
result needs macOS, so this checks what the build consumed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import unirun
from unirun.testing import rewrite_external_ones, save_external, scaled_by_weights


@pytest.mark.parametrize("place", ["initializer", "constant"])  # the translator has no If
def test_external_weights_are_read_from_the_models_folder_and_keyed(
    place: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "w.bin").write_bytes(np.full(64, 9, np.float32).tobytes())  # a decoy
    monkeypatch.chdir(cwd)
    path = save_external(scaled_by_weights(place), tmp_path / "model" / "m.onnx")
    cache = tmp_path / "cache"  # this plugin's tests run without the core's conftest
    first = unirun.compile(path, backend="coreml", cache=cache)
    assert unirun.compile(path, backend="coreml", cache=cache).directory == first.directory
    rewrite_external_ones(path, 5.0)
    second = unirun.compile(path, backend="coreml", cache=cache)
    assert second.directory != first.directory
    assert second.manifest.source_sha256 != first.manifest.source_sha256

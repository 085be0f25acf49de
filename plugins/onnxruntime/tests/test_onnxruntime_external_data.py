"""External weights through ONNX Runtime (issue 11): wherever the model keeps them, they are
hashed into the cache key, read from the model's folder (never the current directory), and
the cached build is self-contained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import unirun
from unirun import InvalidModelError
from unirun.testing import rewrite_external_ones, save_external, scaled_by_weights

X = np.arange(4, dtype=np.float32)


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current directory is another folder, with a decoy w.bin of nines."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "w.bin").write_bytes(np.full(64, 9, np.float32).tobytes())
    monkeypatch.chdir(cwd)
    return cwd


@pytest.mark.parametrize("place", ["initializer", "constant", "if_branch", "function"])
def test_rewritten_weights_change_the_answer(place: str, tmp_path: Path, elsewhere: Path) -> None:
    path = save_external(scaled_by_weights(place), tmp_path / "model" / "m.onnx")
    seen = []
    for value in (1.0, 5.0):
        rewrite_external_ones(path, value)
        for _ in range(2):
            with unirun.load(path, backend="onnxruntime") as model:
                np.testing.assert_array_equal(model(X)["y"], X * value)
                seen.append(model.cache_status)
    assert seen == ["miss", "hit", "miss", "hit"]


def test_the_artifact_is_self_contained(tmp_path: Path, elsewhere: Path) -> None:
    path = save_external(scaled_by_weights("if_branch", size=512), tmp_path / "model" / "m.onnx")
    saved = unirun.compile(path, backend="onnxruntime").save(tmp_path / "m.ort.unirun")
    for file in path.parent.iterdir():
        file.unlink()
    with unirun.load(saved) as model:
        x = np.arange(512, dtype=np.float32)
        np.testing.assert_array_equal(model(x)["y"], x)


def test_bytes_with_external_data_need_base_dir(tmp_path: Path, elsewhere: Path) -> None:
    path = save_external(scaled_by_weights("constant"), tmp_path / "model" / "m.onnx")
    with pytest.raises(InvalidModelError, match="pass base_dir="):
        unirun.load(path.read_bytes(), backend="onnxruntime")
    proto = onnx.load(str(path), load_external_data=False)
    with unirun.load(proto, backend="onnxruntime", base_dir=path.parent) as model:
        np.testing.assert_array_equal(model(X)["y"], X)

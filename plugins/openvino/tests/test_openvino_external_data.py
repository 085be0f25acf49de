"""External weights through OpenVINO (issue 11): wherever the model keeps them, they are
hashed into the cache key, read from the model's folder (never the current directory), and
the cached build is self-contained; an edited manifest or an entry copied under another key
is never served."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

import unirun
from unirun import ArtifactError, InvalidModelError
from unirun.testing import (
    conv_net,
    multi_io,
    rewrite_external_ones,
    save_external,
    scaled_by_weights,
)

X = np.arange(4, dtype=np.float32)


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current directory is another folder, with a decoy w.bin of nines."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "w.bin").write_bytes(np.full(64, 9, np.float32).tobytes())
    monkeypatch.chdir(cwd)
    return cwd


# OpenVINO 2026.4 has no conversion for model-local functions, so "function" is not tried.
@pytest.mark.parametrize("place", ["initializer", "constant", "if_branch"])
def test_rewritten_weights_change_the_answer(place: str, tmp_path: Path, elsewhere: Path) -> None:
    path = save_external(scaled_by_weights(place), tmp_path / "model" / "m.onnx")
    seen = []
    for value in (1.0, 5.0):
        rewrite_external_ones(path, value)
        for _ in range(2):
            with unirun.load(path, backend="openvino") as model:
                np.testing.assert_array_equal(model(X)["y"], X * value)
                seen.append(model.cache_status)
    assert seen == ["miss", "hit", "miss", "hit"]


def test_the_artifact_is_self_contained(tmp_path: Path, elsewhere: Path) -> None:
    path = save_external(scaled_by_weights("if_branch", size=512), tmp_path / "model" / "m.onnx")
    saved = unirun.compile(path, backend="openvino").save(tmp_path / "m.ov.unirun")
    for file in path.parent.iterdir():
        file.unlink()
    with unirun.load(saved) as model:
        x = np.arange(512, dtype=np.float32)
        np.testing.assert_array_equal(model(x)["y"], x)


def test_bytes_with_external_data_need_base_dir(tmp_path: Path, elsewhere: Path) -> None:
    path = save_external(scaled_by_weights("constant"), tmp_path / "model" / "m.onnx")
    with pytest.raises(InvalidModelError, match="pass base_dir="):
        unirun.load(path.read_bytes(), backend="openvino")
    proto = onnx.load(str(path), load_external_data=False)
    with unirun.load(proto, backend="openvino", base_dir=path.parent) as model:
        np.testing.assert_array_equal(model(X)["y"], X)


def test_reversed_outputs_in_a_manifest_are_refused(tmp_path: Path) -> None:
    """Swapping the outputs of a two-output artifact by hand used to swap the answers."""
    saved = unirun.compile(multi_io(), backend="openvino", device="cpu", cache=False).save(
        tmp_path / "multi.ov.unirun"
    )
    manifest = json.loads((saved / "manifest.json").read_text(encoding="utf-8"))
    manifest["outputs"].reverse()
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="does not match its sha256"):
        unirun.load(saved)


def test_an_entry_copied_under_another_key_is_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(conv_net(size=8, seed=1), str(a))
    onnx.save(conv_net(size=8, seed=2), str(b))
    image = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    with unirun.load(a, backend="openvino", device="cpu") as model:
        entry, want = model.artifact.directory, model(image)["logits"]
    with unirun.load(b, backend="openvino", device="cpu") as model:
        other = model.artifact.directory
    shutil.rmtree(entry)
    shutil.copytree(other, entry)
    with (
        caplog.at_level(logging.WARNING, logger="unirun.cache"),
        unirun.load(a, backend="openvino", device="cpu") as model,
    ):
        assert model.cache_status == "rebuilt"
        np.testing.assert_allclose(model(image)["logits"], want, rtol=1e-5, atol=1e-6)
    assert "source_sha256 differs" in caplog.text

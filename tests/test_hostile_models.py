"""Hostile models (issue 11): external data wherever a model keeps it, resolved against the
model's folder only, never served stale, refused for bytes without a folder, and special files
that must not hang ``load`` or ``unirun inspect``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import unirun
from unirun import InvalidModelError, OptionsError
from unirun.source import OnnxModel, external_tensors
from unirun.testing import rewrite_external_ones, scaled_by_weights
from unirun.testing import save_external as save

PLACES = ["initializer", "constant", "if_branch", "function"]
X = np.arange(4, dtype=np.float32)


def save_external(model: Any, folder: Path) -> Path:
    return save(model, folder / "m.onnx")


def _sparse_model() -> Any:
    values = numpy_helper.from_array(np.ones(2, np.float32), "w_values")
    indices = numpy_helper.from_array(np.array([0, 3], np.int64), "w_indices")
    sparse = helper.make_sparse_tensor(values, indices, [4])
    sparse.values.name = "w"
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "sparse",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        sparse_initializer=[sparse],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current directory: another folder, holding a decoy w.bin of nines."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "w.bin").write_bytes(np.full(64, 9, np.float32).tobytes())
    monkeypatch.chdir(cwd)
    return cwd


# -- item 3: stale answers -----------------------------------------------------------------------


@pytest.mark.parametrize("place", [*PLACES, "sparse_initializer"])
def test_every_external_tensor_is_hashed(place: str, tmp_path: Path) -> None:
    model = _sparse_model() if place == "sparse_initializer" else scaled_by_weights(place)
    if place == "sparse_initializer":  # onnx.save does not move sparse tensors out
        path = tmp_path / "m" / "m.onnx"
        path.parent.mkdir()
        values = model.graph.sparse_initializer[0].values
        (path.parent / "w.bin").write_bytes(values.raw_data)
        values.ClearField("raw_data")
        values.data_location = TensorProto.EXTERNAL
        values.external_data.add(key="location", value="w.bin")
        onnx.save(model, str(path))
    else:
        path = save_external(model, tmp_path / "m")
    first = OnnxModel.from_source(path)
    assert first.external_files == (path.parent / "w.bin",)
    if place == "sparse_initializer":
        (path.parent / "w.bin").write_bytes(np.full(2, 5, np.float32).tobytes())
    else:
        rewrite_external_ones(path, 5.0)
    assert OnnxModel.from_source(path).sha256 != first.sha256


@pytest.mark.parametrize("place", PLACES)
def test_rewritten_weights_are_never_served_stale(
    place: str, tmp_path: Path, elsewhere: Path
) -> None:
    """The answer follows w.bin (in the model's folder, not the current one) on every load."""
    path = save_external(scaled_by_weights(place), tmp_path / "model")
    statuses = []
    for value in (1.0, 5.0):
        if value != 1.0:
            rewrite_external_ones(path, value)
        for _ in range(2):
            with unirun.load(path, backend="reference") as model:
                np.testing.assert_array_equal(model(X)["y"], X * value)
                statuses.append(model.cache_status)
    assert statuses == ["miss", "hit", "miss", "hit"]


def test_a_cached_build_keeps_no_reference_to_the_models_files(tmp_path: Path) -> None:
    path = save_external(scaled_by_weights("constant"), tmp_path / "model")
    artifact = unirun.compile(path, backend="reference")
    saved = artifact.save(tmp_path / "saved.unirun")
    for file in (tmp_path / "model").iterdir():
        file.unlink()
    with unirun.load(saved) as model:
        np.testing.assert_array_equal(model(X)["y"], X)


# -- item 3: where external data may come from ----------------------------------------------------


@pytest.mark.parametrize(
    ("location", "problem"),
    [
        ("/etc/hostname", "is an absolute path"),
        ("../outside.bin", r"leaves the model's folder \(\.\.\)"),
        ("sub/../../outside.bin", r"leaves the model's folder \(\.\.\)"),
        ("link.bin", "symbolic link that leads outside the model's folder"),
        ("bad\0name", "is not a valid file name"),
    ],
)
def test_external_data_outside_the_models_folder_is_refused(
    location: str, problem: str, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    path = save_external(scaled_by_weights("constant"), folder)
    (tmp_path / "outside.bin").write_bytes((folder / "w.bin").read_bytes())
    (folder / "link.bin").symlink_to(tmp_path / "outside.bin")
    proto = onnx.load(str(path), load_external_data=False)
    for tensor, _ in external_tensors(proto):
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(proto, str(path))
    with pytest.raises(InvalidModelError, match=f"location .* {problem}"):
        unirun.load(path, backend="reference")


def test_a_symlink_inside_the_folder_is_followed(tmp_path: Path) -> None:
    """Hugging Face's cache keeps files as links into a blobs folder: links that stay inside
    the model's folder, or inside the folder the model file really lives in, are fine."""
    blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshot"
    path = save_external(scaled_by_weights("initializer"), blobs)
    snapshot.mkdir()
    (snapshot / "m.onnx").symlink_to(path)
    (snapshot / "w.bin").symlink_to(blobs / "w.bin")
    with unirun.load(snapshot / "m.onnx", backend="reference") as model:
        np.testing.assert_array_equal(model(X)["y"], X)


def test_bytes_and_protos_need_base_dir(tmp_path: Path, elsewhere: Path) -> None:
    path = save_external(scaled_by_weights("if_branch"), tmp_path / "model")
    data = path.read_bytes()
    proto = onnx.load(str(path), load_external_data=False)
    for source in (data, proto):
        with pytest.raises(InvalidModelError, match=r"in the external file 'w\.bin'.*base_dir="):
            unirun.load(source, backend="reference")
        with unirun.load(source, backend="reference", base_dir=path.parent) as model:
            np.testing.assert_array_equal(model(X)["y"], X)
    before = OnnxModel.from_source(data, base_dir=path.parent).sha256
    rewrite_external_ones(path, 5.0)
    assert OnnxModel.from_source(data, base_dir=path.parent).sha256 != before
    with unirun.load(data, backend="reference", base_dir=str(path.parent)) as model:
        np.testing.assert_array_equal(model(X)["y"], X * 5)
    with pytest.raises(OptionsError, match="base_dir is for models given as bytes"):
        unirun.load(path, backend="reference", base_dir=path.parent)
    with pytest.raises(OptionsError, match="is not a folder"):
        unirun.load(data, backend="reference", base_dir=tmp_path / "missing")
    # A ModelProto loaded with its weights needs no folder.
    with unirun.load(onnx.load(str(path)), backend="reference") as model:
        np.testing.assert_array_equal(model(X)["y"], X * 5)


# -- item 5: special files never hang -----------------------------------------------------------


@pytest.mark.parametrize(
    "special", ["weights_fifo", "weights_dev_zero", "model_fifo", "model_dev_zero"]
)
@pytest.mark.parametrize("command", ["load", "inspect"])
def test_special_files_never_hang(
    special: str, command: str, tmp_path: Path, python_run: Any
) -> None:
    path = save_external(scaled_by_weights("constant"), tmp_path / "model")
    target = path if special.startswith("model") else path.parent / "w.bin"
    target.unlink()
    if special.endswith("fifo"):
        os.mkfifo(target)
    elif special == "weights_dev_zero":
        target.symlink_to("/dev/zero")
    else:
        path = Path("/dev/zero")
    if command == "load":
        result = python_run(f"""
            import unirun
            try:
                unirun.load({str(path)!r}, backend="reference")
            except unirun.InvalidModelError as exc:
                print("InvalidModelError:", exc)
            """)
        assert "InvalidModelError:" in result.stdout, result.stdout + result.stderr
        output = result.stdout
    else:
        argv = ["inspect", str(path), "--no-backends"]
        result = python_run(f"import sys, unirun.cli; sys.exit(unirun.cli.main({argv!r}))")
        assert result.returncode in (1, 2) and "Traceback" not in result.stderr, result.stderr
        output = result.stderr
    reason = {
        "weights_fifo": "FIFO",
        "weights_dev_zero": "leads outside the model's folder",
        "model_fifo": "FIFO",
        "model_dev_zero": "a device, not a regular file",
    }[special]
    assert reason in output, output

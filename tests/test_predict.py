"""``unirun.predict``: the loaded-model cache shared by threads, and what invalidates it."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

import unirun
from unirun import _predict
from unirun.testing import mlp

ENGINES = [
    b.name
    for b in unirun.backends()
    if b.available and b.name in ("reference", "onnxruntime", "openvino")
]


def _models() -> list[unirun.Model]:
    return list(_predict._predict_models.values())


@pytest.fixture(autouse=True)
def _fresh_predict_cache() -> Any:
    yield
    with _predict._predict_lock:
        models = _models()
        _predict._predict_models.clear()
        _predict._predict_info.clear()
    for m in models:
        m.close()


@pytest.mark.parametrize("backend", [b for b in ENGINES if b != "reference"])
def test_eviction_waits_for_calls_in_flight(tmp_path: Path, backend: str) -> None:
    """6 threads x 40 calls over 6 models with 4 kept: eviction used to close models other
    threads were running (ModelClosedError)."""
    paths = []
    for seed in range(6):
        path = tmp_path / f"m{seed}.onnx"
        onnx.save(mlp(seed=seed), str(path))
        paths.append(path)
    x = np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)
    expected = [unirun.predict(p, x, backend=backend)["probs"] for p in paths]
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def worker(offset: int) -> None:
        start.wait()
        for call in range(40):
            index = (offset + call) % 6
            try:
                got = unirun.predict(paths[index], x, backend=backend)["probs"]
                np.testing.assert_allclose(got, expected[index], rtol=1e-5)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, repr(errors[0])
    assert len(_predict._predict_models) <= _predict._PREDICT_KEEP


class _Gated:
    """An array-like input that is read only once ``gate`` opens (the call is then in flight)."""

    def __init__(self, array: np.ndarray[Any, Any], gate: threading.Event) -> None:
        self.array, self.gate, self.reading = array, gate, threading.Event()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray[Any, Any]:
        self.reading.set()
        assert self.gate.wait(60)
        return self.array


@pytest.mark.parametrize("backend", ENGINES)
def test_an_evicted_model_finishes_the_call_running_on_it(tmp_path: Path, backend: str) -> None:
    paths = []
    for seed in range(_predict._PREDICT_KEEP + 1):
        paths.append(tmp_path / f"m{seed}.onnx")
        onnx.save(mlp(seed=seed), str(paths[-1]))
    x = np.ones((1, 16), np.float32)
    want = unirun.predict(paths[0], x, backend=backend)["probs"]
    (first,) = _models()
    gate = threading.Event()
    slow = _Gated(x, gate)
    result: list[Any] = []
    thread = threading.Thread(
        target=lambda: result.append(unirun.predict(paths[0], slow, backend=backend))
    )
    thread.start()
    assert slow.reading.wait(60)
    for path in paths[1:]:  # evicts the first model while its call is in flight
        unirun.predict(path, x, backend=backend)
    assert first not in _models() and not first.closed
    gate.set()
    thread.join(60)
    np.testing.assert_allclose(result[0]["probs"], want, rtol=1e-6)
    assert first.closed


def _with_external_weights(folder: Path, scale: float) -> Path:
    """``y = x * w`` with ``w`` kept in ``w.bin`` beside the model."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.full(4, scale, np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["y"])],
        "scaled",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "scaled.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="w.bin", size_threshold=0)
    return path


@pytest.mark.parametrize("backend", ENGINES)
def test_new_external_weights_are_seen(tmp_path: Path, backend: str) -> None:
    """Rewriting only ``w.bin`` (the model file untouched, even its mtime) gives new results;
    ``predict`` used to key on the model file's mtime and size alone."""
    path = _with_external_weights(tmp_path, 1.0)
    x = np.ones(4, np.float32)
    assert unirun.predict(path, x, backend=backend)["y"].tolist() == [1, 1, 1, 1]
    model_stat = path.stat()
    weights = tmp_path / "w.bin"
    weights.write_bytes(np.full(4, 5.0, np.float32).tobytes())
    os.utime(path, ns=(model_stat.st_atime_ns, model_stat.st_mtime_ns))
    assert unirun.predict(path, x, backend=backend)["y"].tolist() == [5, 5, 5, 5]
    assert unirun.predict(path, x, backend=backend)["y"].tolist() == [5, 5, 5, 5]


def test_a_replaced_model_file_with_the_same_size_and_mtime_is_seen(tmp_path: Path) -> None:
    """A file replaced by another one (a new inode) with the same size and mtime."""
    path = tmp_path / "m.onnx"
    onnx.save(mlp(seed=1), str(path))
    x = np.ones((1, 16), np.float32)
    first = unirun.predict(path, x, backend="reference")["probs"]
    stat = path.stat()
    other = tmp_path / "other.onnx"
    onnx.save(mlp(seed=2), str(other))
    assert other.stat().st_size == stat.st_size
    os.utime(other, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    other.replace(path)
    second = unirun.predict(path, x, backend="reference")["probs"]
    assert not np.allclose(first, second)


def test_reuse_and_eviction_close_models(tmp_path: Path) -> None:
    paths = []
    for seed in range(_predict._PREDICT_KEEP + 1):
        paths.append(tmp_path / f"m{seed}.onnx")
        onnx.save(mlp(seed=seed), str(paths[-1]))
    x = np.ones((1, 16), np.float32)
    unirun.predict(paths[0], x, backend="reference")
    (first,) = _models()
    unirun.predict(paths[0], x, backend="reference")
    assert _models() == [first]
    for path in paths[1:]:
        unirun.predict(path, x, backend="reference")
    assert first.closed and len(_predict._predict_models) == _predict._PREDICT_KEEP


@pytest.mark.parametrize("backend", ENGINES)
def test_an_artifact_folder_saved_over_is_loaded_again(tmp_path: Path, backend: str) -> None:
    """``predict`` on an artifact directory: another model saved over it (``overwrite=True``
    replaces the folder atomically) gives that model's results on the next call, and an
    unchanged folder keeps the loaded model."""
    folder = tmp_path / "artifact"
    x = np.ones((1, 16), np.float32)
    unirun.compile(mlp(seed=1), backend=backend, device="cpu", cache=False).save(folder)
    first = unirun.predict(folder, x)["probs"]
    (loaded,) = _models()
    np.testing.assert_array_equal(unirun.predict(folder, x)["probs"], first)
    assert _models() == [loaded]
    unirun.compile(mlp(seed=2), backend=backend, device="cpu", cache=False).save(
        folder, overwrite=True
    )
    second = unirun.predict(folder, x)["probs"]
    with unirun.load(mlp(seed=2), backend=backend, device="cpu", cache=False) as direct:
        np.testing.assert_array_equal(second, direct(x)["probs"])
    assert not np.allclose(first, second)
    assert loaded.closed and _models() != [loaded]

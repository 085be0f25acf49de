"""The ONNX Runtime plugin against the real onnxruntime: values, specs, options, errors."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import unirun
from unirun import (
    DeviceError,
    InputError,
    InvalidModelError,
    OptionsError,
    UnsupportedModelError,
)
from unirun.tensor import random_feeds
from unirun.testing import conv_net, embedding_model, matmul_symbolic, mlp, multi_io
from unirun_onnxruntime import OnnxRuntimeOptions

MODELS = {
    "conv_net": conv_net,
    "mlp": mlp,
    "matmul_symbolic": matmul_symbolic,
    "embedding": embedding_model,
    "multi_io": multi_io,
}
HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


def _native(model: Any, feeds: dict[str, Any]) -> list[Any]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)  # type: ignore[no-any-return]


def _feeds(model: Any, **sizes: int) -> dict[str, Any]:
    specs = unirun.source.graph_inputs(model)
    feeds = random_feeds(specs, seed=3)
    out = {}
    for spec in specs:  # give symbolic dims sizes other than 1, so broadcasting bugs show
        shape = tuple(d if isinstance(d, int) else sizes.get(d, 2) for d in spec.shape or ())
        out[spec.name] = np.resize(feeds[spec.name], shape) if shape else feeds[spec.name]
    return out


@pytest.mark.parametrize("name", list(MODELS))
def test_outputs_equal_calling_onnxruntime_directly(name: str) -> None:
    model = MODELS[name]()
    feeds = _feeds(model, N=3, batch=2, M=4, K=5, seq=7)
    expected = _native(model, feeds)
    with unirun.load(model) as m:
        assert m.backend == "onnxruntime" and str(m.device) == "cpu"
        got = m(feeds)
    assert list(got) == [o.name for o in model.graph.output]
    for value, want in zip(got.values(), expected, strict=True):
        assert value.dtype == want.dtype and value.shape == want.shape
        np.testing.assert_allclose(value, want, rtol=1e-6, atol=1e-6)


def test_symbolic_dims_are_strings_and_fixed_shapes_become_ints() -> None:
    with unirun.load(matmul_symbolic()) as m:
        assert [i.shape for i in m.inputs] == [("M", "K"), ("K", "N")]
        assert m.outputs[0].shape == ("M", "N")
    with unirun.load(matmul_symbolic(), shapes={"a": (2, 5), "b": (5, 3)}) as m:
        assert [i.shape for i in m.inputs] == [(2, 5), (5, 3)]
        assert m.outputs[0].shape == (2, 3)
        with pytest.raises(InputError, match=r"'a' expects float32\[2, 5\]"):
            m({"a": np.zeros((3, 5), np.float32), "b": np.zeros((5, 3), np.float32)})


def test_auto_picks_onnxruntime_on_the_cpu(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(mlp(), str(path))
    out = unirun.predict(path, np.ones((2, 16), np.float32))
    np.testing.assert_allclose(out["probs"].sum(axis=1), 1.0, rtol=1e-6)
    model = unirun.load(path)
    assert (model.backend, str(model.device)) == ("onnxruntime", "cpu")
    model.close()


def test_predict_reuses_the_loaded_model(tmp_path: Path) -> None:
    from unirun import _predict

    path = tmp_path / "m.onnx"
    onnx.save(mlp(), str(path))
    unirun.predict(path, np.ones((1, 16), np.float32))
    cached = [m for m in _predict._predict_models.values() if m.artifact.manifest.source_sha256]
    unirun.predict(path, np.ones((3, 16), np.float32))
    assert list(_predict._predict_models.values()) == cached


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_optimisation_levels_and_threads_keep_values(level: int) -> None:
    model = conv_net()
    feeds = _feeds(model, N=2)
    with unirun.load(
        model,
        optimization_level=level,
        threads=1,
        options={"allow_spinning": False, "execution_mode": "sequential"},
    ) as m:
        np.testing.assert_allclose(
            m(feeds)["logits"], _native(model, feeds)[0], rtol=1e-5, atol=1e-6
        )


def test_plugin_options_are_validated() -> None:
    with pytest.raises(OptionsError, match=r"options for backend 'onnxruntime'.*inter_op_threads"):
        unirun.compile(mlp(), options={"inter_op_threads": 0})
    with pytest.raises(OptionsError, match=r"intra_threads.*Extra inputs are not permitted"):
        unirun.compile(mlp(), options={"intra_threads": 2})
    art = unirun.compile(mlp(), options=OnnxRuntimeOptions(inter_op_threads=2))
    assert art.manifest.options.backend_options["inter_op_threads"] == 2


def test_precision_it_lacks_is_refused() -> None:
    with pytest.raises(
        OptionsError, match="does not support precision 'bf16'; it supports fp32, fp16, int8"
    ):
        unirun.compile(mlp(), precision="bf16")


@pytest.mark.skipif(
    HAS_CUDA, reason="this onnxruntime build has CUDA; the refusal path needs a CPU build"
)
@pytest.mark.parametrize("device", ["cuda", "cuda:1", "gpu"])
def test_cuda_on_a_cpu_build_raises_device_error(device: str) -> None:
    with pytest.raises(
        DeviceError, match=r"not available to backend 'onnxruntime'; available: cpu"
    ):
        unirun.load(mlp(), backend="onnxruntime", device=device)


@pytest.mark.skipif(
    HAS_CUDA, reason="this onnxruntime build has CUDA; the refusal path needs a CPU build"
)
def test_cuda_session_request_without_provider_is_refused() -> None:
    """Even past device discovery, the session factory refuses CUDA without the provider
    rather than letting ONNX Runtime fall back to the CPU with a warning."""
    from unirun.device import Device
    from unirun_onnxruntime.backend import _session

    with pytest.raises(DeviceError, match="install onnxruntime-gpu"):
        _session(
            ort,
            mlp().SerializeToString(),
            ort.SessionOptions(),
            Device("cuda", 0),
            OnnxRuntimeOptions(),
            "load",
        )


@pytest.mark.skipif(not HAS_CUDA, reason="needs an onnxruntime-gpu build and an NVIDIA GPU")
def test_cuda_runs_on_cuda() -> None:  # pragma: no cover - no GPU on CI
    model = conv_net()
    feeds = _feeds(model, N=2)
    with unirun.load(model, device="cuda:0") as m:
        assert str(m.device) == "cuda:0"
        np.testing.assert_allclose(
            m(feeds)["logits"], _native(model, feeds)[0], rtol=1e-3, atol=1e-4
        )


def _graph_with(node: Any, opset: int = 17, domain: str = "") -> Any:
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model


def test_unknown_operator_is_unsupported_and_named() -> None:
    model = _graph_with(
        helper.make_node("FancyOp", ["x"], ["y"], name="fancy1", domain="my.ops"), domain="my.ops"
    )
    with pytest.raises(UnsupportedModelError, match="FancyOp") as info:
        unirun.compile(model)
    assert info.value.ops and info.value.ops[0][1] == "FancyOp"
    assert "[ONNXRuntimeError]" not in str(info.value)


def test_invalid_graph_is_invalid_model() -> None:
    model = _graph_with(helper.make_node("Relu", ["missing_input"], ["y"], name="r"))
    with pytest.raises(InvalidModelError) as info:
        unirun.compile(model)
    assert "ONNXRuntimeError" not in str(info.value)
    assert isinstance(info.value.__cause__, Exception)


def test_runtime_failure_is_inference_error() -> None:
    """A Reshape whose target does not fit the data fails inside the engine, at run time."""
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [onnx.numpy_helper.from_array(np.array([2, 3], np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with unirun.load(model) as m:
        assert m(np.arange(6, dtype=np.float32))["y"].shape == (2, 3)
        with pytest.raises(
            unirun.InferenceError, match="ONNX Runtime failed while running"
        ) as info:
            m(np.arange(7, dtype=np.float32))
    assert "[ONNXRuntimeError]" not in str(info.value)


def test_concurrent_calls_match_serial_ones() -> None:
    model = conv_net()
    batches = [_feeds(conv_net(), N=i + 1) for i in range(8)]
    with unirun.load(model) as m:
        expected = [m(b)["logits"] for b in batches]
        errors: list[BaseException] = []

        def worker(i: int) -> None:
            try:
                for _ in range(5):
                    np.testing.assert_array_equal(m(batches[i])["logits"], expected[i])
            except BaseException as exc:  # pragma: no cover
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert [r["logits"].shape[0] for r in m.map(batches)] == list(range(1, 9))


def test_artifact_round_trip_in_a_fresh_process(tmp_path: Path) -> None:
    import subprocess

    model = conv_net()
    feeds = _feeds(model, N=2)
    np.save(tmp_path / "image.npy", feeds["image"])
    unirun.compile(model, backend="onnxruntime").save(tmp_path / "cnn.ort.unirun")
    code = (
        "import numpy as np, unirun, sys\n"
        f"m = unirun.load({str(tmp_path / 'cnn.ort.unirun')!r})\n"
        f"x = np.load({str(tmp_path / 'image.npy')!r})\n"
        f"np.save({str(tmp_path / 'out.npy')!r}, m(x)['logits'])\n"
        "print(m.backend, m.cache_status)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["onnxruntime", "artifact"]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), _native(model, feeds)[0], rtol=1e-6)


def test_external_data_model(tmp_path: Path) -> None:
    model = conv_net()
    feeds = _feeds(model, N=2)
    expected = _native(model, feeds)[0]
    path = tmp_path / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="ext.bin", size_threshold=0)
    with unirun.load(path) as m:
        np.testing.assert_allclose(m(feeds)["logits"], expected, rtol=1e-6, atol=1e-6)
        names = sorted(p.name for p in m.artifact.directory.iterdir())
    assert "model.onnx" in names


def test_string_input_and_output() -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["s"], ["t"], name="id")],
        "strings",
        [helper.make_tensor_value_info("s", TensorProto.STRING, ["n"])],
        [helper.make_tensor_value_info("t", TensorProto.STRING, ["n"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with unirun.load(model) as m:
        out = m(np.array(["a", "bc"], dtype=object))["t"]
    assert out.tolist() == ["a", "bc"]


@pytest.mark.parametrize(
    ("node", "opset", "domain", "match", "op"),
    [
        (
            helper.make_node("FooBar", ["x"], ["y"], name="fb"),
            17,
            "",
            r"does not know operator FooBar at opset 17 \(node 'fb'\)",
            ("fb", "FooBar"),
        ),
        (helper.make_node("Relu", ["x"], ["y"], name="r"), 40, "", r"opset 40, newer than", None),
    ],
)
def test_unsupported_operators_and_opsets(
    node: Any, opset: int, domain: str, match: str, op: tuple[str, str] | None
) -> None:
    with pytest.raises(UnsupportedModelError, match=match) as info:
        unirun.compile(_graph_with(node, opset, domain))
    if op:
        assert info.value.ops == [op]
    assert "onnxruntime_src" not in str(info.value)

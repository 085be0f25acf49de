"""The OpenVINO plugin against the real OpenVINO: values, precision, shapes, threads, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnx
import onnxruntime as ort
import openvino as ov
import pytest
from onnx import TensorProto, helper, numpy_helper

import unirun
from unirun import (
    CompileError,
    DeviceError,
    InputError,
    InvalidModelError,
    OptionsError,
    UnsupportedModelError,
)
from unirun.device import Device
from unirun.source import graph_inputs
from unirun.tensor import random_feeds
from unirun.testing import conv_net, embedding_model, mlp, multi_io
from unirun.testing.models import transformer_block
from unirun_openvino import OpenVINOOptions
from unirun_openvino._devices import available as _available
from unirun_openvino._devices import ov_name
from unirun_openvino._executable import OpenVINOExecutable

Array = np.ndarray[Any, Any]
#: What OpenVINO's CPU plugin computes in when nobody asks (bf16 where the CPU has it).
CPU_DEFAULT = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()
#: fp16/bf16 builds: max |error| over the output's scale (max |reference|). Measured ≤ 4.1e-3
#: on these models (see README); the bound leaves room for other CPUs.
REDUCED_TOLERANCE = 2e-2


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNIRUN_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


def _ov(model: unirun.Model) -> OpenVINOExecutable:
    return cast(OpenVINOExecutable, model._executable)


def _reference(model: Any, feeds: dict[str, Array]) -> list[Array]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)  # type: ignore[no-any-return]


def _feeds(model: Any, shapes: dict[str, tuple[int, ...]], seed: int = 3) -> dict[str, Array]:
    bounds = {k: unirun.ShapeRange.fixed(v) for k, v in shapes.items()}
    return random_feeds(graph_inputs(model), bounds, seed=seed)


def _scale_error(got: Array, want: Array) -> float:
    return float(np.max(np.abs(got.astype(np.float64) - want)) / np.max(np.abs(want)))


def _assert_fp32_close(got: Array, want: Array) -> None:
    """Within 1e-4 relative, with an absolute floor of 1e-5 of the output's scale for the
    elements that are nearly zero. A bf16 run misses this by two orders of magnitude."""
    assert got.dtype == want.dtype and got.shape == want.shape
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want)
        return
    atol = 1e-5 * float(np.max(np.abs(want)))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=atol)


MODELS: dict[str, tuple[Callable[[], Any], dict[str, tuple[int, ...]]]] = {
    "cnn": (lambda: conv_net(size=64), {"image": (3, 3, 64, 64)}),
    "transformer": (lambda: transformer_block(), {"x": (2, 16, 32)}),
    "embedding_int64": (lambda: embedding_model(), {"ids": (3, 9), "scale": (1,)}),
    "mlp": (lambda: mlp(), {"x": (5, 16)}),
    "multi_io_bool": (lambda: multi_io(), {}),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_fp32_outputs_match_onnxruntime(name: str) -> None:
    build, shapes = MODELS[name]
    model = build()
    feeds = _feeds(model, shapes)
    expected = _reference(model, feeds)
    with unirun.load(model, backend="openvino", device="cpu") as m:
        assert (m.backend, m.device) == ("openvino", Device("cpu"))
        assert [s.name for s in m.inputs] == [i.name for i in graph_inputs(model)]
        got = m(feeds)
        assert m.artifact.manifest.extra["inference_precision"] == "f32"
        assert m.precision == "fp32" and m.artifact.manifest.computed_precision is None
    assert list(got) == [o.name for o in model.graph.output]
    for value, want in zip(got.values(), expected, strict=True):
        _assert_fp32_close(value, want)


@pytest.mark.skipif(CPU_DEFAULT == "f32", reason="OpenVINO's CPU default here is f32 already")
def test_fp32_is_exact_where_openvino_would_pick_bf16() -> None:
    """OpenVINO's CPU default on a bf16-capable CPU is bf16; unirun's fp32 must not be."""
    model = transformer_block(dim=64, heads=4, hidden=128)
    feeds = _feeds(model, {"x": (2, 32, 64)})
    want = _reference(model, feeds)[0]
    native = ov.Core().compile_model(ov.Core().read_model(model.SerializeToString()), "CPU")
    assert native.get_property("INFERENCE_PRECISION_HINT").get_type_name() == CPU_DEFAULT
    native_error = _scale_error(native.create_infer_request().infer([feeds["x"]])[0], want)
    with unirun.load(model, backend="openvino", device="cpu") as m:
        ours = _scale_error(m(feeds)["y"], want)
        assert m.precision == "fp32"
    assert native_error > 1e-3 > 1e-5 > ours


def _granted(model: Any, precision: str) -> str:
    """The precision OpenVINO's own API compiles ``model`` in on this CPU when asked for
    ``precision``: the truth unirun must report."""
    core = ov.Core()
    hint = {"fp32": "f32", "fp16": "f16", "bf16": "bf16"}[precision]
    compiled = core.compile_model(
        core.read_model(model.SerializeToString()), "CPU", {"INFERENCE_PRECISION_HINT": hint}
    )
    name = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    return {"f32": "fp32", "f16": "fp16", "bf16": "bf16"}[name]


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("name", ["cnn", "transformer"])
def test_reduced_precision_stays_within_documented_tolerance(name: str, precision: str) -> None:
    """The build computes in what OpenVINO grants on this CPU (the request where
    OPTIMIZATION_CAPABILITIES lists it, fp32 or bf16 where not), says so, and stays within
    tolerance; a reduced build is really reduced and a substituted fp32 one is exact."""
    build, shapes = MODELS[name]
    model = build()
    feeds = _feeds(model, shapes)
    want = _reference(model, feeds)[0]
    granted = _granted(model, precision)
    capability = {"fp16": "FP16", "bf16": "BF16"}[precision]
    if capability in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        assert granted == precision
    with unirun.load(model, backend="openvino", device="cpu", precision=precision) as m:
        got = next(iter(m(feeds).values()))
        assert m.precision == granted == _ov(m).precision
        extra = m.artifact.manifest.extra
    assert (
        extra["properties"]["INFERENCE_PRECISION_HINT"]
        == {"fp16": "f16", "bf16": "bf16"}[precision]
    )
    assert extra["inference_precision"] == {"fp32": "f32", "fp16": "f16", "bf16": "bf16"}[granted]
    error = _scale_error(got, want)
    assert error < REDUCED_TOLERANCE
    if granted == "fp32":
        assert error < 1e-5
    else:
        assert error > 1e-5  # it really ran in reduced precision


SPATIAL = {"image": ((1, 3, 16, 16), (4, 3, 32, 32), (8, 3, 64, 64))}


def test_dynamic_batch_and_spatial_sizes_within_bounds() -> None:
    model = conv_net(batch="N", size="S")
    with unirun.load(model, backend="openvino", device="cpu", shapes=SPATIAL) as m:
        assert m.inputs[0].shape == ("N", 3, "S", "S")
        for shape in [(1, 3, 16, 16), (8, 3, 64, 64), (3, 3, 40, 24), (5, 3, 17, 63)]:
            feeds = {"image": np.random.default_rng(0).standard_normal(shape, np.float32)}
            _assert_fp32_close(m(feeds)["logits"], _reference(model, feeds)[0])


@pytest.mark.parametrize(
    ("shape", "axis"), [((9, 3, 32, 32), 0), ((2, 3, 15, 32), 2), ((2, 3, 32, 65), 3)]
)
def test_inputs_outside_the_bounds_raise_input_error(shape: tuple[int, ...], axis: int) -> None:
    with unirun.load(conv_net(size="S"), backend="openvino", device="cpu", shapes=SPATIAL) as m:
        x = np.zeros(shape, np.float32)
        with pytest.raises(InputError, match=r"'image' expects float32\[1\.\.8, 3, 16\.\.64, "):
            m(x)
        with pytest.raises(InputError, match=rf"dimension {axis}\).*max \(8, 3, 64, 64\)"):
            m(x)
        # Past the core's check, OpenVINO's own bound check also surfaces as an InputError.
        with pytest.raises(
            InputError, match=r"refused input 'image' of shape .* for shapes \[1\.\.8,3,16\.\.64,"
        ) as info:
            _ov(m).create_context().infer({"image": x})
        assert "src/" not in str(info.value)


def test_fixed_shape_compiles_static() -> None:
    with unirun.load(
        conv_net(), backend="openvino", device="cpu", shapes={"image": (2, 3, 32, 32)}
    ) as m:
        assert m.inputs[0].shape == (2, 3, 32, 32) and m.outputs[0].shape == (2, 10)
        assert _ov(m)._compiled.inputs[0].get_partial_shape().is_static
        with pytest.raises(InputError, match=r"expects float32\[2, 3, 32, 32\]"):
            m(np.zeros((3, 3, 32, 32), np.float32))


def test_transformer_with_bounded_sequence() -> None:
    model = transformer_block()
    shapes = {"x": ((1, 1, 32), (2, 16, 32), (4, 64, 32))}
    with unirun.load(model, backend="openvino", device="cpu", shapes=shapes) as m:
        assert m.inputs[0].shape == ("batch", "seq", 32)
        for size in [(1, 1), (3, 17), (4, 64)]:
            feeds = _feeds(model, {"x": (*size, 32)}, seed=size[1])
            _assert_fp32_close(m(feeds)["y"], _reference(model, feeds)[0])
        with pytest.raises(InputError, match="dimension 1"):
            m(np.zeros((1, 65, 32), np.float32))


def test_attention_is_right_after_a_sequence_of_length_one() -> None:
    """OpenVINO 2026.4's CPU attention snippet, first run at sequence length 1, returns wrong
    values for lengths >= 16 afterwards; unirun turns snippets off for dynamic models."""
    model = transformer_block()
    with unirun.load(model, backend="openvino", device="cpu") as m:
        assert m.artifact.manifest.extra["properties"]["SNIPPETS_MODE"] == "DISABLE"
        for seq in [1, 17, 64, 1, 33]:
            feeds = _feeds(model, {"x": (2, seq, 32)}, seed=seq)
            _assert_fp32_close(m(feeds)["y"], _reference(model, feeds)[0])


def test_static_models_keep_snippets() -> None:
    with unirun.load(
        transformer_block(), backend="openvino", device="cpu", shapes={"x": (2, 16, 32)}
    ) as m:
        assert "SNIPPETS_MODE" not in m.artifact.manifest.extra["properties"]


@pytest.mark.skipif(not ov.__version__.startswith("2026.4"), reason="a 2026.4 canary")
def test_openvino_attention_bug_is_still_there() -> None:
    """When this fails, OpenVINO fixed the bug: the `snippets` default can go back to on."""
    model = transformer_block()
    with unirun.load(model, backend="openvino", device="cpu", options={"snippets": True}) as m:
        m(_feeds(model, {"x": (2, 1, 32)}))
        feeds = _feeds(model, {"x": (2, 17, 32)})
        assert _scale_error(m(feeds)["y"], _reference(model, feeds)[0]) > 0.1


def test_eight_threads_give_the_results_of_one() -> None:
    model = transformer_block()
    shapes = {"x": ((1, 1, 32), (2, 8, 32), (8, 16, 32))}
    batches = [_feeds(model, {"x": (i + 1, 2 * i + 1, 32)}, seed=i) for i in range(8)]
    with unirun.load(model, backend="openvino", device="cpu", shapes=shapes) as m:
        expected = [m(b)["y"] for b in batches]
        errors: list[BaseException] = []
        start = threading.Barrier(8)

        def worker(i: int) -> None:
            try:
                start.wait()
                for _ in range(10):
                    np.testing.assert_array_equal(m(batches[i])["y"], expected[i])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[0]
        assert [r["y"].shape[0] for r in m.map(batches)] == list(range(1, 9))


def test_read_only_inputs_are_accepted() -> None:
    model = mlp()
    x = np.arange(32, dtype=np.float32).reshape(2, 16) / 32
    x.flags.writeable = False
    with unirun.load(model, backend="openvino", device="cpu") as m:
        _assert_fp32_close(m(x)["probs"], _reference(model, {"x": x})[0])


def test_outputs_renamed_around_dropout_keep_their_onnx_names() -> None:
    """OpenVINO merges ``r`` into ``y`` when it drops the Dropout; both come back, right."""
    graph = helper.make_graph(
        [
            helper.make_node("Neg", ["x"], ["r"], name="neg"),
            helper.make_node("Dropout", ["r"], ["y"], name="drop"),
            helper.make_node("Relu", ["x"], ["z"], name="relu"),
        ],
        "dropout",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n", 4]),
            helper.make_tensor_value_info("r", TensorProto.FLOAT, ["n", 4]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    native = ov.Core().read_model(model.SerializeToString())
    assert "r" not in native.outputs[1].get_names()  # the renaming this test is about
    x = np.array([[-1, 2, -3, 4]], np.float32)
    with unirun.load(model, backend="openvino", device="cpu") as m:
        assert [o.name for o in m.outputs] == ["z", "r", "y"]
        out = m(x)
    np.testing.assert_array_equal(out["z"], np.maximum(x, 0))
    np.testing.assert_array_equal(out["r"], -x)
    np.testing.assert_array_equal(out["y"], -x)


def test_input_openvino_folds_away_is_still_declared() -> None:
    """An empty, static ``axes`` input has no OpenVINO port; inputs are matched by name."""
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["data", "axes"], ["reduced"], keepdims=1)],
        "fold",
        [
            helper.make_tensor_value_info("data", TensorProto.FLOAT, ["n", 2]),
            helper.make_tensor_value_info("axes", TensorProto.INT64, [0]),
        ],
        [helper.make_tensor_value_info("reduced", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    assert len(ov.Core().read_model(model.SerializeToString()).inputs) == 1
    feeds = {"data": np.arange(6, dtype=np.float32).reshape(3, 2), "axes": np.zeros(0, np.int64)}
    with unirun.load(model, backend="openvino", device="cpu") as m:
        assert [str(s) for s in m.inputs] == ["data: float32[n, 2]", "axes: int64[0]"]
        np.testing.assert_allclose(m(feeds)["reduced"], [[2.5]])
        with pytest.raises(InputError, match="missing input 'axes'"):
            m({"data": feeds["data"]})


def test_external_data_model(tmp_path: Path) -> None:
    model = conv_net()
    feeds = _feeds(model, {"image": (2, 3, 32, 32)})
    expected = _reference(model, feeds)[0]
    path = tmp_path / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="ext.bin", size_threshold=0)
    with unirun.load(path, backend="openvino", device="cpu") as m:
        _assert_fp32_close(m(feeds)["logits"], expected)


# -- options --------------------------------------------------------------------------------------


def test_options_reach_the_compiled_model() -> None:
    options = OpenVINOOptions(performance_hint="throughput", num_streams=2, cpu_pinning=False)
    with unirun.load(mlp(), backend="openvino", device="cpu", threads=2, options=options) as m:
        compiled = _ov(m)._compiled
        assert str(compiled.get_property("PERFORMANCE_HINT")) == "THROUGHPUT"
        assert int(compiled.get_property("NUM_STREAMS")) == 2
        assert compiled.get_property("INFERENCE_NUM_THREADS") == 2
        assert compiled.get_property("ENABLE_CPU_PINNING") is False
    with unirun.load(mlp(), backend="openvino", device="cpu") as m:
        compiled = _ov(m)._compiled
        assert str(compiled.get_property("PERFORMANCE_HINT")) == "LATENCY"


def test_options_are_validated() -> None:
    with pytest.raises(OptionsError, match=r"options for backend 'openvino'.*num_streams"):
        unirun.compile(mlp(), backend="openvino", device="cpu", options={"num_streams": 0})
    with pytest.raises(OptionsError, match=r"streams.*Extra inputs are not permitted"):
        unirun.compile(mlp(), backend="openvino", device="cpu", options={"streams": 2})
    with pytest.raises(OptionsError, match=r"does not pass OpenVINO property NO_SUCH through"):
        unirun.compile(
            mlp(), backend="openvino", device="cpu", options={"properties": {"NO_SUCH": 1}}
        )
    with pytest.raises(OptionsError, match=r"OpenVINO rejected a property: Wrong value"):
        unirun.compile(
            mlp(), backend="openvino", device="cpu", options={"properties": {"NUM_STREAMS": -7}}
        )


# -- errors ---------------------------------------------------------------------------------------


def _one_node(node: Any, inits: list[Any] | None = None, domain: str = "") -> Any:
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits or [],
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model


UNLOADABLE = {
    "unknown op": (
        _one_node(helper.make_node("FooBar", ["x"], ["y"], name="fb")),
        UnsupportedModelError,
        r"no conversion for operator FooBar \(opset 17\) at node 'fb'",
        [("fb", "FooBar")],
    ),
    "custom domain": (
        _one_node(
            helper.make_node("Fancy", ["x"], ["y"], name="f1", domain="my.ops"), domain="my.ops"
        ),
        UnsupportedModelError,
        r"operator my\.ops\.Fancy at node 'f1'",
        [("f1", "Fancy")],
    ),
    "unsupported attribute": (
        _one_node(
            helper.make_node(
                "Resize",
                ["x", "", "scales"],
                ["y"],
                name="rs",
                mode="cubic",
                coordinate_transformation_mode="tf_crop_and_resize",
            ),
            [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")],
        ),
        UnsupportedModelError,
        r"cannot convert node 'rs' \(Resize\): tf_crop_and_resize .* not supported",
        [("rs", "Resize")],
    ),
    "inconsistent weights": (
        _one_node(
            helper.make_node("Conv", ["x", "w"], ["y"], name="conv_bad"),
            [numpy_helper.from_array(np.ones((4, 5, 3, 3), np.float32), "w")],
        ),
        CompileError,
        r"node 'conv_bad' \(Conv\): Data batch channel count \(3\) does not match filter",
        None,
    ),
    "dangling input": (
        _one_node(helper.make_node("Relu", ["nowhere"], ["y"], name="r")),
        InvalidModelError,
        r"tensor 'nowhere' is consumed but no node",
        None,
    ),
}


@pytest.mark.parametrize("case", list(UNLOADABLE))
def test_unloadable_models_raise_typed_short_errors(case: str) -> None:
    model, error, match, ops = UNLOADABLE[case]
    with pytest.raises(error, match=match) as info:
        unirun.compile(model, backend="openvino", device="cpu", cache=False)
    text = str(info.value)
    assert "src/" not in text and "Exception from" not in text and "\n" not in text
    assert isinstance(info.value.__cause__, RuntimeError)  # the engine's message, chained
    if ops is not None:
        assert info.value.ops == ops  # type: ignore[attr-defined]


def test_string_tensors_are_refused_before_they_crash_openvino() -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["s"], ["t"], name="id")],
        "strings",
        [helper.make_tensor_value_info("s", TensorProto.STRING, ["n"])],
        [helper.make_tensor_value_info("t", TensorProto.STRING, ["n"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with pytest.raises(UnsupportedModelError, match=r"no tensors of type string .*s: string"):
        unirun.compile(model, backend="openvino", device="cpu", cache=False)


@pytest.mark.parametrize("device", ["gpu", "gpu:1", "npu"])
def test_unavailable_device_names_the_available_ones(device: str) -> None:
    if device.split(":")[0].upper() in ov.Core().available_devices:  # pragma: no cover
        pytest.skip(f"this machine has an OpenVINO {device}")
    with pytest.raises(DeviceError, match=r"not available to backend 'openvino'; available: cpu"):
        unirun.load(mlp(), backend="openvino", device=device)
    # The plugin itself refuses too (e.g. for an artifact), naming OpenVINO's devices.
    with pytest.raises(DeviceError, match=r"OpenVINO has no device .* it reports: cpu \(CPU\)"):
        ov_name(ov.Core(), Device.parse(device))


def test_auto_device_runs_through_openvino_auto() -> None:
    model = conv_net()
    feeds = _feeds(model, {"image": (2, 3, 32, 32)})
    with unirun.load(model, backend="openvino", device="auto") as m:
        assert m.device == Device("auto")
        extra = m.artifact.manifest.extra
        assert extra["ov_device"] == "AUTO" and extra["blob"] is None  # AUTO cannot export
        assert extra["execution_devices"] == ["CPU"]
        _assert_fp32_close(m(feeds)["logits"], _reference(model, feeds)[0])


def test_backends_lists_openvino_with_its_devices() -> None:
    info = next(b for b in unirun.backends() if b.name == "openvino")
    assert info.available and info.version == ov.__version__ and info.plugin_version == "0.1.0"
    cpu = next(d for d in info.devices if d.device == Device("cpu"))
    assert ov.Core().get_property("CPU", "FULL_DEVICE_NAME") in cpu.description
    assert "OpenVINO CPU" in cpu.description
    exe = shutil.which("unirun", path=str(Path(sys.executable).parent))
    assert exe is not None
    out = subprocess.run([exe, "backends", "--json"], capture_output=True, text=True, check=True)
    listed = {b["name"]: b for b in json.loads(out.stdout)}
    assert listed["openvino"]["available"] is True
    expected = {str(d) for d in _available(ov.Core())}
    assert {d["device"] for d in listed["openvino"]["devices"]} == expected and "cpu" in expected


def test_op_check_names_nodes_without_compiling() -> None:
    from unirun.backend import SupportsOpCheck
    from unirun.source import OnnxModel
    from unirun_openvino import OpenVINOBackend

    backend = OpenVINOBackend()
    assert isinstance(backend, SupportsOpCheck)
    model, _, _, ops = UNLOADABLE["unknown op"]
    assert backend.unsupported_ops(OnnxModel.from_source(model), Device("cpu"), {}) == ops
    readable = OnnxModel.from_source(transformer_block())
    assert backend.unsupported_ops(readable, Device("cpu"), {}) == []
    if "NPU" not in ov.Core().available_devices:  # an absent device: it cannot tell
        assert backend.unsupported_ops(readable, Device("npu"), {}) is None


def test_backend_fastest_measures_the_candidates_and_keeps_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Both engines run here; ``fastest`` times each on the model and keeps the quicker one
    (the reference backend is never a candidate: it is never chosen automatically)."""
    import logging

    from unirun.testing import conv_net

    caplog.set_level(logging.INFO, logger="unirun")
    model = conv_net(size=16)
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    with unirun.load(model, backend="fastest", device="cpu") as m:
        assert m.backend in ("onnxruntime", "openvino")
        got = m(x)["logits"]
    timed = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("fastest:"))
    assert "onnxruntime" in timed and "openvino" in timed and "reference" not in timed
    with unirun.load(model, backend="reference") as ref:
        np.testing.assert_allclose(got, ref(x)["logits"], rtol=1e-4, atol=1e-5)

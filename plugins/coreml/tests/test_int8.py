"""Int8 weights: DequantizeLinear of int8/uint8 constants becomes Core ML's constexpr dequantize
ops, so the package keeps the weights int8; the numpy evaluator of the saved package must match
ONNX Runtime on the same Q/DQ model within the fp32 bound, and ``precision="int8"`` works
through unirun (unverified off macOS)."""

from __future__ import annotations

import logging
import platform
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import unirun
import unirun_coreml as uc
from unirun.errors import CompileError
from unirun.testing.models import resnet_like

F32 = np.float32
RTOL = 1e-5  # the plugin's fp32 bound (README, conftest.RTOL)
FP16_RTOL = 1e-2  # and its fp16 bound


def make_model(
    nodes: list[onnx.NodeProto],
    inputs: dict[str, tuple[Any, list[int | str]]],
    outputs: list[str],
    inits: dict[str, np.ndarray],
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(np.dtype(d)), s)
            for n, (d, s) in inputs.items()
        ],
        [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), n) for n, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def quantize(w: np.ndarray, axis: int | None, dtype: Any) -> tuple[np.ndarray, ...]:
    """(q, scale, zero_point): symmetric for int8, asymmetric for uint8; per tensor when
    ``axis`` is None."""
    others = tuple(i for i in range(w.ndim) if i != axis) if axis is not None else None
    if dtype == np.int8:
        scale = np.abs(w).max(axis=others) / 127
        zero = np.zeros(np.shape(scale), np.int8)
    else:
        lo = np.minimum(w.min(axis=others), 0)
        hi = np.maximum(w.max(axis=others), 0)
        scale = (hi - lo) / 255
        zero = np.round(-lo / scale).astype(np.uint8)
    shape = [1] * w.ndim
    if axis is not None:
        shape[axis] = -1
    s, z = np.reshape(scale, shape), np.reshape(zero, shape).astype(np.int32)
    info = np.iinfo(dtype)
    q = np.clip(np.round(w / s) + z, info.min, info.max).astype(dtype)
    return q, np.asarray(scale, F32), zero


class Weights:
    """Initializers and DequantizeLinear nodes for int8 weights."""

    def __init__(self, per_channel: bool, dtype: Any, seed: int) -> None:
        self.per_channel, self.dtype = per_channel, dtype
        self.rng = np.random.default_rng(seed)
        self.inits: dict[str, np.ndarray] = {}
        self.nodes: list[onnx.NodeProto] = []

    def add(self, name: str, shape: tuple[int, ...], axis: int) -> str:
        """A weight stored int8, dequantized along ``axis`` (or per tensor)."""
        w = (self.rng.normal(size=shape) * np.sqrt(2.0 / np.prod(shape[1:]))).astype(F32)
        q, s, z = quantize(w, axis if self.per_channel else None, self.dtype)
        self.inits.update({f"{name}_q": q, f"{name}_s": s, f"{name}_z": z})
        attrs = {"axis": axis} if self.per_channel else {}
        self.nodes.append(
            helper.make_node(
                "DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [name], **attrs
            )
        )
        return name

    def add_qdq(self, name: str, shape: tuple[int, ...]) -> str:
        """A float weight behind QuantizeLinear → DequantizeLinear (per tensor): the Q folds."""
        w = (self.rng.normal(size=shape) * np.sqrt(2.0 / np.prod(shape[1:]))).astype(F32)
        _, s, z = quantize(w, None, self.dtype)
        self.inits.update({f"{name}_f": w, f"{name}_s": s, f"{name}_z": z})
        scale_zero = [f"{name}_s", f"{name}_z"]
        self.nodes += [
            helper.make_node("QuantizeLinear", [f"{name}_f", *scale_zero], [f"{name}_q"]),
            helper.make_node("DequantizeLinear", [f"{name}_q", *scale_zero], [name]),
        ]
        return name

    def bias(self, name: str, size: int) -> str:
        self.inits[name] = (self.rng.normal(size=size) * 0.1).astype(F32)
        return name


def mlp(per_channel: bool = True, dtype: Any = np.int8, seed: int = 0) -> onnx.ModelProto:
    """x [N, 64] → MatMul → Relu → Gemm(alpha) → Tanh → Transpose'd weight MatMul → Gemm(transB)
    → y [N, 10]; every weight int8 behind DequantizeLinear."""
    w = Weights(per_channel, dtype, seed)
    w1 = w.add("w1", (64, 256), axis=1)  # MatMul B: [K, N], channels on axis 1
    w2 = w.add("w2", (256, 128), axis=1)  # Gemm without transB
    w3 = w.add("w3", (96, 128), axis=0)  # stored [N, K]: a Transpose makes it MatMul's B
    w4 = w.add_qdq("w4", (10, 96))  # Gemm transB=1, Q → DQ of a float constant
    nodes = [
        *w.nodes,
        helper.make_node("MatMul", ["x", w1], ["h1"]),
        helper.make_node("Add", ["h1", w.bias("b1", 256)], ["h1b"]),
        helper.make_node("Relu", ["h1b"], ["r1"]),
        helper.make_node("Gemm", ["r1", w2, w.bias("b2", 128)], ["h2"], alpha=0.5),
        helper.make_node("Tanh", ["h2"], ["t2"]),
        helper.make_node("Transpose", [w3], ["w3t"], perm=[1, 0]),
        helper.make_node("MatMul", ["t2", "w3t"], ["h3"]),
        helper.make_node("Relu", ["h3"], ["r3"]),
        helper.make_node("Gemm", ["r3", w4, w.bias("b4", 10)], ["y"], transB=1),
    ]
    return make_model(nodes, {"x": (F32, ["N", 64])}, ["y"], w.inits)


def cnn(per_channel: bool = True, dtype: Any = np.int8, seed: int = 1) -> onnx.ModelProto:
    """image [N, 3, 16, 16] → Conv → Relu → grouped strided Conv → Relu → ConvTranspose →
    GlobalAveragePool → Flatten → Gemm(transB) → logits [N, 10]."""
    w = Weights(per_channel, dtype, seed)
    c1 = w.add("c1", (32, 3, 3, 3), axis=0)
    c2 = w.add("c2", (64, 8, 3, 3), axis=0)  # 4 groups
    c3 = w.add("c3", (64, 32, 2, 2), axis=1)  # ConvTranspose weight: [C_in, C_out, k, k]
    fc = w.add("fc", (10, 32), axis=0)
    nodes = [
        *w.nodes,
        helper.make_node("Conv", ["image", c1, w.bias("cb1", 32)], ["a1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a1"], ["r1"]),
        helper.make_node(
            "Conv",
            ["r1", c2, w.bias("cb2", 64)],
            ["a2"],
            group=4,
            strides=[2, 2],
            pads=[1, 1, 1, 1],
        ),
        helper.make_node("Relu", ["a2"], ["r2"]),
        helper.make_node("ConvTranspose", ["r2", c3], ["a3"], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["a3"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", fc, w.bias("fb", 10)], ["logits"], transB=1),
    ]
    return make_model(nodes, {"image": (F32, ["N", 3, 16, 16])}, ["logits"], w.inits)


MODELS = {"mlp": (mlp, "x", (64,)), "cnn": (cnn, "image", (3, 16, 16))}
QUANT = {
    "int8-channel": (True, np.int8),
    "int8-tensor": (False, np.int8),
    "uint8-channel": (True, np.uint8),
    "uint8-tensor": (False, np.uint8),
}


def float_twin(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same model with every weight dequantized into a float32 initializer."""
    twin = onnx.ModelProto()
    twin.CopyFrom(model)
    values = {t.name: numpy_helper.to_array(t) for t in twin.graph.initializer}
    kept = []
    for node in twin.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            feeds = {n: values[n] for n in node.input if n}
            values[node.output[0]] = ReferenceEvaluator(node).run(None, feeds)[0]
            if node.op_type == "DequantizeLinear":
                kept.append(node.output[0])
    nodes = [n for n in twin.graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear")]
    used = {n for node in nodes for n in node.input}
    inits = [numpy_helper.from_array(values[n], n) for n in kept] + [
        t for t in twin.graph.initializer if t.name in used
    ]
    del twin.graph.node[:]
    twin.graph.node.extend(nodes)
    del twin.graph.initializer[:]
    twin.graph.initializer.extend(inits)
    return twin


def op_types(package: Path) -> list[str]:
    spec = spec_of(package)
    main = spec.mlProgram.functions["main"]
    return [op.type for op in main.block_specializations[main.opset].operations]


def spec_of(package: Path) -> Any:
    import coremltools as ct

    return ct.models.MLModel(str(package), skip_model_load=True).get_spec()


def package_bytes(package: Path) -> int:
    return sum(f.stat().st_size for f in package.rglob("*") if f.is_file())


def batches(name: str, tail: tuple[int, ...], rng: np.random.Generator) -> list[dict[str, Any]]:
    return [{name: rng.normal(size=(n, *tail)).astype(F32)} for n in (1, 3)]


def check_against_ort(
    harness: Any, package: Path, model: onnx.ModelProto, feeds: list[dict[str, Any]], rtol: float
) -> float:
    evaluator = uc.Evaluator(package)
    worst = 0.0
    for feed in feeds:
        want = run_ort(model, feed)
        got = evaluator(feed)
        for key, expected in want.items():
            report = harness.compare_arrays(got[key], expected, rtol)
            assert report.ok, f"{key} differs from ONNX Runtime on the same Q/DQ model: {report}"
            worst = max(worst, report.max_rel)
    return worst


SHAPES = {
    "x": ((1, 64), (2, 64), (4, 64)),
    "image": ((1, 3, 16, 16), (2, 3, 16, 16), (4, 3, 16, 16)),
}


@pytest.mark.parametrize("quant", list(QUANT))
@pytest.mark.parametrize("which", list(MODELS))
def test_int8_weights_match_onnx_runtime(
    harness: Any, which: str, quant: str, tmp_path: Path, rng: np.random.Generator
) -> None:
    build, name, tail = MODELS[which]
    model = build(*QUANT[quant])
    result = uc.translate(model, shapes={name: SHAPES[name]})
    package = result.save(tmp_path / "m.mlpackage")
    # Every DequantizeLinear of a constant stays int8 (a Q → DQ pair folds to one).
    assert result.int8_weights == 4
    assert op_types(package).count("constexpr_affine_dequantize") == 4
    check_against_ort(harness, package, model, batches(name, tail, rng), RTOL)


@pytest.mark.parametrize(
    ("target", "op"),
    [
        ("iOS16", "constexpr_affine_dequantize"),
        ("macOS14", "constexpr_affine_dequantize"),
        ("iOS18", "constexpr_blockwise_shift_scale"),
    ],
)
@pytest.mark.parametrize("which", list(MODELS))
def test_constexpr_op_per_deployment_target(
    harness: Any, which: str, target: str, op: str, tmp_path: Path, rng: np.random.Generator
) -> None:
    build, name, tail = MODELS[which]
    model = build(True, np.uint8)  # per-channel zero points: the offsets must be right too
    package = uc.translate(model, shapes={name: SHAPES[name]}, deployment_target=target).save(
        tmp_path / "m.mlpackage"
    )
    assert op_types(package).count(op) == 4
    check_against_ort(harness, package, model, batches(name, tail, rng), RTOL)


@pytest.mark.parametrize("which", list(MODELS))
def test_package_holds_int8_weights(which: str, tmp_path: Path) -> None:
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load

    build, name, _ = MODELS[which]
    model = build(True, np.int8)
    int8 = uc.translate(model, shapes={name: SHAPES[name]}).save(tmp_path / "int8.mlpackage")
    fp32 = uc.translate(float_twin(model), shapes={name: SHAPES[name]}).save(
        tmp_path / "fp32.mlpackage"
    )
    assert "constexpr_affine_dequantize" not in op_types(fp32)
    spec = spec_of(int8)
    program = load(
        spec,
        specification_version=spec.specificationVersion,
        file_weights_dir=ct.models.MLModel(str(int8), skip_model_load=True).weights_dir,
    )
    stored = [
        op.quantized_data.val.dtype
        for op in program.functions["main"].operations
        if op.op_type == "constexpr_affine_dequantize"
    ]
    assert stored == [np.dtype(np.int8)] * 4
    # The weight file holds a quarter of the bytes (plus the scales, the biases, alignment);
    # the whole package a little more (the program itself): measured 0.27-0.29 and 0.28-0.37.
    weight_file = "Data/com.apple.CoreML/weights/weight.bin"
    ratio = (int8 / weight_file).stat().st_size / (fp32 / weight_file).stat().st_size
    assert ratio <= 0.3, ratio
    assert package_bytes(int8) / package_bytes(fp32) < 0.4, (
        package_bytes(int8),
        package_bytes(fp32),
    )


def test_fp16_compute_keeps_int8_weights(
    harness: Any, tmp_path: Path, rng: np.random.Generator
) -> None:
    model = cnn(True, np.uint8)
    result = uc.translate(model, shapes={"image": SHAPES["image"]}, precision="fp16")
    package = result.save(tmp_path / "m.mlpackage")
    assert result.int8_weights == 4
    check_against_ort(harness, package, model, batches("image", (3, 16, 16), rng), FP16_RTOL)


def test_before_ios16_the_weights_stay_float(
    harness: Any, tmp_path: Path, rng: np.random.Generator
) -> None:
    model = mlp(True, np.uint8)
    result = uc.translate(model, shapes={"x": SHAPES["x"]}, deployment_target="iOS15")
    package = result.save(tmp_path / "m.mlpackage")
    assert result.int8_weights == 0
    assert not any(t.startswith("constexpr_") for t in op_types(package))
    check_against_ort(harness, package, model, batches("x", (64,), rng), RTOL)


def activation_qdq() -> onnx.ModelProto:
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="quantize_x"),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dequantize_x"),
        helper.make_node("Relu", ["xd"], ["y"]),
    ]
    inits = {"s": np.array(0.1, F32), "z": np.array(128, np.uint8)}
    return make_model(nodes, {"x": (F32, [2, 4])}, ["y"], inits)


def test_op_check_agrees_with_translate() -> None:
    for build, name, _ in MODELS.values():
        model = build(True, np.uint8)
        assert uc.unsupported_ops(model, shapes={name: SHAPES[name]}) == []
    model = activation_qdq()
    refused = uc.explain_unsupported(model)
    assert [(op.node_name, op.op_type) for op in refused] == [
        ("quantize_x", "QuantizeLinear"),
        ("dequantize_x", "DequantizeLinear"),
    ]
    assert all("int8 activations are not supported" in why for why in refused.values())
    with pytest.raises(uc.UnsupportedOpsError) as caught:
        uc.translate(model)
    assert caught.value.ops == [(op.node_name, op.op_type) for op in refused]


def test_a_weight_used_twice_is_stored_once(
    harness: Any, tmp_path: Path, rng: np.random.Generator
) -> None:
    w = Weights(True, np.int8, seed=3)
    shared = w.add("w", (64, 64), axis=1)
    nodes = [
        *w.nodes,
        helper.make_node("MatMul", ["x", shared], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", shared], ["y"]),
    ]
    model = make_model(nodes, {"x": (F32, [2, 64])}, ["y"], w.inits)
    result = uc.translate(model)
    package = result.save(tmp_path / "m.mlpackage")
    assert result.int8_weights == 1
    check_against_ort(harness, package, model, [{"x": rng.normal(size=(2, 64)).astype(F32)}], RTOL)


# -- teeth: the comparison fails when the int8 path is wrong ------------------------------------


@pytest.mark.parametrize("bug", ["zero point dropped", "Gemm alpha dropped", "axis moved"])
def test_seeded_int8_bugs_are_caught(
    harness: Any,
    bug: str,
    tmp_path: Path,
    rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dataclasses import replace

    from unirun_coreml._translate import _quantized

    real = _quantized.Quantized
    if bug == "zero point dropped":
        var = real.var
        monkeypatch.setattr(
            real, "var", lambda self, t, d: var(replace(self, zero_point=self.zero_point * 0), t, d)
        )
    elif bug == "Gemm alpha dropped":
        monkeypatch.setattr(real, "times", lambda self, factor: self)
    else:  # the scale vector applied along the wrong axis of a square weight
        monkeypatch.setattr(
            real, "transposed", lambda self, perm: replace(self, data=self.data.transpose(perm))
        )
    model = mlp(True, np.uint8) if bug != "axis moved" else square_mlp()
    package = uc.translate(model, shapes={"x": SHAPES["x"]}).save(tmp_path / "m.mlpackage")
    with pytest.raises(AssertionError, match="differs from ONNX Runtime"):
        check_against_ort(harness, package, model, batches("x", (64,), rng), RTOL)


def square_mlp() -> onnx.ModelProto:
    w = Weights(True, np.int8, seed=4)
    w1 = w.add("w1", (64, 64), axis=1)
    nodes = [*w.nodes, helper.make_node("MatMul", ["x", w1], ["y"])]
    return make_model(nodes, {"x": (F32, ["N", 64])}, ["y"], w.inits)


# -- through unirun ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet() -> onnx.ModelProto:
    return resnet_like(width=16, size=32, classes=100)


RESNET_SHAPES = {"image": ((1, 3, 32, 32), (2, 3, 32, 32), (4, 3, 32, 32))}


def calibration(count: int = 20) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.normal(size=(1, 3, 32, 32)).astype(F32) for _ in range(count)]


def payload(artifact: unirun.Artifact) -> int:
    return sum(f.size for f in artifact.manifest.files)


@pytest.mark.slow
def test_compile_int8_through_unirun(
    harness: Any, resnet: onnx.ModelProto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from unirun.backend import Int8Form
    from unirun.quantize._emit import emit

    with caplog.at_level(logging.WARNING, logger="unirun"):
        art = unirun.compile(
            resnet,
            backend="coreml",
            precision="int8",
            calibration=calibration(),
            shapes=RESNET_SHAPES,
            options={"int8_compute": "fp32"},
            cache=tmp_path / "cache",
        )
    record = art.manifest.extra["quantization"]
    assert record["form"] == "weights" and record["verified"] is False
    assert record["accuracy"] == {} and record["speed"] is None
    assert (record["calibration_samples"], record["held_back_samples"]) == (16, 4)
    assert "was not verified" in caplog.text and "accuracy and speed against fp32" in caplog.text
    assert art.manifest.options.precision == "int8"
    assert art.manifest.computed_precision == "fp32"
    quantized = record["parameters"]["quantized_weights"]
    assert art.manifest.extra["int8_weights"] == quantized > 0
    saved = art.save(tmp_path / "int8.coreml.unirun")
    package = saved / "model.mlpackage"
    assert op_types(package).count("constexpr_affine_dequantize") == quantized

    # The package computes what ONNX Runtime computes on the Q/DQ model unirun made.
    qdq = tmp_path / "weights.onnx"
    emit(Int8Form.WEIGHTS, resnet, ranges=None, reduce_range=False, source=resnet, out=qdq)
    rng = np.random.default_rng(8)
    feeds = [{"image": rng.normal(size=(n, 3, 32, 32)).astype(F32)} for n in (1, 4)]
    check_against_ort(harness, package, onnx.load(qdq), feeds, RTOL)

    fp32 = unirun.compile(resnet, backend="coreml", shapes=RESNET_SHAPES, cache=False)
    assert payload(art) / payload(fp32) < 0.35, (payload(art), payload(fp32))


@pytest.mark.slow
def test_int8_computes_in_fp16_by_default(
    resnet: onnx.ModelProto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="unirun"):
        art = unirun.compile(
            resnet,
            backend="coreml",
            precision="int8",
            calibration=calibration(),
            shapes=RESNET_SHAPES,
            cache=False,
        )
    assert art.manifest.computed_precision == "fp16"
    assert "computes in fp16" in caplog.text and "only its weights are int8" in caplog.text
    # Against the fp32 model: within unirun's int8 bound (cosine ≥ 0.999, max|Δ|/max|ref| ≤ 0.05).
    package = art.directory / "model.mlpackage"
    rng = np.random.default_rng(9)
    for n in (1, 4):
        feed = {"image": rng.normal(size=(n, 3, 32, 32)).astype(F32)}
        got = uc.evaluate(package, feed)["logits"].astype(np.float64)
        want = run_ort(resnet, feed)["logits"].astype(np.float64)
        cos = np.sum(got * want, axis=1) / (
            np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1)
        )
        assert cos.min() >= 0.999 and np.abs(got - want).max() / np.abs(want).max() <= 0.05


def test_int8_refuses_a_target_without_constexpr_ops(resnet: onnx.ModelProto) -> None:
    with pytest.raises(CompileError, match=r"deployment_target 'iOS15'.*iOS16"):
        unirun.compile(
            resnet,
            backend="coreml",
            precision="int8",
            calibration=calibration(),
            shapes=RESNET_SHAPES,
            options={"deployment_target": "iOS15"},
            cache=False,
        )


def test_int8_needs_weights_the_translator_keeps(tmp_path: Path) -> None:
    """A model without int8 weights is refused at precision='int8' instead of becoming a float
    package labelled int8 (the core only sends the weights form, but a plugin checks what it
    built)."""
    from unirun.backend import CompileRequest, DeviceInfo
    from unirun.device import Device
    from unirun.options import CompileOptions
    from unirun.source import OnnxModel
    from unirun_coreml.backend import CoreMLBackend
    from unirun_coreml.options import CoreMLOptions

    model = mlp(True, np.int8)
    request = CompileRequest(
        DeviceInfo(Device("auto")),
        CompileOptions(precision="int8", shapes={"x": SHAPES["x"]}),
        CoreMLOptions(),
        tmp_path,
        None,
    )
    result = CoreMLBackend().compile(OnnxModel.from_source(model), request)
    assert result.precision == "fp16" and result.extra["int8_weights"] == 4
    with pytest.raises(CompileError, match="no weight of this model stayed int8"):
        CoreMLBackend().compile(OnnxModel.from_source(float_twin(model)), request)


ON_MAC = platform.system() == "Darwin"


@pytest.mark.skipif(not ON_MAC, reason="Core ML execution needs macOS 12 or newer")
@pytest.mark.parametrize("device", ["cpu", "ane"])
def test_int8_on_macos_is_verified(
    resnet: onnx.ModelProto, device: str
) -> None:  # pragma: no cover
    with unirun.load(
        resnet,
        backend="coreml",
        device=device,
        precision="int8",
        calibration=calibration(),
        shapes=RESNET_SHAPES,
        cache=False,
    ) as model:
        record = model.artifact.manifest.extra["quantization"]
        assert record["verified"] is True and record["form"] == "weights"
        logits = record["accuracy"]["logits"]
        assert logits["cosine"] >= 0.999 and logits["relative"] <= 0.05


# -- the ONNX corpus's Q/DQ cases, every input a constant (so they fold) ---------------------


def _qdq_cases() -> list[Any]:
    from onnx.backend.test.case import node

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = node.collect_testcases()
    return sorted(
        (c for c in cases if c.name.startswith(("test_quantizelinear", "test_dequantizelinear"))),
        key=lambda c: c.name,
    )


@pytest.mark.parametrize("case", _qdq_cases(), ids=lambda c: c.name)
def test_corpus_qdq_on_constants_folds_or_is_refused(case: Any, tmp_path: Path) -> None:
    """Every dtype, axis and block size the corpus has: a typed refusal or the right values,
    never a crash (the int8 bookkeeping runs on every folded Q/DQ node)."""
    model = case.model
    inputs = [
        numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto) else np.asarray(v)
        for v in case.data_sets[0][0]
    ]
    constants = dict(zip([v.name for v in model.graph.input], inputs, strict=True))
    try:
        result = uc.translate(model, constant_inputs=constants, deployment_target="iOS18")
    except (uc.TranslationError, uc.InputShapeError, uc.UnsupportedOpsError):
        return
    got = uc.evaluate(result.save(tmp_path / "m.mlpackage"), {})
    for info, want in zip(model.graph.output, case.data_sets[0][1], strict=True):
        want = numpy_helper.to_array(want) if isinstance(want, onnx.TensorProto) else want
        np.testing.assert_allclose(got[info.name].astype(np.float64), np.asarray(want, np.float64))

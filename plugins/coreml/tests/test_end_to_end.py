"""End to end: a small CNN and a small transformer encoder, fp32 and fp16, fixed and
flexible shapes, each compared with ONNX Runtime after translate → save → reload → evaluate."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import unirun_coreml as uc

F32 = np.float32
I64 = np.int64
RTOL = 1e-5
FP16_RTOL = 1e-2  # fp16 builds: |coreml - ort| <= 1e-2·|ort| + 1e-3·max|ort| (README)


def small_cnn(seed: int = 0) -> onnx.ModelProto:
    """Conv/BN/ReLU, pools (ceil_mode), grouped conv, Clip, Resize, ConvTranspose, skip
    Concat, Gemm head. ``image`` [N, 3, 16, 16] → ``logits`` [N, 5], ``mask`` [N, 4, 16, 16]."""
    rng = np.random.default_rng(seed)

    def w(*shape: int, scale: float = 0.3) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(F32)

    def bn(c: int) -> dict[str, np.ndarray]:
        return {
            "s": rng.uniform(0.5, 1.5, c).astype(F32),
            "b": w(c, scale=0.1),
            "m": w(c, scale=0.1),
            "v": rng.uniform(0.5, 2.0, c).astype(F32),
        }

    inits: dict[str, np.ndarray] = {
        "w1": w(8, 3, 3, 3),
        "b1": w(8, scale=0.1),
        "w2": w(8, 2, 3, 3),
        "w3": w(8, 8, 1, 1),
        "wt": w(16, 8, 3, 3),
        "bt": w(8, scale=0.1),
        "wm": w(4, 8, 3, 3),
        "fc_w": w(5, 16),
        "fc_b": w(5, scale=0.1),
        "scales": np.array([1, 1, 2, 2], F32),
        "roi": np.zeros(0, F32),
        "lo": np.array(0, F32),
        "hi": np.array(6, F32),
    }
    for prefix, c in (("bn1", 8), ("bn2", 8)):
        inits.update({f"{prefix}_{k}": v for k, v in bn(c).items()})
    node = helper.make_node
    nodes = [
        node("Conv", ["image", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[1, 1]),
        node("BatchNormalization", ["c1", "bn1_s", "bn1_b", "bn1_m", "bn1_v"], ["n1"]),
        node("Relu", ["n1"], ["r1"]),
        node("MaxPool", ["r1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        node("Conv", ["p1", "w2"], ["c2"], group=4, pads=[1, 1, 1, 1]),
        node("BatchNormalization", ["c2", "bn2_s", "bn2_b", "bn2_m", "bn2_v"], ["n2"]),
        node("Clip", ["n2", "lo", "hi"], ["r2"]),
        node("Conv", ["r2", "w3"], ["c3"]),
        node(
            "Resize",
            ["c3", "roi", "scales"],
            ["up"],
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        ),
        node("Concat", ["up", "r1"], ["cat"], axis=1),
        node(
            "ConvTranspose",
            ["cat", "wt", "bt"],
            ["ct"],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
            output_padding=[1, 1],
        ),
        node("AveragePool", ["ct"], ["ap"], kernel_shape=[2, 2], strides=[2, 2]),
        node("Conv", ["ap", "wm"], ["mask"], pads=[1, 1, 1, 1]),
        node("GlobalAveragePool", ["cat"], ["g"]),
        node("Flatten", ["g"], ["f"]),
        node("Gemm", ["f", "fc_w", "fc_b"], ["fc"], transB=1, alpha=0.5),
        node("Softmax", ["fc"], ["logits"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "small_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["N", 4, 16, 16]),
        ],
        [onnx.numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def small_transformer(
    seed: int = 1, vocab: int = 50, dim: int = 16, heads: int = 2, max_len: int = 32
) -> onnx.ModelProto:
    """Token + position embeddings (Gather, Shape-driven Slice), masked multi-head attention
    (Where on the attention mask), LayerNorm, Erf-GELU MLP. Inputs ``input_ids`` and
    ``attention_mask`` int64 [batch, seq] → ``hidden`` [batch, seq, dim]."""
    rng = np.random.default_rng(seed)
    head = dim // heads

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(F32)

    inits: dict[str, np.ndarray] = {
        "tok": w(vocab, dim) * 4,
        "pos": w(max_len, dim) * 4,
        "ln0_s": rng.uniform(0.8, 1.2, dim).astype(F32),
        "ln0_b": w(dim) * 0.1,
        "ln1_s": rng.uniform(0.8, 1.2, dim).astype(F32),
        "ln1_b": w(dim) * 0.1,
        "wq": w(dim, dim),
        "wk": w(dim, dim),
        "wv": w(dim, dim),
        "wo": w(dim, dim),
        "bq": w(dim) * 0.1,
        "w1": w(dim, 4 * dim),
        "b1": w(4 * dim) * 0.1,
        "w2": w(4 * dim, dim),
        "b2": w(dim) * 0.1,
        "split": np.array([0, 0, heads, head], I64),
        "merge": np.array([0, 0, dim], I64),
        "one_i": np.array([1], I64),
        "zero_i": np.array([0], I64),
        "two_i": np.array([2], I64),
        "axes12": np.array([1, 2], I64),
        "zero": np.array(0, I64),
        "neg": np.array(-1e4, F32),
        "scale": np.array(np.sqrt(head), F32),
        "sqrt2": np.array(np.sqrt(2.0), F32),
        "onef": np.array(1.0, F32),
        "half": np.array(0.5, F32),
    }
    node = helper.make_node
    nodes = [
        node("Gather", ["tok", "input_ids"], ["te"]),
        node("Shape", ["input_ids"], ["ids_shape"]),
        node("Slice", ["ids_shape", "one_i", "two_i"], ["seq"]),  # [seq]
        node("Slice", ["pos", "zero_i", "seq", "zero_i"], ["pe"]),  # pos[:seq]
        node("Add", ["te", "pe"], ["emb"]),
        node("LayerNormalization", ["emb", "ln0_s", "ln0_b"], ["x"], epsilon=1e-5),
        node("MatMul", ["x", "wq"], ["q0"]),
        node("Add", ["q0", "bq"], ["q"]),
        node("MatMul", ["x", "wk"], ["k"]),
        node("MatMul", ["x", "wv"], ["v"]),
    ]
    for t, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])):
        nodes += [
            node("Reshape", [t, "split"], [f"{t}4"]),
            node("Transpose", [f"{t}4"], [f"{t}h"], perm=perm),
        ]
    nodes += [
        node("MatMul", ["qh", "kh"], ["s0"]),
        node("Div", ["s0", "scale"], ["s1"]),
        node("Unsqueeze", ["attention_mask", "axes12"], ["m4"]),
        node("Equal", ["m4", "zero"], ["masked"]),
        node("Where", ["masked", "neg", "s1"], ["s2"]),
        node("Softmax", ["s2"], ["p"], axis=-1),
        node("MatMul", ["p", "vh"], ["ctx"]),
        node("Transpose", ["ctx"], ["ctx_t"], perm=[0, 2, 1, 3]),
        node("Reshape", ["ctx_t", "merge"], ["merged"]),
        node("MatMul", ["merged", "wo"], ["att"]),
        node("Add", ["x", "att"], ["r1"]),
        node("LayerNormalization", ["r1", "ln1_s", "ln1_b"], ["h"], epsilon=1e-5),
        node("MatMul", ["h", "w1"], ["f0"]),
        node("Add", ["f0", "b1"], ["f1"]),
        node("Div", ["f1", "sqrt2"], ["g0"]),
        node("Erf", ["g0"], ["g1"]),
        node("Add", ["g1", "onef"], ["g2"]),
        node("Mul", ["f1", "g2"], ["g3"]),
        node("Mul", ["g3", "half"], ["g4"]),
        node("MatMul", ["g4", "w2"], ["f2"]),
        node("Add", ["f2", "b2"], ["f3"]),
        node("Add", ["r1", "f3"], ["hidden"]),
    ]
    graph = helper.make_graph(
        nodes,
        "small_transformer",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "seq", dim])],
        [onnx.numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _token_feeds(rng: np.random.Generator, batch: int, seq: int) -> dict[str, np.ndarray]:
    ids = rng.integers(0, 50, (batch, seq)).astype(I64)
    mask = np.ones((batch, seq), I64)
    mask[0, seq // 2 :] = 0  # padding in the first sequence
    return {"input_ids": ids, "attention_mask": mask}


def _check_all(
    harness: Any, model: onnx.ModelProto, package: Any, feeds: dict[str, np.ndarray], rtol: float
) -> dict[str, float]:
    expected = harness.ort(model, feeds)
    actual = uc.evaluate(package, feeds)
    worst = {}
    for name, want in expected.items():
        report = harness.compare_arrays(actual[name], want, rtol)
        assert report.ok, (name, report)
        worst[name] = report.max_rel
    return worst


CNN_SHAPES = {"image": ((1, 3, 16, 16), (2, 3, 16, 16), (4, 3, 16, 16))}
TRANSFORMER_SHAPES = {
    "input_ids": ((1, 1), (2, 8), (4, 32)),
    "attention_mask": ((1, 1), (2, 8), (4, 32)),
}


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_small_cnn(harness: Any, rng: np.random.Generator, precision: str) -> None:
    model = small_cnn()
    package = harness.package(model, shapes=CNN_SHAPES, precision=precision)
    rtol = RTOL if precision == "fp32" else FP16_RTOL
    for batch in (1, 3):
        image = rng.standard_normal((batch, 3, 16, 16)).astype(F32)
        _check_all(harness, model, package, {"image": image}, rtol)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_small_transformer(harness: Any, rng: np.random.Generator, precision: str) -> None:
    model = small_transformer()
    package = harness.package(model, shapes=TRANSFORMER_SHAPES, precision=precision)
    rtol = RTOL if precision == "fp32" else FP16_RTOL
    for batch, seq in ((2, 8), (1, 5), (3, 32)):
        _check_all(harness, model, package, _token_feeds(rng, batch, seq), rtol)


def test_transformer_enumerated_shapes(harness: Any, rng: np.random.Generator) -> None:
    model = small_transformer()
    shapes = [(1, 8), (2, 16)]
    package = harness.package(
        model, shapes={"input_ids": shapes, "attention_mask": shapes}, deployment_target="iOS18"
    )
    for batch, seq in shapes:
        _check_all(harness, model, package, _token_feeds(rng, batch, seq), RTOL)


def test_shared_test_models(harness: Any, rng: np.random.Generator) -> None:
    """The core's own test models (unirun.testing.models) translate and match too."""
    models = pytest.importorskip("unirun.testing.models")
    conv = models.conv_net(batch="N", size=16)
    package = harness.package(
        conv, shapes={"image": ((1, 3, 16, 16), (1, 3, 16, 16), (4, 3, 16, 16))}
    )
    _check_all(
        harness, conv, package, {"image": rng.standard_normal((2, 3, 16, 16)).astype(F32)}, RTOL
    )
    block = models.transformer_block()
    package = harness.package(block, shapes={"x": ((1, 1, 32), (2, 8, 32), (4, 16, 32))})
    _check_all(harness, block, package, {"x": rng.standard_normal((3, 7, 32)).astype(F32)}, RTOL)


MACOS = pytest.mark.skipif(
    sys.platform != "darwin",
    reason="Core ML execution needs macOS; on Linux only the saved program is evaluated (numpy)",
)


def _predict(package: Any, feeds: dict[str, np.ndarray], compute_units: str) -> dict[str, Any]:
    import coremltools as ct

    evaluator = uc.Evaluator(package)  # for the name and dtype map stored in the package
    model = ct.models.MLModel(str(package), compute_units=getattr(ct.ComputeUnit, compute_units))
    inputs = {m.coreml_name: feeds[m.onnx_name].astype(m.coreml_dtype) for m in evaluator.inputs}
    outputs = model.predict(inputs)
    return {
        m.onnx_name: np.asarray(outputs[m.coreml_name]).astype(m.onnx_dtype)
        for m in evaluator.outputs
    }


@MACOS
@pytest.mark.parametrize("compute_units", ["CPU_ONLY", "ALL"])
def test_predict_matches_evaluator_and_onnxruntime(
    harness: Any, rng: np.random.Generator, compute_units: str
) -> None:
    cases = [
        (small_cnn(), CNN_SHAPES, {"image": rng.standard_normal((2, 3, 16, 16)).astype(F32)}),
        (small_transformer(), TRANSFORMER_SHAPES, _token_feeds(rng, 2, 8)),
    ]
    # CPU_ONLY runs fp32 kernels; ALL may place ops on the GPU/Neural Engine in fp16.
    rtol = 1e-4 if compute_units == "CPU_ONLY" else FP16_RTOL
    for model, shapes, feeds in cases:
        package = harness.package(model, shapes=shapes)
        expected = harness.ort(model, feeds)
        got = _predict(package, feeds, compute_units)
        for name, want in expected.items():
            report = harness.compare_arrays(got[name], want, rtol)
            assert report.ok, (name, report)


@MACOS
def test_predict_fp16_build(harness: Any, rng: np.random.Generator) -> None:
    model = small_cnn()
    package = harness.package(model, shapes=CNN_SHAPES, precision="fp16")
    feeds = {"image": rng.standard_normal((1, 3, 16, 16)).astype(F32)}
    expected = harness.ort(model, feeds)
    got = _predict(package, feeds, "ALL")
    for name, want in expected.items():
        assert harness.compare_arrays(got[name], want, FP16_RTOL).ok, name


def test_fp16_batch_norm_with_huge_variance(harness: Any, rng: np.random.Generator) -> None:
    # A BatchNorm variance above the fp16 range (65504) is fine as long as the BN is folded
    # into the conv in fp32 before the weights become fp16.
    w = rng.standard_normal((4, 3, 3, 3)).astype(F32) * 300
    inits = {
        "w": w,
        "s": np.ones(4, F32),
        "b": np.zeros(4, F32),
        "m": np.full(4, 50.0, F32),
        "v": np.array([1e6, 2e5, 7e4, 3e6], F32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["y"]),
    ]
    model = harness.model(nodes, {"x": (F32, (1, 3, 8, 8))}, ["y"], inits, opset=15)
    harness.check(
        model,
        {"x": rng.standard_normal((1, 3, 8, 8)).astype(F32)},
        rtol=FP16_RTOL,
        precision="fp16",
    )

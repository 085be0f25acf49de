"""The small models of the conformance kit: a CNN, an MLP, a symbolic MatMul, an embedding
with int64 ids, several inputs and outputs of mixed dtypes, and a pass-through of any dtype."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._onnx import _init, _model

__all__ = ["conv_net", "embedding_model", "matmul_symbolic", "mlp", "multi_io", "passthrough"]


def conv_net(batch: int | str = "N", size: int | str = 32, classes: int = 10, seed: int = 0) -> Any:
    """Conv-BN-ReLU ×2, MaxPool, global average pool, Gemm: input ``image`` [batch, 3, size,
    size], output ``logits`` [batch, classes]. ``batch``/``size`` may be symbolic names."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    f32 = np.float32
    inits = [
        _init("w1", (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(f32)),
        _init("b1", rng.standard_normal(8).astype(f32) * 0.1),
        _init("bn_scale", rng.uniform(0.5, 1.5, 8).astype(f32)),
        _init("bn_bias", rng.standard_normal(8).astype(f32) * 0.1),
        _init("bn_mean", rng.standard_normal(8).astype(f32) * 0.1),
        _init("bn_var", rng.uniform(0.5, 1.5, 8).astype(f32)),
        _init("w2", (rng.standard_normal((16, 8, 3, 3)) * 0.2).astype(f32)),
        _init("b2", rng.standard_normal(16).astype(f32) * 0.1),
        _init("fc_w", (rng.standard_normal((classes, 16)) * 0.3).astype(f32)),
        _init("fc_b", rng.standard_normal(classes).astype(f32) * 0.1),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node(
            "BatchNormalization",
            ["c1", "bn_scale", "bn_bias", "bn_mean", "bn_var"],
            ["n1"],
            epsilon=1e-5,
            name="bn1",
        ),
        helper.make_node("Relu", ["n1"], ["r1"], name="relu1"),
        helper.make_node(
            "MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool1"
        ),
        helper.make_node(
            "Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[1, 1], name="conv2"
        ),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], transB=1, name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_net",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])],
        inits,
    )
    return _model(graph)


def mlp(
    features: int = 16,
    hidden: int = 32,
    outputs: int = 4,
    batch: int | str = "batch",
    seed: int = 1,
) -> Any:
    """MatMul-Add-Tanh-MatMul-Add-Softmax: ``x`` [batch, features] → ``probs`` [batch, outputs]."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    f32 = np.float32
    inits = [
        _init("w1", (rng.standard_normal((features, hidden)) * 0.3).astype(f32)),
        _init("b1", rng.standard_normal(hidden).astype(f32) * 0.1),
        _init("w2", (rng.standard_normal((hidden, outputs)) * 0.3).astype(f32)),
        _init("b2", rng.standard_normal(outputs).astype(f32) * 0.1),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"], name="mm1"),
        helper.make_node("Add", ["h0", "b1"], ["h1"], name="add1"),
        helper.make_node("Tanh", ["h1"], ["h2"], name="tanh"),
        helper.make_node("MatMul", ["h2", "w2"], ["o0"], name="mm2"),
        helper.make_node("Add", ["o0", "b2"], ["o1"], name="add2"),
        helper.make_node("Softmax", ["o1"], ["probs"], axis=-1, name="softmax"),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, features])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch, outputs])],
        inits,
    )
    return _model(graph)


def matmul_symbolic() -> Any:
    """``a`` [M, K] @ ``b`` [K, N] + 1 → ``y`` [M, N]: every dimension symbolic."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["a", "b"], ["ab"], name="mm"),
            helper.make_node("Add", ["ab", "one"], ["y"], name="add"),
        ],
        "matmul_symbolic",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["M", "K"]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["K", "N"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", "N"])],
        [_init("one", np.ones((), np.float32))],
    )
    return _model(graph)


def embedding_model(vocab: int = 50, dim: int = 8, seed: int = 2) -> Any:
    """Token ids (int64 [batch, seq]) → embeddings scaled by a float ``scale`` input ([1]):
    Gather + Mul + ReduceMean. Outputs ``pooled`` [batch, dim] and ``count`` (int64 [batch])."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    inits = [
        _init("table", rng.standard_normal((vocab, dim)).astype(np.float32)),
        _init("axes", np.array([1], np.int64)),
        _init("zero", np.array(0, np.int64)),
    ]
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0, name="embed"),
        helper.make_node("Mul", ["emb", "scale"], ["scaled"], name="scale_mul"),
        helper.make_node("ReduceMean", ["scaled", "axes"], ["pooled"], keepdims=0, name="pool"),
        helper.make_node("Greater", ["ids", "zero"], ["nonzero"], name="gt"),
        helper.make_node("Cast", ["nonzero"], ["nz64"], to=TensorProto.INT64, name="cast"),
        helper.make_node("ReduceSum", ["nz64", "axes"], ["count"], keepdims=0, name="count_sum"),
    ]
    graph = helper.make_graph(
        nodes,
        "embedding",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("scale", TensorProto.FLOAT, [1]),
        ],
        [
            helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", dim]),
            helper.make_tensor_value_info("count", TensorProto.INT64, ["batch"]),
        ],
        inits,
    )
    return _model(graph, 18)


def multi_io() -> Any:
    """Two inputs of different dtypes, three outputs: ``x`` float32 [2, 3], ``mask`` bool [2, 3]
    → ``masked`` = where(mask, x, 0), ``total`` = sum(masked), ``flag`` = not(mask)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Where", ["mask", "x", "zero"], ["masked"], name="where"),
            helper.make_node("ReduceSum", ["masked"], ["total"], keepdims=0, name="sum"),
            helper.make_node("Not", ["mask"], ["flag"], name="not"),
        ],
        "multi_io",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("mask", TensorProto.BOOL, [2, 3]),
        ],
        [
            helper.make_tensor_value_info("masked", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("total", TensorProto.FLOAT, []),
            helper.make_tensor_value_info("flag", TensorProto.BOOL, [2, 3]),
        ],
        [_init("zero", np.zeros((), np.float32))],
    )
    return _model(graph)


def passthrough(dtype: Any, shape: tuple[int, ...] = (2, 3)) -> Any:
    """One input ``x`` of ``dtype`` (a :class:`unirun.DType` or its name) and two outputs that
    only move data: ``y`` = Identity(x) and ``flat`` = Reshape(x, [-1]). Every engine that can
    hold the type must return the values bit for bit. Opset 21 (25 for the 2-bit types, 23 for
    float4 and float8_e8m0), the first that admits each type."""
    from onnx import helper

    from unirun.dtypes import DType

    dt = DType.parse(dtype)
    opset = {DType.INT2: 25, DType.UINT2: 25, DType.FLOAT4_E2M1: 23, DType.FLOAT8_E8M0: 24}
    size = int(np.prod(shape))
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["x"], ["y"], name="identity"),
            helper.make_node("Reshape", ["x", "flat_shape"], ["flat"], name="reshape"),
        ],
        f"passthrough_{dt.value}",
        [helper.make_tensor_value_info("x", dt.onnx, list(shape))],
        [
            helper.make_tensor_value_info("y", dt.onnx, list(shape)),
            helper.make_tensor_value_info("flat", dt.onnx, [size]),
        ],
        [_init("flat_shape", np.array([-1], np.int64))],
    )
    model = _model(graph, opset.get(dt, 21))
    model.ir_version = 11 if opset.get(dt, 21) > 21 else 10
    return model

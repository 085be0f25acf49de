"""Deeper networks, still small: a transformer encoder block and a ResNet."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._onnx import _init, _model

__all__ = ["resnet_like", "transformer_block"]


def transformer_block(
    dim: int = 32, heads: int = 4, hidden: int = 64, batch: int | str = "batch", seed: int = 3
) -> Any:
    """One pre-norm encoder block: ``x`` float32 [batch, seq, dim] → ``y`` [batch, seq, dim].

    LayerNormalization, Q/K/V MatMuls, multi-head attention (Reshape/Transpose, scaled Q·Kᵀ,
    Softmax), an output projection followed by an inference-mode Dropout (engines remove it, and
    some rename tensors around it), residual Adds, and an MLP with an exact (Erf) GELU.
    """
    from onnx import TensorProto, helper

    if dim % heads:
        raise ValueError(f"dim {dim} is not divisible by heads {heads}")
    rng = np.random.default_rng(seed)
    f32 = np.float32
    head = dim // heads

    def weight(name: str, *shape: int) -> Any:
        return _init(name, (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(f32))

    inits = [
        _init("ln1_scale", rng.uniform(0.8, 1.2, dim).astype(f32)),
        _init("ln1_bias", (rng.standard_normal(dim) * 0.1).astype(f32)),
        _init("ln2_scale", rng.uniform(0.8, 1.2, dim).astype(f32)),
        _init("ln2_bias", (rng.standard_normal(dim) * 0.1).astype(f32)),
        weight("wq", dim, dim),
        weight("wk", dim, dim),
        weight("wv", dim, dim),
        weight("wo", dim, dim),
        _init("bo", (rng.standard_normal(dim) * 0.1).astype(f32)),
        weight("w_ff1", dim, hidden),
        _init("b_ff1", (rng.standard_normal(hidden) * 0.1).astype(f32)),
        weight("w_ff2", hidden, dim),
        _init("b_ff2", (rng.standard_normal(dim) * 0.1).astype(f32)),
        _init("split_heads", np.array([0, 0, heads, head], np.int64)),
        _init("merge_heads", np.array([0, 0, dim], np.int64)),
        _init("inv_sqrt_head", np.array(1.0 / np.sqrt(head), f32)),
        _init("inv_sqrt2", np.array(1.0 / np.sqrt(2.0), f32)),
        _init("half", np.array(0.5, f32)),
        _init("one", np.array(1.0, f32)),
    ]
    node = helper.make_node
    nodes = [
        node("LayerNormalization", ["x", "ln1_scale", "ln1_bias"], ["h"], axis=-1, name="ln1"),
        node("MatMul", ["h", "wq"], ["q"], name="q_proj"),
        node("MatMul", ["h", "wk"], ["k"], name="k_proj"),
        node("MatMul", ["h", "wv"], ["v"], name="v_proj"),
    ]
    for t in ("q", "k", "v"):  # [b, s, dim] -> [b, heads, s, head]
        nodes.append(node("Reshape", [t, "split_heads"], [f"{t}4"], name=f"{t}_split"))
        perm = [0, 2, 3, 1] if t == "k" else [0, 2, 1, 3]  # k goes straight to its transpose
        nodes.append(node("Transpose", [f"{t}4"], [f"{t}h"], perm=perm, name=f"{t}_heads"))
    nodes += [
        node("MatMul", ["qh", "kh"], ["scores"], name="qk"),
        node("Mul", ["scores", "inv_sqrt_head"], ["scaled"], name="scale"),
        node("Softmax", ["scaled"], ["probs"], axis=-1, name="softmax"),
        node("MatMul", ["probs", "vh"], ["ctx"], name="attend"),
        node("Transpose", ["ctx"], ["ctx_t"], perm=[0, 2, 1, 3], name="ctx_back"),
        node("Reshape", ["ctx_t", "merge_heads"], ["merged"], name="merge"),
        node("MatMul", ["merged", "wo"], ["o0"], name="o_proj"),
        node("Add", ["o0", "bo"], ["o1"], name="o_bias"),
        node("Dropout", ["o1"], ["attn_out"], name="dropout"),
        node("Add", ["x", "attn_out"], ["r1"], name="residual1"),
        node("LayerNormalization", ["r1", "ln2_scale", "ln2_bias"], ["h2"], axis=-1, name="ln2"),
        node("MatMul", ["h2", "w_ff1"], ["f0"], name="ff1"),
        node("Add", ["f0", "b_ff1"], ["f1"], name="ff1_bias"),
        # exact GELU: 0.5 * x * (1 + erf(x / sqrt 2))
        node("Mul", ["f1", "inv_sqrt2"], ["g0"], name="gelu_scale"),
        node("Erf", ["g0"], ["g1"], name="gelu_erf"),
        node("Add", ["g1", "one"], ["g2"], name="gelu_add"),
        node("Mul", ["f1", "g2"], ["g3"], name="gelu_mul"),
        node("Mul", ["g3", "half"], ["g4"], name="gelu_half"),
        node("MatMul", ["g4", "w_ff2"], ["f2"], name="ff2"),
        node("Add", ["f2", "b_ff2"], ["f3"], name="ff2_bias"),
        node("Add", ["r1", "f3"], ["y"], name="residual2"),
    ]
    graph = helper.make_graph(
        nodes,
        "transformer_block",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, "seq", dim])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, "seq", dim])],
        inits,
    )
    return _model(graph)


def resnet_like(
    width: int = 32,
    stages: tuple[int, ...] = (1, 1, 1),
    size: int | str = 64,
    classes: int = 100,
    batch: int | str = "N",
    seed: int = 4,
) -> Any:
    """A small ResNet: a stride-2 3x3 stem, then per stage ``stages[i]`` residual blocks of two
    3x3 Convs (the first of a stage halves the size, and a 1x1 Conv matches the shortcut),
    ReLU, Add; global average pool and a Gemm classifier. ``image`` float32 [batch, 3, size,
    size] → ``logits`` [batch, classes]. He-initialised weights, so activations keep their
    scale through the layers as in a trained network."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    inits: list[Any] = []
    nodes: list[Any] = []

    def conv(x: str, cin: int, cout: int, k: int, stride: int, name: str, relu: bool) -> str:
        scale = np.sqrt(2.0 / (cin * k * k))
        weight = rng.standard_normal((cout, cin, k, k)) * scale
        inits.append(_init(f"{name}_w", weight.astype(np.float32)))
        inits.append(_init(f"{name}_b", (rng.standard_normal(cout) * 0.05).astype(np.float32)))
        pad = k // 2
        nodes.append(
            helper.make_node(
                "Conv",
                [x, f"{name}_w", f"{name}_b"],
                [f"{name}_out"],
                pads=[pad] * 4,
                strides=[stride, stride],
                name=name,
            )
        )
        if not relu:
            return f"{name}_out"
        nodes.append(
            helper.make_node("Relu", [f"{name}_out"], [f"{name}_relu"], name=f"{name}_relu")
        )
        return f"{name}_relu"

    x, channels = conv("image", 3, width, 3, 2, "stem", True), width
    for stage, blocks in enumerate(stages):
        out = width * 2**stage
        for block in range(blocks):
            stride = 2 if stage and not block else 1
            name = f"s{stage}b{block}"
            h = conv(x, channels, out, 3, stride, f"{name}_conv1", True)
            h = conv(h, out, out, 3, 1, f"{name}_conv2", False)
            short = x
            if stride != 1 or channels != out:
                short = conv(x, channels, out, 1, stride, f"{name}_down", False)
            nodes.append(helper.make_node("Add", [h, short], [f"{name}_sum"], name=f"{name}_add"))
            nodes.append(helper.make_node("Relu", [f"{name}_sum"], [f"{name}_out"], name=name))
            x, channels = f"{name}_out", out
    fc = rng.standard_normal((classes, channels)) / np.sqrt(channels)
    inits.append(_init("fc_w", fc.astype(np.float32)))
    inits.append(_init("fc_b", np.zeros(classes, np.float32)))
    nodes += [
        helper.make_node("GlobalAveragePool", [x], ["pooled"], name="gap"),
        helper.make_node("Flatten", ["pooled"], ["features"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["features", "fc_w", "fc_b"], ["logits"], transB=1, name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "resnet_like",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])],
        inits,
    )
    return _model(graph)

"""Small deterministic ONNX models that exercise what backends get wrong.

Every builder returns an ``onnx.ModelProto`` with fixed-seed weights, opset 17 by default, so
tests and examples can rebuild byte-identical files.
"""

from __future__ import annotations

from typing import Any

import numpy as np

OPSET = 17


def _init(name: str, array: np.ndarray[Any, Any]) -> Any:
    from onnx import numpy_helper

    return numpy_helper.from_array(array, name)


def _model(graph: Any, opset: int = OPSET) -> Any:
    from onnx import helper

    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="unirun.testing"
    )
    model.ir_version = 8
    return model


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


def outlier_mlp(features: int = 64, hidden: int = 64, seed: int = 5) -> Any:
    """A model int8 cannot represent: ``x`` float32 [batch, features] feeds a MatMul whose
    output ignores feature 0 (its weight row is zero), while ``outlier_inputs`` puts that
    feature at ±``outlier``. One per-tensor int8 scale for ``x`` then rounds every other
    feature to zero (the outlier-channel problem of large language models), so activation
    quantization is far off; int8 weights alone stay accurate. ``y`` [batch, hidden]."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((features, hidden)) / np.sqrt(features)
    w1[0] = 0.0
    w2 = rng.standard_normal((hidden, hidden)) / np.sqrt(hidden)
    inits = [
        _init("w1", w1.astype(np.float32)),
        _init("w2", w2.astype(np.float32)),
        _init("b", (rng.standard_normal(hidden) * 0.1).astype(np.float32)),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"], name="mm1"),
        helper.make_node("Add", ["h0", "b"], ["h1"], name="bias"),
        helper.make_node("Relu", ["h1"], ["h2"], name="relu"),
        helper.make_node("MatMul", ["h2", "w2"], ["y"], name="mm2"),
    ]
    graph = helper.make_graph(
        nodes,
        "outlier_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", hidden])],
        inits,
    )
    return _model(graph)


def outlier_inputs(
    count: int, batch: int = 4, features: int = 64, outlier: float = 1000.0, seed: int = 6
) -> list[dict[str, np.ndarray[Any, Any]]]:
    """Feeds for :func:`outlier_mlp`: standard normal, feature 0 at ±``outlier``."""
    rng = np.random.default_rng(seed)
    feeds = []
    for _ in range(count):
        x = rng.standard_normal((batch, features)).astype(np.float32)
        x[:, 0] = outlier * np.sign(x[:, 0] + 0.5)
        feeds.append({"x": x})
    return feeds


def passthrough(dtype: Any, shape: tuple[int, ...] = (2, 3)) -> Any:
    """One input ``x`` of ``dtype`` (a :class:`unirun.DType` or its name) and two outputs that
    only move data: ``y`` = Identity(x) and ``flat`` = Reshape(x, [-1]). Every engine that can
    hold the type must return the values bit for bit. Opset 21 (25 for the 2-bit types, 23 for
    float4 and float8_e8m0), the first that admits each type."""
    from onnx import helper

    from ..dtypes import DType

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


def scaled_by_weights(where: str = "initializer", size: int = 4) -> Any:
    """``y = x * w`` with ``x`` float32[size] and ``w`` all ones, where ``w`` lives in one of the
    places a model keeps constants: ``"initializer"``, ``"constant"`` (a Constant node's value),
    ``"if_branch"`` (a Constant inside an If's then-branch; the else-branch gives sevens),
    ``"function"`` (a Constant inside a model-local function). Saved with
    ``onnx.save(..., save_as_external_data=True, convert_attribute=True, size_threshold=0)``,
    every such tensor moves to the external file; rewriting that file must change ``y``."""
    from onnx import TensorProto, helper

    def const(name: str, value: float) -> Any:
        return helper.make_node(
            "Constant", [], [name], value=_init(name, np.full(size, value, np.float32))
        )

    f32 = TensorProto.FLOAT
    x = helper.make_tensor_value_info("x", f32, [size])
    y = helper.make_tensor_value_info("y", f32, [size])
    inits, functions = [], []
    if where == "initializer":
        nodes = [helper.make_node("Mul", ["x", "w"], ["y"])]
        inits.append(_init("w", np.ones(size, np.float32)))
    elif where == "constant":
        nodes = [const("w", 1.0), helper.make_node("Mul", ["x", "w"], ["y"])]
    elif where == "if_branch":
        out = [helper.make_tensor_value_info("w", f32, [size])]
        then = helper.make_graph([const("w", 1.0)], "then", [], out)
        other = helper.make_graph([const("w", 7.0)], "else", [], out)
        nodes = [  # cond from an int attribute: no tensor of its own to move out
            helper.make_node("Constant", [], ["one"], value_int=1),
            helper.make_node("Cast", ["one"], ["cond"], to=TensorProto.BOOL),
            helper.make_node("If", ["cond"], ["w"], then_branch=then, else_branch=other),
            helper.make_node("Mul", ["x", "w"], ["y"]),
        ]
    elif where == "function":
        body = [const("w", 1.0), helper.make_node("Mul", ["fx", "w"], ["fy"])]
        functions.append(
            helper.make_function(
                "unirun.testing", "Scale", ["fx"], ["fy"], body, [helper.make_opsetid("", OPSET)]
            )
        )
        nodes = [helper.make_node("Scale", ["x"], ["y"], domain="unirun.testing")]
    else:
        raise ValueError(f"unknown place {where!r}")
    graph = helper.make_graph(nodes, f"scaled_{where}", [x], [y], inits)
    model = _model(graph)
    if functions:
        model.opset_import.append(helper.make_opsetid("unirun.testing", 1))
        model.functions.extend(functions)
    return model


def save_external(model: Any, path: Any, location: str = "w.bin") -> Any:
    """Save ``model`` to ``path`` with every tensor (node attributes too) in the external file
    ``location`` beside it; returns ``path`` as a ``pathlib.Path``."""
    import os
    from pathlib import Path

    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(path.parent)  # onnx.save looks for an existing ``location`` in the current directory
    try:
        onnx.save(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=location,
            size_threshold=0,
            convert_attribute=True,
        )
    finally:
        os.chdir(cwd)
    return path


def rewrite_external_ones(path: Any, value: float) -> None:
    """In the external files of the model at ``path``, overwrite every float32 tensor whose
    values are all ones with ``value`` (the weights of :func:`scaled_by_weights`)."""
    from pathlib import Path

    import onnx

    from ..source import external_tensors

    path = Path(path)
    proto = onnx.load(str(path), load_external_data=False)
    for tensor, _ in external_tensors(proto):
        if tensor.data_type != onnx.TensorProto.FLOAT:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        file = path.parent / info["location"]
        offset, length = int(info.get("offset") or 0), int(info["length"])
        data = bytearray(file.read_bytes())
        old = np.frombuffer(bytes(data[offset : offset + length]), np.float32)
        if np.all(old == 1):
            data[offset : offset + length] = np.full(old.shape, value, np.float32).tobytes()
            file.write_bytes(bytes(data))


def streaming_vad(hidden: int = 16, channels: int = 8, seed: int = 4) -> Any:
    """A stateful streaming voice-activity model shaped like the public ONNX exports of such
    models: inputs ``input`` float32 [batch, samples] (one audio chunk), ``state`` float32
    [2, batch, hidden] (the LSTM's h and c: feed each call's ``stateN`` to the next) and ``sr``
    (an int64 scalar, the sample rate); outputs ``output`` float32 [batch, 1] (a probability)
    and ``stateN`` [2, batch, hidden].

    ``If(sr == 16000)`` picks one of two branches; each pads the chunk with a reflect ``Pad``,
    frames it with two strided Convs, squeezes the time axis the way exporters write
    ``x.squeeze(-1)`` for a dynamic size (an inner ``If`` on whether it is 1), and runs an LSTM
    step, a Linear and a Sigmoid. Chunks of 512 samples at 16000 and 256 at 8000 give one frame
    (the sizes the model is for). With fixed input dims, the branch *not* taken sees a chunk of
    the wrong length: an engine that infers shapes through both branches finds an LSTM input of
    rank 4 there, although the branch that runs is fine.
    """
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    f32 = np.float32

    def weights(shape: tuple[int, ...], scale: float) -> np.ndarray[Any, Any]:
        return (rng.standard_normal(shape) * scale).astype(f32)

    inits = [
        _init("sr_16k", np.array(16000, np.int64)),
        _init("time_axis", np.array(2, np.int64)),
        _init("one", np.array(1, np.int64)),
        _init("axes_0", np.array([0], np.int64)),
        _init("axes_1", np.array([1], np.int64)),
        _init("axes_2", np.array([2], np.int64)),
        _init("h_start", np.array([0], np.int64)),
        _init("c_start", np.array([1], np.int64)),
        _init("c_end", np.array([2], np.int64)),
        _init("head_w", weights((hidden, 1), 0.5)),
        _init("head_b", np.zeros(1, f32)),
    ]
    nodes = [
        helper.make_node("Equal", ["sr", "sr_16k"], ["is_16k"], name="is_16k"),
        helper.make_node("Slice", ["state", "h_start", "c_start", "axes_0"], ["h0"], name="h0"),
        helper.make_node("Slice", ["state", "c_start", "c_end", "axes_0"], ["c0"], name="c0"),
    ]

    def branch(tag: str, pad: int, frame: int, group: int) -> Any:
        """Reflect-pad by ``pad``, Conv(kernel=stride=``frame``), Conv(kernel=stride=``group``)."""
        p = f"{tag}_"
        inits.extend(
            [
                _init(p + "pads", np.array([0, 0, 0, pad], np.int64)),
                _init(p + "w1", weights((channels, 1, frame), 1.0 / np.sqrt(frame))),
                _init(p + "w2", weights((channels, channels, group), 0.5)),
                _init(p + "lstm_w", weights((1, 4 * hidden, channels), 0.3)),
                _init(p + "lstm_r", weights((1, 4 * hidden, hidden), 0.3)),
                _init(p + "lstm_b", weights((1, 8 * hidden), 0.1)),
            ]
        )
        squeezed = helper.make_graph(
            [helper.make_node("Squeeze", [p + "f2", "axes_2"], [p + "sq"], name=p + "squeeze")],
            p + "squeeze_time",
            [],
            [helper.make_tensor_value_info(p + "sq", TensorProto.FLOAT, None)],
        )
        pooled = helper.make_graph(
            [
                helper.make_node(
                    "ReduceMean", [p + "f2"], [p + "mean"], axes=[2], keepdims=0, name=p + "mean"
                )
            ],
            p + "average_time",
            [],
            [helper.make_tensor_value_info(p + "mean", TensorProto.FLOAT, None)],
        )
        body = [
            helper.make_node("Pad", ["input", p + "pads"], [p + "padded"], mode="reflect"),
            helper.make_node("Unsqueeze", [p + "padded", "axes_1"], [p + "wave"]),
            helper.make_node(
                "Conv", [p + "wave", p + "w1"], [p + "f1"], kernel_shape=[frame], strides=[frame]
            ),
            helper.make_node("Relu", [p + "f1"], [p + "r1"]),
            helper.make_node(
                "Conv", [p + "r1", p + "w2"], [p + "f2"], kernel_shape=[group], strides=[group]
            ),
            helper.make_node("Shape", [p + "f2"], [p + "f2_shape"]),
            helper.make_node("Gather", [p + "f2_shape", "time_axis"], [p + "frames"]),
            helper.make_node("Equal", [p + "frames", "one"], [p + "one_frame"]),
            helper.make_node(
                "If",
                [p + "one_frame"],
                [p + "step"],
                then_branch=squeezed,
                else_branch=pooled,
                name=p + "squeeze_if",
            ),
            helper.make_node("Unsqueeze", [p + "step", "axes_0"], [p + "x"]),
            helper.make_node(
                "LSTM",
                [p + "x", p + "lstm_w", p + "lstm_r", p + "lstm_b", "", "h0", "c0"],
                ["", p + "h", p + "c"],
                hidden_size=hidden,
                name=p + "lstm",
            ),
            helper.make_node("Squeeze", [p + "h", "axes_0"], [p + "h2"]),
            helper.make_node("MatMul", [p + "h2", "head_w"], [p + "logit0"]),
            helper.make_node("Add", [p + "logit0", "head_b"], [p + "logit"]),
            helper.make_node("Sigmoid", [p + "logit"], [p + "output"]),
            helper.make_node("Concat", [p + "h", p + "c"], [p + "stateN"], axis=0),
        ]
        return helper.make_graph(
            body,
            p + "branch",
            [],
            [
                helper.make_tensor_value_info(p + "output", TensorProto.FLOAT, None),
                helper.make_tensor_value_info(p + "stateN", TensorProto.FLOAT, None),
            ],
        )

    nodes.append(
        helper.make_node(
            "If",
            ["is_16k"],
            ["output", "stateN"],
            then_branch=branch("sr16k", pad=64, frame=192, group=3),
            else_branch=branch("sr8k", pad=32, frame=64, group=4),
            name="sample_rate_if",
        )
    )
    graph = helper.make_graph(
        nodes,
        "streaming_vad",
        [
            helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", "samples"]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "batch", hidden]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
        ],
        [
            helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 1]),
            helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [2, "batch", hidden]),
        ],
        inits,
    )
    return _model(graph)


# -- values that are not tensors: sequences, maps, optionals ----------------------------------

ML_OPSET = 3  #: the ``ai.onnx.ml`` opset of the classic-ML builders


def _ml_model(graph: Any, opset: int = OPSET) -> Any:
    from onnx import helper

    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
        producer_name="unirun.testing",
    )
    model.ir_version = 8
    return model


def sequence_model() -> Any:
    """A sequence in and out: ``items`` seq(float32[?]) and ``x`` float32[?] → ``more``
    seq(float32[?]) (``x`` appended to ``items``) and ``count`` int64 [] (its length)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("SequenceInsert", ["items", "x"], ["more"], name="insert"),
            helper.make_node("SequenceLength", ["more"], ["count"], name="length"),
        ],
        "sequence_model",
        [
            helper.make_tensor_sequence_value_info("items", TensorProto.FLOAT, [None]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [None]),
        ],
        [
            helper.make_tensor_sequence_value_info("more", TensorProto.FLOAT, [None]),
            helper.make_tensor_value_info("count", TensorProto.INT64, []),
        ],
    )
    return _model(graph)


def map_model(keys: tuple[str, ...] = ("a", "b", "c")) -> Any:
    """A map in: ``features`` map(string, float32) → ``dense`` float32[len(keys)], the values
    of ``keys`` (0 where missing), by ``ai.onnx.ml`` DictVectorizer."""
    from onnx import TensorProto, helper

    value = helper.make_tensor_type_proto(TensorProto.FLOAT, None)
    graph = helper.make_graph(
        [
            helper.make_node(
                "DictVectorizer",
                ["features"],
                ["vector"],
                domain="ai.onnx.ml",
                string_vocabulary=list(keys),
                name="vectorize",
            ),
            helper.make_node("Reshape", ["vector", "flat"], ["dense"], name="flatten"),
        ],
        "map_model",
        [helper.make_value_info("features", helper.make_map_type_proto(TensorProto.STRING, value))],
        [helper.make_tensor_value_info("dense", TensorProto.FLOAT, [len(keys)])],
        [_init("flat", np.array([-1], np.int64))],
    )
    return _ml_model(graph)


def optional_model(size: int = 3) -> Any:
    """An optional in and out (opset 18): ``maybe`` optional(float32[size]) → ``has`` bool []
    (whether it is present) and ``echo`` optional(float32[size]) (it, or absent)."""
    from onnx import TensorProto, helper

    optional = helper.make_optional_type_proto(
        helper.make_tensor_type_proto(TensorProto.FLOAT, [size])
    )
    then_branch = helper.make_graph(
        [
            helper.make_node("OptionalGetElement", ["maybe"], ["value"]),
            helper.make_node("Optional", ["value"], ["present"]),
        ],
        "present",
        [],
        [helper.make_value_info("present", optional)],
    )
    else_branch = helper.make_graph(
        [
            helper.make_node(
                "Optional",
                [],
                ["absent"],
                type=helper.make_tensor_type_proto(TensorProto.FLOAT, [size]),
            )
        ],
        "absent",
        [],
        [helper.make_value_info("absent", optional)],
    )
    graph = helper.make_graph(
        [
            helper.make_node("OptionalHasElement", ["maybe"], ["has"], name="has"),
            helper.make_node(
                "If", ["has"], ["echo"], then_branch=then_branch, else_branch=else_branch
            ),
        ],
        "optional_model",
        [helper.make_value_info("maybe", optional)],
        [
            helper.make_tensor_value_info("has", TensorProto.BOOL, []),
            helper.make_value_info("echo", optional),
        ],
    )
    return _model(graph, opset=18)


def zipmap_classifier(
    features: int = 4, classes: int = 3, labels: str = "int", seed: int = 6
) -> Any:
    """A linear classifier as ``skl2onnx`` converts one by default: ``X`` float32[N, features]
    → ``label`` [N] (int64, or string with ``labels="string"``) and ``probabilities``
    seq(map(int64 or string, float32)), one map per row (``ai.onnx.ml`` LinearClassifier with
    softmax, then ZipMap)."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    coefficients = rng.standard_normal(classes * features).astype(np.float32)
    intercepts = rng.standard_normal(classes).astype(np.float32) * 0.1
    if labels == "string":
        names = [f"class_{i}" for i in range(classes)]
        label_attr: dict[str, Any] = {"classlabels_strings": names}
        zip_attr: dict[str, Any] = {"classlabels_strings": names}
        key, label_type = TensorProto.STRING, TensorProto.STRING
    else:
        label_attr = {"classlabels_ints": list(range(classes))}
        zip_attr = {"classlabels_int64s": list(range(classes))}
        key, label_type = TensorProto.INT64, TensorProto.INT64
    probabilities = helper.make_sequence_type_proto(
        helper.make_map_type_proto(key, helper.make_tensor_type_proto(TensorProto.FLOAT, None))
    )
    graph = helper.make_graph(
        [
            helper.make_node(
                "LinearClassifier",
                ["X"],
                ["label", "scores"],
                domain="ai.onnx.ml",
                coefficients=coefficients.tolist(),
                intercepts=intercepts.tolist(),
                post_transform="SOFTMAX",
                multi_class=1,
                name="classifier",
                **label_attr,
            ),
            helper.make_node(
                "ZipMap", ["scores"], ["probabilities"], domain="ai.onnx.ml", name="zip", **zip_attr
            ),
        ],
        "zipmap_classifier",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", features])],
        [
            helper.make_tensor_value_info("label", label_type, ["N"]),
            helper.make_value_info("probabilities", probabilities),
        ],
    )
    return _ml_model(graph)

"""Shapes computed at run time: OCR recognition models with dynamic batch and width (height
48), whose Reshape targets come from Shape → Gather → Mul → Unsqueeze → Concat, with rank-3,
-4 and -5 transposes around them; and the op check agreeing with what translation does."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import unirun_coreml as uc

F32 = np.float32
I64 = np.int64
BOUNDS = ((1, 3, 48, 320), (1, 3, 48, 320), (8, 3, 48, 2000))  # min, opt, max
FEEDS = ((1, 320), (3, 712), (2, 2000), (1, 333))  # (batch, width) within the bounds
HEADS, CLASSES = 2, 11


class _Graph:
    """A tiny graph builder: named nodes, initializers, int64 constants."""

    def __init__(self, seed: int) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, np.ndarray] = {}
        self.rng = np.random.default_rng(seed)

    def op(self, op_type: str, inputs: list[str], name: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attrs))
        return name

    def weight(self, name: str, *shape: int, scale: float | None = None) -> str:
        """Gaussian weights, by default scaled by 1/sqrt(fan-in) like trained layers (so
        logits stay in the range where fp32 comparisons are meaningful)."""
        fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
        std = 1 / np.sqrt(fan_in) if scale is None else scale
        assert name not in self.inits, name
        self.inits[name] = (self.rng.standard_normal(shape) * std).astype(F32)
        return name

    def ints(self, name: str, *values: int, scalar: bool = False) -> str:
        value = np.array(values[0] if scalar else values, I64)
        known = self.inits.get(name)
        assert known is None or (known.shape, known.tolist()) == (value.shape, value.tolist()), name
        self.inits[name] = value
        return name

    def dim(self, shape: str, axis: int) -> str:
        """shape[axis] as a 1-element vector, computed at run time."""
        index = self.ints(f"{shape}_i{axis}", axis, scalar=True)
        picked = self.op("Gather", [shape, index], f"{shape}_d{axis}")
        return self.op("Unsqueeze", [picked, self.ints("axes0", 0)], f"{shape}_u{axis}")

    def model(self, height: int | str = 48, opset: int = 17) -> onnx.ModelProto:
        dims: list[Any] = ["n", 3, height or None, "w"]  # "" : an unnamed dynamic dim
        image = helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)
        out = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", "t", CLASSES])
        inits = [numpy_helper.from_array(v, k) for k, v in self.inits.items()]
        graph = helper.make_graph(self.nodes, "ocr", [image], [out], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def _backbone(g: _Graph) -> str:
    """[n, 3, 48, w] → [n, 16, 6, w'] (w' = ceil(w / 4))."""
    x = g.op(
        "Conv",
        ["image", g.weight("w1", 8, 3, 3, 3), g.weight("b1", 8, scale=0.1)],
        "conv1",
        pads=[1, 1, 1, 1],
        strides=[2, 2],
    )
    x = g.op("MaxPool", [g.op("Relu", [x], "relu1")], "pool1", kernel_shape=[2, 1], strides=[2, 1])
    x = g.op("Conv", [x, g.weight("w2", 16, 8, 3, 3)], "conv2", pads=[1, 1, 1, 1], strides=[2, 2])
    return g.op("Relu", [x], "relu2")


def _head(g: _Graph, seq: str, channels: int) -> str:
    """[n, t, channels] → MatMul + bias → Softmax over the classes."""
    logits = g.op("MatMul", [seq, g.weight("fc_w", channels, CLASSES)], "fc")
    logits = g.op("Add", [logits, g.weight("fc_b", CLASSES, scale=0.1)], "fc_bias")
    return g.op("Softmax", [logits], "probs", axis=-1)


def crnn_channels_first(seed: int = 0) -> onnx.ModelProto:
    """Reshape to (N, C*H', W') from shape arithmetic, then Transpose(0, 2, 1)."""
    g = _Graph(seed)
    x = _backbone(g)
    s = g.op("Shape", [x], "s")
    ch = g.op("Mul", [g.dim(s, 1), g.dim(s, 2)], "ch")  # C * H', computed at run time
    target = g.op("Concat", [g.dim(s, 0), ch, g.dim(s, 3)], "target", axis=0)
    seq = g.op("Reshape", [x, target], "to_seq")
    seq = g.op("Transpose", [seq], "ntc", perm=[0, 2, 1])
    _head(g, seq, 16 * 6)
    return g.model()


def crnn_width_first(seed: int = 1, height: int | str = 48) -> onnx.ModelProto:
    """Transpose(0, 3, 1, 2) to (N, W', C, H'), Reshape to (N, W', C*H') from shape
    arithmetic (a -1 for the merged dims), then the head."""
    g = _Graph(seed)
    x = g.op("Transpose", [_backbone(g)], "nwch", perm=[0, 3, 1, 2])
    s = g.op("Shape", [x], "s")
    target = g.op("Concat", [g.dim(s, 0), g.dim(s, 1), g.ints("minus1", -1)], "target", axis=0)
    seq = g.op("Reshape", [x, target], "to_seq")
    _head(g, seq, 16 * 6)
    return g.model(height)


def crnn_attention(seed: int = 2) -> onnx.ModelProto:
    """An SVTR-like neck: tokens from the feature map, multi-head attention through a
    rank-5 Reshape/Transpose whose targets are computed at run time, rank-4 transposes of
    the picked q/k/v, then back to (N, C, H', W') through a run-time target and a 1x1 conv."""
    g = _Graph(seed)
    x = _backbone(g)  # [n, 16, 6, w']
    s = g.op("Shape", [x], "s")
    n, c, h, w = (g.dim(s, axis) for axis in range(4))
    tokens = g.op(
        "Transpose",
        [g.op("Reshape", [x, g.op("Concat", [n, c, g.ints("m1", -1)], "flat_t", axis=0)], "flat")],
        "tokens",
        perm=[0, 2, 1],
    )
    qkv = g.op("MatMul", [tokens, g.weight("qkv_w", 16, 48)], "qkv")
    t = g.op("Shape", [qkv], "t")
    split = g.op(
        "Concat",
        [
            g.dim(t, 0),
            g.dim(t, 1),
            g.ints("three", 3),
            g.ints("heads", HEADS),
            g.ints("hd", 16 // HEADS),
        ],
        "split_t",
        axis=0,
    )
    qkv = g.op("Transpose", [g.op("Reshape", [qkv, split], "qkv5")], "qkv_t", perm=[2, 0, 3, 1, 4])
    q, k, v = (
        g.op("Gather", [qkv, g.ints(f"i{i}", i, scalar=True)], f"qkv{i}", axis=0) for i in range(3)
    )
    scores = g.op("MatMul", [q, g.op("Transpose", [k], "k_t", perm=[0, 1, 3, 2])], "scores")
    attn = g.op(
        "Softmax",
        [g.op("Mul", [scores, g.weight("scale", 1, scale=0.1)], "scaled")],
        "attn",
        axis=-1,
    )
    mixed = g.op("Transpose", [g.op("MatMul", [attn, v], "mixed")], "mixed_t", perm=[0, 2, 1, 3])
    merged = g.op(
        "Reshape", [mixed, g.op("Concat", [n, g.ints("m1b", -1), c], "merge_t", axis=0)], "merged"
    )
    back = g.op("Concat", [n, h, w, c], "back_t", axis=0)
    fmap = g.op("Transpose", [g.op("Reshape", [merged, back], "nhwc")], "nchw", perm=[0, 3, 1, 2])
    fmap = g.op("Add", [x, g.op("Conv", [fmap, g.weight("w3", 16, 16, 1, 1)], "conv3")], "res")
    seq = g.op(
        "Reshape", [fmap, g.op("Concat", [n, g.ints("c96", 96), w], "seq_t", axis=0)], "to_seq"
    )
    _head(g, g.op("Transpose", [seq], "ntc", perm=[0, 2, 1]), 16 * 6)
    return g.model()


def crnn_paddle_style(seed: int = 3) -> onnx.ModelProto:
    """How paddle2onnx writes an SVTR neck (PP-OCR recognisers), opset 12: shapes cast to
    int32 and back around every Slice, a rank-5 Reshape whose target is
    Concat(0, Slice(Shape), 3, heads, head_dim), q/k/v picked with Slice + Squeeze(axes=[0]),
    a rank-4 Transpose of k; the height is an unnamed dynamic dim."""
    g = _Graph(seed)
    x = _backbone(g)  # [n, 16, 6, w']

    def piece(shape: str, begin: int, name: str) -> str:
        as_int32 = g.op("Cast", [shape], f"{name}_i32", to=TensorProto.INT32)
        cut = g.op(
            "Slice",
            [
                as_int32,
                g.ints(f"{name}_b", begin),
                g.ints(f"{name}_e", begin + 1),
                g.ints(f"{name}_a", 0),
            ],
            f"{name}_slice",
        )
        return g.op("Cast", [cut], name, to=TensorProto.INT64)

    flat = g.op("Reshape", [x, g.ints("flat_t", 0, 16, -1)], "flat")
    tokens = g.op("Transpose", [flat], "tokens", perm=[0, 2, 1])  # [n, t, 16]
    qkv = g.op("MatMul", [tokens, g.weight("qkv_w", 16, 48)], "qkv")
    t = piece(g.op("Shape", [tokens], "tokens_shape"), 1, "t")
    target = g.op(
        "Concat",
        [
            g.ints("zero", 0),
            t,
            g.ints("three", 3),
            g.ints("heads", HEADS),
            g.ints("hd", 16 // HEADS),
        ],
        "qkv_target",
        axis=0,
    )
    qkv = g.op("Transpose", [g.op("Reshape", [qkv, target], "qkv5")], "qkv_t", perm=[2, 0, 3, 1, 4])
    q, k, v = (
        g.op(
            "Squeeze",
            [
                g.op(
                    "Slice",
                    [qkv, g.ints(f"from{i}", i), g.ints(f"to{i}", i + 1), g.ints(f"axis{i}", 0)],
                    f"pick{i}",
                )
            ],
            f"qkv{i}",
            axes=[0],
        )
        for i in range(3)
    )
    scores = g.op("MatMul", [q, g.op("Transpose", [k], "k_t", perm=[0, 1, 3, 2])], "scores")
    attn = g.op(
        "Softmax",
        [g.op("Mul", [scores, g.weight("scale", 1, scale=0.1)], "scaled")],
        "attn",
        axis=3,
    )
    mixed = g.op("Transpose", [g.op("MatMul", [attn, v], "mixed")], "mixed_t", perm=[0, 2, 1, 3])
    merged = g.op(
        "Reshape",
        [mixed, g.op("Concat", [g.ints("zero2", 0), t, g.ints("c16", 16)], "merge_t", axis=0)],
        "merged",
    )
    seq = g.op("Add", [tokens, merged], "res")  # [n, t, 16], t = 6 * w'
    _head(g, seq, 16)
    return g.model(height="", opset=12)


MODELS = {
    "channels_first": crnn_channels_first,
    "width_first": crnn_width_first,
    "attention": crnn_attention,
    "paddle_style": crnn_paddle_style,
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_ocr_model_compiles_with_bounds_and_matches_onnxruntime(
    harness: Any, rng: np.random.Generator, name: str
) -> None:
    model = MODELS[name]()
    shapes = {"image": BOUNDS}
    assert uc.unsupported_ops(model, shapes=shapes) == []
    package = harness.package(model, shapes=shapes)
    for batch, width in FEEDS:
        feeds = {"image": rng.standard_normal((batch, 3, 48, width)).astype(F32)}
        got, want = uc.evaluate(package, feeds)["probs"], harness.ort(model, feeds)["probs"]
        steps = -(-width // 4) * (6 if name == "paddle_style" else 1)
        assert got.shape == want.shape == (batch, steps, CLASSES)
        report = harness.compare_arrays(got, want)
        assert report.ok, (name, batch, width, report)


def test_dynamic_height_fixed_by_the_bounds(harness: Any, rng: np.random.Generator) -> None:
    # The model leaves the height dynamic; the bounds fix it, and with it C*H' = 96.
    model = crnn_width_first(height="h")
    shapes = {"image": BOUNDS}
    assert uc.unsupported_ops(model, shapes=shapes) == []
    package = harness.package(model, shapes=shapes)
    feeds = {"image": rng.standard_normal((2, 3, 48, 500)).astype(F32)}
    got, want = uc.evaluate(package, feeds)["probs"], harness.ort(model, feeds)["probs"]
    assert harness.compare_arrays(got, want).ok


def test_static_dims_survive_a_reshape_computed_at_run_time() -> None:
    # MIL alone gives such a reshape fresh symbols for every dim; ONNX's data propagation
    # knows C*H' = 96, and the program must too (later lowerings decide from it).
    from coremltools.converters.mil.mil.types.symbolic import is_symbolic

    program = uc.translate(crnn_channels_first(), shapes={"image": BOUNDS}).model._mil_program
    ops = {op.outputs[0].name: op for op in program.functions["main"].operations}
    dims = [d for op in ops.values() if op.op_type == "reshape" for d in op.outputs[0].shape]
    assert 96 in dims
    out = program.functions["main"].outputs[0]
    assert [is_symbolic(d) for d in out.shape] == [True, True, False]
    assert out.shape[2] == CLASSES


# -- the op check agrees with translation ------------------------------------------------------


def _small(
    nodes: list[onnx.NodeProto],
    inputs: dict[str, tuple[int, list[Any]]],
    inits: dict[str, np.ndarray] | None = None,
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, t, s) for n, (t, s) in inputs.items()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in (inits or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _squeeze_all() -> onnx.ModelProto:
    return _small(
        [helper.make_node("Squeeze", ["x"], ["y"], name="squeeze")],
        {"x": (TensorProto.FLOAT, ["n", 3, 1])},
    )


def _pads_at_run_time() -> onnx.ModelProto:
    return _small(
        [helper.make_node("Pad", ["x", "pads"], ["y"], name="pad")],
        {"x": (TensorProto.FLOAT, [1, 2]), "pads": (TensorProto.INT64, [4])},
    )


def _rank_six() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "zero"], ["n"], name="batch", axis=0),
        helper.make_node("Concat", ["n", "rest"], ["t"], name="target", axis=0),
        helper.make_node("Reshape", ["x", "t"], ["r"], name="to_rank6"),
        helper.make_node("Relu", ["r"], ["y"], name="relu"),
    ]
    inits = {"zero": np.array([0], I64), "rest": np.array([1, 2, 1, 3, 4], I64)}
    return _small(nodes, {"x": (TensorProto.FLOAT, ["n", 2, 3, 4])}, inits)


def _target_of_unknown_length() -> onnx.ModelProto:
    return _small(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape")],
        {"x": (TensorProto.FLOAT, [2, 6]), "shape": (TensorProto.INT64, ["k"])},
    )


# (model, shapes, refused node or None when translation succeeds, words of the reason)
CASES = {
    "squeeze_all_dynamic": (
        _squeeze_all,
        {"x": ((1, 3, 1), (2, 3, 1), (4, 3, 1))},
        "squeeze",
        "only known at run time",
    ),
    "squeeze_all_fixed": (_squeeze_all, {"x": (2, 3, 1)}, None, ""),
    "pads_at_run_time": (_pads_at_run_time, {}, "pad", "must be a constant"),
    "rank_six": (
        _rank_six,
        {"x": ((1, 2, 3, 4), (1, 2, 3, 4), (3, 2, 3, 4))},
        "to_rank6",
        "at most 5 dimensions",
    ),
    "target_of_unknown_length": (
        _target_of_unknown_length,
        {"shape": ((1,), (2,), (3,))},
        "reshape",
        "only known at run time",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_check_agrees_with_translation(case: str) -> None:
    build, shapes, node, words = CASES[case]
    model = build()
    refused = uc.explain_unsupported(model, shapes=shapes)
    if node is None:
        assert refused == {}
        uc.translate(model, shapes=shapes)
        return
    with pytest.raises(uc.TranslationError, match=words) as info:
        uc.translate(model, shapes=shapes)
    assert info.value.node_name == node
    assert [(op.node_name, reason) for op, reason in refused.items()] == [(node, info.value.reason)]


def test_op_check_lists_every_refusal_and_skips_what_depends_on_one() -> None:
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["p"], name="pad"),
        helper.make_node("Relu", ["p"], ["after_pad"], name="after_pad"),
        helper.make_node("Squeeze", ["x"], ["q"], name="squeeze"),
        helper.make_node("LSTM", ["x3", "w", "r"], ["h"], name="lstm", hidden_size=2),
        helper.make_node("Add", ["after_pad", "q"], ["y"], name="add"),
    ]
    inputs = {
        "x": (TensorProto.FLOAT, ["n", 4]),
        "pads": (TensorProto.INT64, [4]),
        "x3": (TensorProto.FLOAT, [1, 1, 2]),
    }
    inits = {"w": np.ones((1, 8, 2), F32), "r": np.ones((1, 8, 2), F32)}
    model = _small(nodes, inputs, inits)
    refused = uc.explain_unsupported(model, shapes={"x": ((1, 4), (1, 4), (2, 4))})
    assert [op.node_name for op in refused] == ["pad", "squeeze", "lstm"]
    assert uc.unsupported_ops(model, shapes={"x": ((1, 4), (1, 4), (2, 4))}) == list(refused)
    assert refused[uc.UnsupportedOp("lstm", "LSTM", "")] == "no lowering"
    # Without shapes the dynamic dim stays symbolic: the same answer, nothing converted.
    assert list(uc.explain_unsupported(model)) == list(refused)
    # Constants known by name only: what is computed from them cannot be checked.
    assert [op.node_name for op in uc.unsupported_ops(model, ["pads"])] == ["squeeze", "lstm"]
    values = {"pads": np.array([0, 1, 0, 1], I64)}
    assert [op.node_name for op in uc.unsupported_ops(model, values)] == ["squeeze", "lstm"]


def test_inspect_and_compile_agree_through_unirun(tmp_path: Any) -> None:
    import unirun
    from unirun.cli._inspect import backend_verdicts
    from unirun.device import Device
    from unirun.errors import CompileError
    from unirun.options import ShapeRange
    from unirun.source import OnnxModel
    from unirun_coreml.backend import CoreMLBackend

    backend = CoreMLBackend()
    bounds = {"image": ShapeRange(min=BOUNDS[0], opt=BOUNDS[1], max=BOUNDS[2])}
    ocr = OnnxModel.from_source(crnn_attention())
    assert backend.unsupported_ops(ocr, Device("ane"), bounds) == []
    assert backend.unsupported_ops(ocr, Device("ane"), {}) == []  # inspect without --shape
    [verdict] = backend_verdicts(ocr, "coreml")
    assert verdict["verdict"] == "yes"
    unirun.compile(ocr.proto, backend="coreml", shapes={"image": BOUNDS})

    pads = OnnxModel.from_source(_pads_at_run_time())
    [verdict] = backend_verdicts(pads, "coreml")
    assert (verdict["verdict"], verdict["unsupported"]) == ("no", [{"node": "pad", "op": "Pad"}])
    with pytest.raises(CompileError, match=r"Pad node 'pad'.*must be a constant"):
        unirun.compile(pads.proto, backend="coreml")


def test_squeeze_of_a_dim_mil_cannot_see_is_one(harness: Any, rng: np.random.Generator) -> None:
    # Slicing [0:1] of the dynamic batch leaves a dim that is 1 but symbolic to MIL, whose
    # squeeze then keeps it (and the rank): the rank-1 Transpose after it must still work.
    nodes = [
        helper.make_node("Slice", ["x", "zero", "one", "zero"], ["first"], name="first"),
        helper.make_node("Squeeze", ["first", "zero"], ["row"], name="row"),
        helper.make_node("Transpose", ["row"], ["t"], name="t", perm=[0]),
        helper.make_node("Relu", ["t"], ["y"], name="y"),
    ]
    inits = {"zero": np.array([0], I64), "one": np.array([1], I64)}
    model = _small(nodes, {"x": (TensorProto.FLOAT, ["n", 5])}, inits)
    shapes = {"x": ((1, 5), (2, 5), (4, 5))}
    assert uc.unsupported_ops(model, shapes=shapes) == []
    package = harness.package(model, shapes=shapes)
    feeds = {"x": rng.standard_normal((3, 5)).astype(F32)}
    np.testing.assert_array_equal(uc.evaluate(package, feeds)["y"], harness.ort(model, feeds)["y"])


def test_op_check_leaves_inputs_it_cannot_plan_unchecked() -> None:
    # A string input and one without a declared shape: no placeholder can stand for them, so
    # the nodes computed from them are not checked (translate says what is wrong with them).
    nodes = [
        helper.make_node("Relu", ["x"], ["y"], name="relu"),
        helper.make_node("Identity", ["names"], ["n"], name="names_out"),
        helper.make_node("Pad", ["free", "pads"], ["p"], name="pad"),
    ]
    inputs = {"x": (TensorProto.FLOAT, [2, 3]), "names": (TensorProto.STRING, [2]),
              "free": (TensorProto.FLOAT, None), "pads": (TensorProto.INT64, [4])}  # fmt: skip
    model = _small(nodes, inputs)
    assert uc.unsupported_ops(model) == []
    with pytest.raises(uc.InputShapeError):
        uc.translate(model)


def test_a_dim_declared_as_minus_one_is_dynamic(harness: Any, rng: np.random.Generator) -> None:
    # paddle2onnx declares dynamic dims as dim_value -1 (PP-OCR's direction classifier does).
    model = _small([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                   {"x": (TensorProto.FLOAT, [-1, 3, 48, 192])})  # fmt: skip
    shapes = {"x": ((1, 3, 48, 192), (1, 3, 48, 192), (8, 3, 48, 192))}
    assert uc.unsupported_ops(model, shapes=shapes) == []
    package = harness.package(model, shapes=shapes)
    feeds = {"x": rng.standard_normal((5, 3, 48, 192)).astype(F32)}
    np.testing.assert_array_equal(uc.evaluate(package, feeds)["y"], harness.ort(model, feeds)["y"])
    with pytest.raises(uc.InputShapeError, match="dynamic dimension"):
        uc.translate(model)  # no bounds: the usual message, not "the model fixes it to -1"

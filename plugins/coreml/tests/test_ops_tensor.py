"""Per-op numerics: shape, indexing and reduction ops, across the opset drift
(axes/split/pads moving from attributes to inputs) and with dynamic dimensions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper

F32 = np.float32
I64 = np.int64
INT_MAX = np.iinfo(np.int64).max


def _one(
    harness: Any,
    node: Any,
    x: np.ndarray,
    inits: dict[str, np.ndarray] | None = None,
    opset: int = 17,
    out: Any = F32,
    **kwargs: Any,
) -> None:
    model = harness.model([node], {"x": (x.dtype, x.shape)}, {"y": out}, inits, opset=opset)
    harness.check(model, {"x": x}, **kwargs)


@pytest.mark.parametrize(
    ("shape", "allowzero"),
    [
        ((6, 4), 0),
        ((0, -1), 0),
        ((2, 0, -1), 0),
        ((-1,), 0),
        ((3, 2, 2, 2), 0),
        ((4, 6), 1),
    ],
)
def test_reshape(
    harness: Any, rng: np.random.Generator, shape: tuple[int, ...], allowzero: int
) -> None:
    x = rng.standard_normal((2, 3, 4)).astype(F32)
    _one(
        harness,
        helper.make_node("Reshape", ["x", "s"], ["y"], allowzero=allowzero),
        x,
        {"s": np.array(shape, I64)},
        opset=14,
    )


@pytest.mark.parametrize("perm", [None, [0, 2, 1], [2, 0, 1]])
def test_transpose(harness: Any, rng: np.random.Generator, perm: list[int] | None) -> None:
    x = rng.standard_normal((2, 3, 4)).astype(F32)
    attrs = {} if perm is None else {"perm": perm}
    _one(harness, helper.make_node("Transpose", ["x"], ["y"], **attrs), x)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat(harness: Any, rng: np.random.Generator, axis: int) -> None:
    x = rng.standard_normal((2, 3, 4)).astype(F32)
    c = rng.standard_normal((2, 3, 4)).astype(F32)
    _one(harness, helper.make_node("Concat", ["x", "c", "x"], ["y"], axis=axis), x, {"c": c})


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_flatten(harness: Any, rng: np.random.Generator, axis: int) -> None:
    x = rng.standard_normal((2, 3, 4)).astype(F32)
    _one(harness, helper.make_node("Flatten", ["x"], ["y"], axis=axis), x)


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("axes", [[1], [1, -1], None])
def test_squeeze(
    harness: Any, rng: np.random.Generator, opset: int, axes: list[int] | None
) -> None:
    x = rng.standard_normal((2, 1, 3, 1)).astype(F32)
    if axes is None:
        node, inits = helper.make_node("Squeeze", ["x"], ["y"]), {}
    elif opset < 13:
        node, inits = helper.make_node("Squeeze", ["x"], ["y"], axes=axes), {}
    else:
        node, inits = helper.make_node("Squeeze", ["x", "a"], ["y"]), {"a": np.array(axes, I64)}
    _one(harness, node, x, inits, opset=opset)


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("axes", [[0], [1, -1], [0, 3], [-1, -4]])
def test_unsqueeze(harness: Any, rng: np.random.Generator, opset: int, axes: list[int]) -> None:
    x = rng.standard_normal((2, 3)).astype(F32)
    if opset < 13:
        node, inits = helper.make_node("Unsqueeze", ["x"], ["y"], axes=axes), {}
    else:
        node, inits = helper.make_node("Unsqueeze", ["x", "a"], ["y"]), {"a": np.array(axes, I64)}
    _one(harness, node, x, inits, opset=opset)


@pytest.mark.parametrize(
    ("x_shape", "target"),
    [
        ((3, 1), (3, 4)),
        ((1,), (2, 3)),
        ((2, 1, 4), (1, 3, 1)),
        ((3, 1), (2, 1, 1, 5)),
    ],
)
def test_expand(
    harness: Any, rng: np.random.Generator, x_shape: tuple[int, ...], target: tuple[int, ...]
) -> None:
    x = rng.standard_normal(x_shape).astype(F32)
    _one(harness, helper.make_node("Expand", ["x", "s"], ["y"]), x, {"s": np.array(target, I64)})


def test_tile(harness: Any, rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3)).astype(F32)
    _one(harness, helper.make_node("Tile", ["x", "r"], ["y"]), x, {"r": np.array([2, 3], I64)})


@pytest.mark.parametrize(
    ("opset", "attrs"),
    [(11, {"split": [1, 3]}), (11, {}), (13, {"split": [3, 1]}), (18, {"num_outputs": 3})],
)
def test_split(harness: Any, rng: np.random.Generator, opset: int, attrs: dict[str, Any]) -> None:
    x = rng.standard_normal((2, 4, 3)).astype(F32)
    inits: dict[str, np.ndarray] = {}
    names = ["x"]
    outputs = ["y0", "y1"]
    if opset >= 13 and "split" in attrs:
        inits["s"] = np.array(attrs.pop("split"), I64)
        names.append("s")
    if "num_outputs" in attrs:
        outputs = ["y0", "y1", "y2"]  # 4 into 3: ceil-sized chunks, last one smaller
    node = helper.make_node("Split", names, outputs, axis=1, **attrs)
    model = harness.model([node], {"x": (F32, x.shape)}, outputs, inits, opset=opset)
    harness.check(model, {"x": x})


PAD_CASES = [
    ("constant", [0, 1, 2, 0, 2, 1], 0.5),
    ("constant", [1, 0, 0, 0, 0, 3], 0.0),
    ("reflect", [0, 0, 1, 0, 0, 2], 0.0),
    ("edge", [0, 2, 1, 0, 1, 0], 0.0),
    ("constant", [0, -1, 1, 0, 1, -2], 1.0),  # negative pads crop
]


@pytest.mark.parametrize(("mode", "pads", "value"), PAD_CASES)
@pytest.mark.parametrize("opset", [2, 11])
def test_pad(
    harness: Any, rng: np.random.Generator, mode: str, pads: list[int], value: float, opset: int
) -> None:
    x = rng.standard_normal((2, 3, 4)).astype(F32)
    if opset < 11:
        node = helper.make_node("Pad", ["x"], ["y"], mode=mode, pads=pads, value=value)
        _one(harness, node, x, opset=opset)
    else:
        node = helper.make_node("Pad", ["x", "p", "v"], ["y"], mode=mode)
        _one(harness, node, x, {"p": np.array(pads, I64), "v": np.array(value, F32)}, opset=opset)


def test_pad_axes(harness: Any, rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3, 4)).astype(F32)
    node = helper.make_node("Pad", ["x", "p", "", "a"], ["y"], mode="reflect")
    _one(
        harness, node, x, {"p": np.array([1, 2, 0, 1], I64), "a": np.array([-1, 1], I64)}, opset=18
    )


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space(harness: Any, rng: np.random.Generator, mode: str) -> None:
    x = rng.standard_normal((1, 8, 2, 3)).astype(F32)
    _one(harness, helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode=mode), x)


def test_space_to_depth(harness: Any, rng: np.random.Generator) -> None:
    x = rng.standard_normal((1, 2, 4, 6)).astype(F32)
    _one(harness, helper.make_node("SpaceToDepth", ["x"], ["y"], blocksize=2), x)


@pytest.mark.parametrize(
    ("axis", "indices"),
    [
        (0, np.array([2, 0, -1])),
        (1, np.array([[0, 1], [-2, 3]])),
        (-1, np.array(1)),
    ],
)
def test_gather_constant_indices(
    harness: Any, rng: np.random.Generator, axis: int, indices: np.ndarray
) -> None:
    x = rng.standard_normal((3, 4, 5)).astype(F32)
    _one(
        harness,
        helper.make_node("Gather", ["x", "i"], ["y"], axis=axis),
        x,
        {"i": indices.astype(I64)},
    )


def test_gather_embedding(harness: Any, rng: np.random.Generator) -> None:
    table = rng.standard_normal((10, 6)).astype(F32)
    ids = np.array([[1, 9, -1, 0], [3, 3, -10, 2]], I64)
    model = harness.model(
        [helper.make_node("Gather", ["t", "ids"], ["y"])],
        {"ids": (I64, ids.shape)},
        ["y"],
        {"t": table},
    )
    harness.check(model, {"ids": ids})


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements(harness: Any, rng: np.random.Generator, axis: int) -> None:
    x = rng.standard_normal((3, 4)).astype(F32)
    size = x.shape[axis]
    idx = rng.integers(-size, size, (3, 4) if axis else (2, 4)).astype(I64)
    model = harness.model(
        [helper.make_node("GatherElements", ["x", "i"], ["y"], axis=axis)],
        {"x": (F32, x.shape), "i": (I64, idx.shape)},
        ["y"],
    )
    harness.check(model, {"x": x, "i": idx})


def test_gather_nd(harness: Any, rng: np.random.Generator) -> None:
    x = rng.standard_normal((3, 4, 2)).astype(F32)
    idx = np.array([[0, 1], [2, 3], [1, -1]], I64)
    _one(harness, helper.make_node("GatherND", ["x", "i"], ["y"]), x, {"i": idx})


SLICE_CASES = [
    ([1], [3], [1], None),
    ([0, 1], [INT_MAX, -1], [0, 2], None),
    ([-3], [INT_MAX], [2], None),
    ([4], [-INT_MAX], [1], [-1]),
    ([3, 10], [0, -10], [1, 2], [-2, -1]),
    ([-1], [-6], [0], [-2]),
    ([1, 0], [100, 2], [-1, 0], [2, 1]),
    ([-100], [100], [1], [3]),
]


@pytest.mark.parametrize(("starts", "ends", "axes", "steps"), SLICE_CASES)
def test_slice(
    harness: Any,
    rng: np.random.Generator,
    starts: list[int],
    ends: list[int],
    axes: list[int],
    steps: list[int] | None,
) -> None:
    x = rng.standard_normal((4, 5, 6)).astype(F32)
    inits = {"s": np.array(starts, I64), "e": np.array(ends, I64), "a": np.array(axes, I64)}
    names = ["x", "s", "e", "a"]
    if steps is not None:
        inits["t"] = np.array(steps, I64)
        names.append("t")
    _one(harness, helper.make_node("Slice", names, ["y"]), x, inits, opset=13)


def test_empty_slice_is_refused(harness: Any) -> None:
    import unirun_coreml as uc

    node = helper.make_node("Slice", ["x", "s", "e"], ["y"])
    model = harness.model(
        [node],
        {"x": (F32, (4, 5))},
        ["y"],
        {"s": np.array([3], I64), "e": np.array([1], I64)},
        opset=13,
    )
    with pytest.raises(uc.TranslationError, match="Slice"):
        uc.translate(model)


def test_slice_opset9(harness: Any, rng: np.random.Generator) -> None:
    x = rng.standard_normal((4, 5)).astype(F32)
    node = helper.make_node("Slice", ["x"], ["y"], starts=[1, -3], ends=[INT_MAX, -1], axes=[0, 1])
    _one(harness, node, x, opset=9)


@pytest.mark.parametrize(("exclusive", "reverse"), [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("axis", [0, -1])
def test_cumsum(
    harness: Any, rng: np.random.Generator, exclusive: int, reverse: int, axis: int
) -> None:
    x = rng.standard_normal((3, 4)).astype(F32)
    node = helper.make_node("CumSum", ["x", "a"], ["y"], exclusive=exclusive, reverse=reverse)
    _one(harness, node, x, {"a": np.array(axis, I64)})


@pytest.mark.parametrize(("largest", "axis", "opset"), [(1, -1, 11), (0, 0, 11), (1, 1, 1)])
def test_topk(harness: Any, rng: np.random.Generator, largest: int, axis: int, opset: int) -> None:
    x = rng.permutation(60).reshape(3, 4, 5).astype(F32)
    if opset == 1:
        node = helper.make_node("TopK", ["x"], ["v", "i"], axis=axis, k=2)
        inits: dict[str, np.ndarray] = {}
    else:
        node = helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=axis, largest=largest)
        inits = {"k": np.array([3], I64)}
    model = harness.model([node], {"x": (F32, x.shape)}, {"v": F32, "i": I64}, inits, opset=opset)
    harness.check(model, {"x": x})


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize(("axis", "keepdims"), [(0, 1), (-1, 0), (1, 1)])
def test_argmax(harness: Any, rng: np.random.Generator, op: str, axis: int, keepdims: int) -> None:
    x = rng.standard_normal((3, 4, 5)).astype(F32)
    _one(harness, helper.make_node(op, ["x"], ["y"], axis=axis, keepdims=keepdims), x, out=I64)


REDUCE_OPS = [
    "ReduceMean",
    "ReduceSum",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceSumSquare",
    "ReduceLogSumExp",
    "ReduceLogSum",
]


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize(("axes", "keepdims"), [([1], 1), ([0, -1], 0), (None, 1)])
@pytest.mark.parametrize("opset", [11, 18])
def test_reduce(
    harness: Any,
    rng: np.random.Generator,
    op: str,
    axes: list[int] | None,
    keepdims: int,
    opset: int,
) -> None:
    x = rng.uniform(0.5, 1.5, (2, 3, 4)).astype(F32)
    if opset < 18 and not (op == "ReduceSum" and opset >= 13):
        attrs: dict[str, Any] = {"keepdims": keepdims}
        if axes is not None:
            attrs["axes"] = axes
        node, inits = helper.make_node(op, ["x"], ["y"], **attrs), {}
    else:
        names = ["x"] if axes is None else ["x", "a"]
        inits = {} if axes is None else {"a": np.array(axes, I64)}
        node = helper.make_node(op, names, ["y"], keepdims=keepdims)
    _one(harness, node, x, inits, opset=opset)


def test_reduce_noop_with_empty_axes(harness: Any, rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3)).astype(F32)
    node = helper.make_node("ReduceSum", ["x"], ["y"], noop_with_empty_axes=1)
    _one(harness, node, x, opset=13)


EINSUM = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij->ji", [(3, 4)]),
    ("ij->i", [(3, 4)]),
    ("bij,jk", [(2, 3, 4), (4, 5)]),
    ("abc,cd->abd", [(2, 3, 4), (4, 5)]),
    ("ijk,ikl->jl", [(2, 3, 4), (2, 4, 5)]),
    ("bn,anm->bam", [(2, 3), (4, 3, 5)]),
]


@pytest.mark.parametrize(("equation", "shapes"), EINSUM)
def test_einsum(
    harness: Any, rng: np.random.Generator, equation: str, shapes: list[tuple[int, ...]]
) -> None:
    feeds = {f"x{i}": rng.standard_normal(s).astype(F32) for i, s in enumerate(shapes)}
    model = harness.model(
        [helper.make_node("Einsum", list(feeds), ["y"], equation=equation)],
        {k: (F32, v.shape) for k, v in feeds.items()},
        ["y"],
        opset=12,
    )
    harness.check(model, feeds)


def test_shape_arithmetic_folds(harness: Any, rng: np.random.Generator) -> None:
    # Shape → Gather → Unsqueeze → Concat → Reshape: folded to a constant with static shapes.
    x = rng.standard_normal((2, 3, 4)).astype(F32)
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "zero1"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = {"zero": np.array(0, I64), "zero1": np.array([0], I64), "minus1": np.array([-1], I64)}
    model = harness.model(nodes, {"x": (F32, x.shape)}, ["y"], inits, opset=13)
    harness.check(model, {"x": x})


def test_dynamic_shape_ops(harness: Any, rng: np.random.Generator) -> None:
    # With a dynamic sequence length the shape arithmetic must run inside the program.
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "one"], ["seq"], axis=0),
        helper.make_node("Range", ["zero", "seq", "step"], ["positions"]),
        helper.make_node("Unsqueeze", ["positions", "axes0"], ["p2"]),
        helper.make_node("Cast", ["p2"], ["pf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["pf", "axes2"], ["p3"]),
        helper.make_node("Add", ["x", "p3"], ["added"]),
        helper.make_node("Size", ["x"], ["size"]),
        helper.make_node("Cast", ["size"], ["sizef"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["added", "sizef"], ["scaled"]),
        helper.make_node(
            "ConstantOfShape",
            ["s"],
            ["ones"],
            value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]),
        ),
        helper.make_node("Add", ["scaled", "ones"], ["sum"]),
        helper.make_node("Unsqueeze", ["seq", "axes0"], ["seq1"]),
        helper.make_node("Slice", ["sum", "zero1", "seq1", "one1"], ["y"]),
        helper.make_node("Flatten", ["y"], ["flat"], axis=1),
    ]
    inits = {
        "one": np.array(1, I64),
        "zero": np.array(0, I64),
        "step": np.array(1, I64),
        "axes0": np.array([0], I64),
        "axes2": np.array([2], I64),
        "zero1": np.array([1], I64),
        "one1": np.array([1], I64),
    }
    model = harness.model(nodes, {"x": (F32, ["batch", "seq", 4])}, ["y", "flat"], inits, opset=13)
    shapes = {"x": ((1, 1, 4), (2, 5, 4), (4, 16, 4))}
    package = harness.package(model, shapes=shapes)
    import unirun_coreml as uc

    for shape in [(1, 3, 4), (2, 5, 4), (4, 16, 4)]:
        x = rng.standard_normal(shape).astype(F32)
        expected = harness.ort(model, {"x": x})
        actual = uc.evaluate(package, {"x": x})
        for name in expected:
            np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-6)

"""Per-op numerics: convolutions, pools, Gemm/MatMul and normalizations, across the attribute
grids where translation bugs hide (pad order, auto_pad, ceil_mode, count_include_pad …)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import helper

F32 = np.float32


def _conv_model(
    harness: Any,
    rng: np.random.Generator,
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    bias: bool = True,
    op: str = "Conv",
    **attrs: Any,
) -> tuple[Any, dict[str, np.ndarray]]:
    inits = {"w": (rng.standard_normal(w_shape) * 0.5).astype(F32)}
    names = ["x", "w"]
    if bias:
        channels = w_shape[0] if op == "Conv" else w_shape[1] * attrs.get("group", 1)
        inits["b"] = rng.standard_normal(channels).astype(F32)
        names.append("b")
    model = harness.model(
        [helper.make_node(op, names, ["y"], **attrs)], {"x": (F32, x_shape)}, ["y"], inits
    )
    return model, {"x": rng.standard_normal(x_shape).astype(F32)}


CONV_CASES = [
    {},
    {"pads": [1, 1, 1, 1]},
    {"pads": [0, 1, 2, 1]},  # asymmetric: begin/end order matters
    {"pads": [2, 0, 0, 1], "strides": [2, 1]},
    {"strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"dilations": [2, 1], "pads": [2, 1, 2, 1]},
    {"auto_pad": "SAME_UPPER"},
    {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
    {"auto_pad": "SAME_LOWER", "strides": [2, 2]},
    {"auto_pad": "SAME_LOWER", "strides": [1, 2]},
    {"auto_pad": "VALID", "strides": [2, 1]},
]


@pytest.mark.parametrize("attrs", CONV_CASES)
def test_conv2d(harness: Any, rng: np.random.Generator, attrs: dict[str, Any]) -> None:
    model, feeds = _conv_model(harness, rng, (1, 3, 9, 8), (4, 3, 3, 2), **attrs)
    harness.check(model, feeds)


@pytest.mark.parametrize(("group", "w_shape"), [(2, (4, 2, 3, 3)), (4, (8, 1, 3, 3))])
def test_conv_groups(
    harness: Any, rng: np.random.Generator, group: int, w_shape: tuple[int, ...]
) -> None:
    model, feeds = _conv_model(harness, rng, (2, 4, 7, 7), w_shape, group=group, pads=[1, 0, 1, 2])
    harness.check(model, feeds)


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "attrs"),
    [
        ((1, 3, 10), (4, 3, 3), {"pads": [2, 1], "strides": [2]}),
        ((1, 2, 5, 6, 4), (3, 2, 3, 3, 2), {"pads": [1, 0, 1, 1, 2, 0]}),
    ],
)
def test_conv_1d_3d(
    harness: Any,
    rng: np.random.Generator,
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    attrs: dict[str, Any],
) -> None:
    model, feeds = _conv_model(harness, rng, x_shape, w_shape, bias=False, **attrs)
    harness.check(model, feeds)


CONV_TRANSPOSE_CASES = [
    {},
    {"strides": [2, 2]},
    {"strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"strides": [2, 2], "pads": [1, 0, 0, 1]},
    {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]},
    {"strides": [2, 3], "output_padding": [1, 2]},  # padding beyond the end pads
    {"strides": [2, 2], "dilations": [2, 1], "pads": [1, 1, 0, 0]},
    {"strides": [2, 2], "output_shape": [11, 12]},
    {"strides": [3, 2], "output_shape": [14, 14]},  # larger than the full result
    {"strides": [2, 2], "output_shape": [12, 13], "output_padding": [1, 1]},
    {"strides": [4, 4], "auto_pad": "SAME_UPPER"},  # kernel < stride: negative padding
    {"strides": [4, 3], "auto_pad": "SAME_LOWER"},
    {"strides": [2, 2], "auto_pad": "SAME_UPPER"},
    {"strides": [3, 2], "auto_pad": "SAME_LOWER"},
    {"group": 2, "strides": [2, 1], "pads": [0, 1, 1, 0]},
]


@pytest.mark.parametrize("attrs", CONV_TRANSPOSE_CASES)
def test_conv_transpose(harness: Any, rng: np.random.Generator, attrs: dict[str, Any]) -> None:
    group = attrs.get("group", 1)
    model, feeds = _conv_model(
        harness, rng, (1, 4, 5, 6), (4, 6 // group, 3, 3), op="ConvTranspose", **attrs
    )
    harness.check(model, feeds)


POOL_CASES = [
    {"kernel_shape": [2, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2]},
    {"kernel_shape": [3, 2], "pads": [1, 0, 1, 1]},
    {"kernel_shape": [3, 3], "pads": [0, 1, 2, 1], "strides": [2, 1]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1},
    {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1},
    {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
    {"kernel_shape": [2, 2], "strides": [1, 1], "auto_pad": "SAME_LOWER"},
    {"kernel_shape": [3, 3], "auto_pad": "VALID", "strides": [2, 2]},
]


@pytest.mark.parametrize(
    ("op", "include_pad"), [("MaxPool", 0), ("AveragePool", 0), ("AveragePool", 1)]
)
@pytest.mark.parametrize("attrs", POOL_CASES)
def test_pool2d(
    harness: Any, rng: np.random.Generator, op: str, attrs: dict[str, Any], include_pad: int
) -> None:
    if include_pad:
        attrs = {**attrs, "count_include_pad": 1}
    x = rng.standard_normal((1, 2, 8, 7)).astype(F32)
    model = harness.model(
        [helper.make_node(op, ["x"], ["y"], **attrs)], {"x": (F32, x.shape)}, ["y"], opset=19
    )
    harness.check(model, {"x": x})


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize(
    ("shape", "attrs"),
    [
        ((1, 2, 9), {"kernel_shape": [3], "strides": [2], "pads": [1, 0]}),
        ((1, 2, 5, 6, 4), {"kernel_shape": [2, 3, 2], "pads": [1, 0, 0, 0, 1, 1]}),
    ],
)
def test_pool_1d_3d(
    harness: Any, rng: np.random.Generator, op: str, shape: tuple[int, ...], attrs: dict[str, Any]
) -> None:
    x = rng.standard_normal(shape).astype(F32)
    model = harness.model(
        [helper.make_node(op, ["x"], ["y"], **attrs)], {"x": (F32, x.shape)}, ["y"]
    )
    harness.check(model, {"x": x})


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 3, 7)])
def test_global_pool(
    harness: Any, rng: np.random.Generator, op: str, shape: tuple[int, ...]
) -> None:
    x = rng.standard_normal(shape).astype(F32)
    model = harness.model([helper.make_node(op, ["x"], ["y"])], {"x": (F32, x.shape)}, ["y"])
    harness.check(model, {"x": x})


GEMM_CASES = [
    ({}, (5,)),
    ({"alpha": 0.5, "beta": 2.0}, (5,)),
    ({"transA": 1}, (1, 5)),
    ({"transB": 1, "alpha": 1.5}, (1,)),
    ({"transA": 1, "transB": 1, "beta": 0.3}, (3, 5)),
    ({}, None),
]


@pytest.mark.parametrize(("attrs", "c_shape"), GEMM_CASES)
@pytest.mark.parametrize("b_const", [True, False])
def test_gemm(
    harness: Any,
    rng: np.random.Generator,
    attrs: dict[str, Any],
    c_shape: tuple[int, ...] | None,
    b_const: bool,
) -> None:
    a_shape = (4, 3) if attrs.get("transA") else (3, 4)
    b_shape = (5, 4) if attrs.get("transB") else (4, 5)
    a = rng.standard_normal(a_shape).astype(F32)
    b = rng.standard_normal(b_shape).astype(F32)
    inits: dict[str, np.ndarray] = {}
    inputs: dict[str, Any] = {"a": (F32, a_shape)}
    feeds = {"a": a}
    if b_const:
        inits["b"] = b
    else:
        inputs["b"] = (F32, b_shape)
        feeds["b"] = b
    names = ["a", "b"]
    if c_shape is not None:
        inits["c"] = rng.standard_normal(c_shape).astype(F32)
        names.append("c")
    model = harness.model([helper.make_node("Gemm", names, ["y"], **attrs)], inputs, ["y"], inits)
    harness.check(model, feeds)


@pytest.mark.parametrize(
    ("a_shape", "b_shape", "b_const"),
    [
        ((3, 4), (4, 5), True),
        ((2, 3, 4), (4, 5), True),
        ((2, 2, 3, 4), (4, 5), True),
        ((2, 3, 4), (2, 4, 5), False),
        ((2, 3, 4), (4, 5), False),
        ((4,), (4, 5), True),
        ((2, 1, 3, 4), (5, 4, 2), False),
    ],
)
def test_matmul(
    harness: Any,
    rng: np.random.Generator,
    a_shape: tuple[int, ...],
    b_shape: tuple[int, ...],
    b_const: bool,
) -> None:
    a = rng.standard_normal(a_shape).astype(F32)
    b = rng.standard_normal(b_shape).astype(F32)
    if b_const:
        model = harness.model(
            [helper.make_node("MatMul", ["a", "b"], ["y"])], {"a": (F32, a_shape)}, ["y"], {"b": b}
        )
        harness.check(model, {"a": a})
    else:
        model = harness.model(
            [helper.make_node("MatMul", ["a", "b"], ["y"])],
            {"a": (F32, a_shape), "b": (F32, b_shape)},
            ["y"],
        )
        harness.check(model, {"a": a, "b": b})


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5), (2, 3, 4, 5), (1, 3, 2, 3, 4)])
def test_batch_norm(harness: Any, rng: np.random.Generator, shape: tuple[int, ...]) -> None:
    c = shape[1]
    inits = {
        "s": rng.uniform(0.5, 2, c),
        "b": rng.standard_normal(c),
        "m": rng.standard_normal(c),
        "v": rng.uniform(0.1, 3, c),
    }
    model = harness.model(
        [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-3)],
        {"x": (F32, shape)},
        ["y"],
        {k: v.astype(F32) for k, v in inits.items()},
        opset=15,
    )
    harness.check(model, {"x": rng.standard_normal(shape).astype(F32)})


@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 4, 5), (1, 2, 3, 4, 3)])
def test_instance_norm(harness: Any, rng: np.random.Generator, shape: tuple[int, ...]) -> None:
    c = shape[1]
    inits = {"s": rng.uniform(0.5, 2, c).astype(F32), "b": rng.standard_normal(c).astype(F32)}
    model = harness.model(
        [helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-4)],
        {"x": (F32, shape)},
        ["y"],
        inits,
    )
    harness.check(model, {"x": rng.standard_normal(shape).astype(F32) * 3 + 1})


@pytest.mark.parametrize(
    ("axis", "with_bias", "scale_shape"),
    [
        (-1, True, (8,)),
        (-1, False, (8,)),
        (1, True, (4, 8)),
        (-2, True, (1, 8)),
    ],
)
def test_layer_norm(
    harness: Any, rng: np.random.Generator, axis: int, with_bias: bool, scale_shape: tuple[int, ...]
) -> None:
    shape = (2, 4, 8)
    inits = {"s": rng.uniform(0.5, 2, scale_shape).astype(F32)}
    names = ["x", "s"]
    if with_bias:
        inits["b"] = rng.standard_normal(scale_shape).astype(F32)
        names.append("b")
    model = harness.model(
        [helper.make_node("LayerNormalization", names, ["y"], axis=axis, epsilon=1e-3)],
        {"x": (F32, shape)},
        ["y"],
        inits,
    )
    harness.check(model, {"x": rng.standard_normal(shape).astype(F32) * 2 + 0.5})


@pytest.mark.parametrize("opset", [18, 21])
def test_group_norm(harness: Any, rng: np.random.Generator, opset: int) -> None:
    shape, groups = (2, 6, 3, 4), 3
    n = groups if opset == 18 else shape[1]
    inits = {"s": rng.uniform(0.5, 2, n).astype(F32), "b": rng.standard_normal(n).astype(F32)}
    model = harness.model(
        [
            helper.make_node(
                "GroupNormalization", ["x", "s", "b"], ["y"], num_groups=groups, epsilon=1e-4
            )
        ],
        {"x": (F32, shape)},
        ["y"],
        inits,
        opset=opset,
    )
    harness.check(model, {"x": rng.standard_normal(shape).astype(F32) * 2})


def test_lrn(harness: Any, rng: np.random.Generator) -> None:
    x = rng.standard_normal((1, 6, 4, 4)).astype(F32)
    model = harness.model(
        [helper.make_node("LRN", ["x"], ["y"], size=3, alpha=1e-2, beta=0.75, bias=2.0)],
        {"x": (F32, x.shape)},
        ["y"],
    )
    harness.check(model, {"x": x})

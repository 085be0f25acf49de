"""Per-op numerics: element-wise math, activations, comparisons, Clip, Cast, Softmax."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper

F32 = np.float32

UNARY = [
    "Relu",
    "Sigmoid",
    "Tanh",
    "Exp",
    "Abs",
    "Neg",
    "Floor",
    "Ceil",
    "Sin",
    "Cos",
    "Erf",
    "Softsign",
    "Softplus",
    "Sign",
    "Atan",
    "Sinh",
    "Cosh",
    "Tan",
    "Round",
]
POSITIVE = ["Log", "Sqrt", "Reciprocal"]
UNIT = ["Asin", "Acos"]


@pytest.mark.parametrize("op", UNARY + POSITIVE + UNIT)
def test_unary(harness: Any, rng: np.random.Generator, op: str) -> None:
    x = rng.standard_normal((2, 3, 4)).astype(F32) * 2
    if op in POSITIVE:
        x = np.abs(x) + 0.1
    if op in UNIT:
        x = np.tanh(x)
    if op == "Round":
        x = np.round(x * 2) / 2 + rng.choice([0, 0.1], x.shape).astype(F32)
    model = harness.model([helper.make_node(op, ["x"], ["y"])], {"x": (F32, x.shape)}, ["y"])
    harness.check(model, {"x": x})


ACTIVATIONS = [
    ("LeakyRelu", {}),
    ("LeakyRelu", {"alpha": 0.2}),
    ("Elu", {}),
    ("Elu", {"alpha": 0.5}),
    ("Selu", {}),
    ("Selu", {"alpha": 1.5, "gamma": 0.9}),
    ("Celu", {"alpha": 2.0}),
    ("HardSigmoid", {}),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}),
    ("HardSwish", {}),
    ("ThresholdedRelu", {"alpha": 0.5}),
    ("Mish", {}),
]


@pytest.mark.parametrize(("op", "attrs"), ACTIVATIONS)
def test_activation(
    harness: Any, rng: np.random.Generator, op: str, attrs: dict[str, float]
) -> None:
    x = rng.standard_normal((2, 3, 5)).astype(F32) * 3
    opset = 18 if op == "Mish" else 17
    model = harness.model(
        [helper.make_node(op, ["x"], ["y"], **attrs)], {"x": (F32, x.shape)}, ["y"], opset=opset
    )
    harness.check(model, {"x": x})


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(harness: Any, rng: np.random.Generator, approximate: str) -> None:
    x = rng.standard_normal((2, 8)).astype(F32) * 3
    model = harness.model(
        [helper.make_node("Gelu", ["x"], ["y"], approximate=approximate)],
        {"x": (F32, x.shape)},
        ["y"],
        opset=20,
    )
    harness.check(model, {"x": x})


@pytest.mark.parametrize("slope_shape", [(1,), (3, 1, 1), (1, 3, 1, 1), (4,), (3, 4, 4)])
def test_prelu(harness: Any, rng: np.random.Generator, slope_shape: tuple[int, ...]) -> None:
    x = rng.standard_normal((2, 3, 4, 4)).astype(F32)
    slope = rng.uniform(0.05, 0.5, slope_shape).astype(F32)
    model = harness.model(
        [helper.make_node("PRelu", ["x", "s"], ["y"])], {"x": (F32, x.shape)}, ["y"], {"s": slope}
    )
    harness.check(model, {"x": x})


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min", "Pow"])
@pytest.mark.parametrize("shapes", [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (4,)), ((2, 1, 4), (3, 1))])
def test_binary_float(
    harness: Any, rng: np.random.Generator, op: str, shapes: tuple[tuple[int, ...], tuple[int, ...]]
) -> None:
    a = rng.standard_normal(shapes[0]).astype(F32)
    b = rng.standard_normal(shapes[1]).astype(F32)
    if op == "Pow":
        a = np.abs(a) + 0.5
    if op == "Div":
        b = np.sign(b) * (np.abs(b) + 0.5)
    model = harness.model(
        [helper.make_node(op, ["a", "b"], ["y"])], {"a": (F32, a.shape), "b": (F32, b.shape)}, ["y"]
    )
    harness.check(model, {"a": a, "b": b})


@pytest.mark.parametrize("exponent", [2.0, 3.0, 0.5, -1.0, 1.0, 1.7])
def test_pow_constant_exponent(harness: Any, rng: np.random.Generator, exponent: float) -> None:
    # x is negative in places: x**2 of a centred value is how exported LayerNorms compute
    # the variance, and Core ML's pow is undefined for a negative base.
    x = rng.standard_normal((3, 5)).astype(F32)
    if exponent in (0.5, 1.7):
        x = np.abs(x) + 0.1
    model = harness.model(
        [helper.make_node("Pow", ["x", "e"], ["y"])],
        {"x": (F32, x.shape)},
        ["y"],
        {"e": np.array(exponent, F32)},
    )
    harness.check(model, {"x": x})


@pytest.mark.parametrize(("op", "fmod"), [("Div", 0), ("Mod", 0), ("Mod", 1)])
def test_integer_division(harness: Any, op: str, fmod: int) -> None:
    a = np.array([7, -7, 7, -7, 6, -6, 0, 5, -9], np.int64)
    b = np.array([2, 2, -2, -2, 3, -3, 4, -7, 4], np.int64)
    attrs = {"fmod": fmod} if op == "Mod" else {}
    model = harness.model(
        [helper.make_node(op, ["a", "b"], ["y"], **attrs)],
        {"a": (np.int64, a.shape), "b": (np.int64, b.shape)},
        {"y": np.int64},
    )
    harness.check(model, {"a": a, "b": b})


def test_float_fmod(harness: Any) -> None:
    a = np.array([5.5, -5.5, 5.5, -5.5, 1.0], F32)
    b = np.array([2.0, 2.0, -2.0, -2.0, 3.0], F32)
    model = harness.model(
        [helper.make_node("Mod", ["a", "b"], ["y"], fmod=1)],
        {"a": (F32, a.shape), "b": (F32, b.shape)},
        ["y"],
    )
    harness.check(model, {"a": a, "b": b})


@pytest.mark.parametrize("op", ["Sum", "Mean", "Max", "Min"])
def test_variadic(harness: Any, rng: np.random.Generator, op: str) -> None:
    xs = [rng.standard_normal(s).astype(F32) for s in [(2, 3), (3,), (1, 3)]]
    feeds = {f"x{i}": x for i, x in enumerate(xs)}
    model = harness.model(
        [helper.make_node(op, list(feeds), ["y"])],
        {k: (F32, v.shape) for k, v in feeds.items()},
        ["y"],
    )
    harness.check(model, feeds)


@pytest.mark.parametrize("op", ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"])
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_compare(harness: Any, rng: np.random.Generator, op: str, dtype: Any) -> None:
    a = rng.integers(-2, 3, (3, 4)).astype(dtype)
    b = rng.integers(-2, 3, (4,)).astype(dtype)
    model = harness.model(
        [helper.make_node(op, ["a", "b"], ["y"])],
        {"a": (dtype, a.shape), "b": (dtype, b.shape)},
        {"y": np.bool_},
    )
    harness.check(model, {"a": a, "b": b})


def test_logic_and_where(harness: Any, rng: np.random.Generator) -> None:
    a = rng.standard_normal((3, 4)).astype(F32)
    b = rng.standard_normal((3, 4)).astype(F32)
    nodes = [
        helper.make_node("Greater", ["a", "b"], ["g"]),
        helper.make_node("Less", ["a", "zero"], ["n"]),
        helper.make_node("And", ["g", "n"], ["and"]),
        helper.make_node("Or", ["g", "n"], ["or"]),
        helper.make_node("Xor", ["g", "n"], ["xor"]),
        helper.make_node("Not", ["xor"], ["not"]),
        helper.make_node("Where", ["or", "a", "b"], ["y"]),
    ]
    model = harness.model(
        nodes,
        {"a": (F32, a.shape), "b": (F32, b.shape)},
        {"y": F32, "and": np.bool_, "not": np.bool_},
        {"zero": np.array(0, F32)},
    )
    harness.check(model, {"a": a, "b": b})


@pytest.mark.parametrize(
    ("opset", "bounds"),
    [
        (6, {"min": -0.5, "max": 0.7}),
        (6, {"min": 0.0}),
        (11, (-0.5, 0.7)),
        (11, (0.0, 6.0)),
        (13, (None, 0.3)),
        (13, (-0.2, None)),
        (13, (None, None)),
    ],
)
def test_clip(harness: Any, rng: np.random.Generator, opset: int, bounds: Any) -> None:
    x = rng.standard_normal((2, 5)).astype(F32) * 4
    inits: dict[str, np.ndarray] = {}
    if isinstance(bounds, dict):
        node = helper.make_node("Clip", ["x"], ["y"], **bounds)
    else:
        names = ["x"]
        for name, value in zip(["lo", "hi"], bounds, strict=True):
            names.append("" if value is None else name)
            if value is not None:
                inits[name] = np.array(value, F32)
        node = helper.make_node("Clip", names, ["y"])
    model = harness.model([node], {"x": (F32, x.shape)}, ["y"], inits, opset=opset)
    harness.check(model, {"x": x})


def test_clip_integer(harness: Any) -> None:
    x = np.arange(-5, 5, dtype=np.int64)
    model = harness.model(
        [helper.make_node("Clip", ["x", "lo", "hi"], ["y"])],
        {"x": (np.int64, x.shape)},
        {"y": np.int64},
        {"lo": np.array(-2, np.int64), "hi": np.array(3, np.int64)},
        opset=13,
    )
    harness.check(model, {"x": x})


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (np.float32, TensorProto.INT64),
        (np.float32, TensorProto.INT32),
        (np.float32, TensorProto.BOOL),
        (np.int64, TensorProto.FLOAT),
        (np.bool_, TensorProto.FLOAT),
        (np.float32, TensorProto.FLOAT16),
        (np.float32, TensorProto.FLOAT),
    ],
)
def test_cast(harness: Any, rng: np.random.Generator, source: Any, target: int) -> None:
    x = (rng.standard_normal((3, 4)) * 5).astype(source)
    out = helper.tensor_dtype_to_np_dtype(target)
    model = harness.model(
        [helper.make_node("Cast", ["x"], ["y"], to=target)], {"x": (source, x.shape)}, {"y": out}
    )
    harness.check(model, {"x": x}, rtol=1e-3 if target == TensorProto.FLOAT16 else 1e-5)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize(
    ("opset", "axis"), [(11, 1), (11, -1), (11, 0), (13, 1), (13, -1), (13, 0)]
)
def test_softmax(harness: Any, rng: np.random.Generator, op: str, opset: int, axis: int) -> None:
    x = rng.standard_normal((2, 3, 4)).astype(F32) * 3
    model = harness.model(
        [helper.make_node(op, ["x"], ["y"], axis=axis)], {"x": (F32, x.shape)}, ["y"], opset=opset
    )
    harness.check(model, {"x": x})


def test_identity_dropout(harness: Any, rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3)).astype(F32)
    nodes = [helper.make_node("Dropout", ["x"], ["d"]), helper.make_node("Identity", ["d"], ["y"])]
    model = harness.model(nodes, {"x": (F32, x.shape)}, ["y"], opset=13)
    harness.check(model, {"x": x})

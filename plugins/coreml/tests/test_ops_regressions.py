"""Cases found by running the ONNX node-test corpus through translate → evaluate: each one was
a wrong answer or a crash before its fix."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper

import unirun_coreml as uc

F32 = np.float32
I64 = np.int64


@pytest.mark.parametrize(
    ("cond_shape", "a_shape", "b_shape"),
    [
        ((4, 6), (), ()),
        ((2, 1, 4, 6), (1,), (6,)),
        ((3, 1), (1, 5), ()),
        ((4,), (), (4,)),
    ],
)
def test_where_condition_carries_the_shape(
    harness: Any,
    rng: np.random.Generator,
    cond_shape: tuple[int, ...],
    a_shape: tuple[int, ...],
    b_shape: tuple[int, ...],
) -> None:
    # MIL's select takes its output shape from a and b only.
    cond = rng.random(cond_shape) > 0.5
    model = harness.model(
        [helper.make_node("Where", ["c", "a", "b"], ["y"])],
        {"c": (np.bool_, cond_shape)},
        ["y"],
        {"a": rng.standard_normal(a_shape).astype(F32), "b": np.full(b_shape, -np.inf, F32)},
    )
    harness.check(model, {"c": cond})


def test_thresholded_relu_at_alpha(harness: Any) -> None:
    x = np.array([-1.0, 0.0, 1.0, 2.0, 2.5], F32)
    model = harness.model(
        [helper.make_node("ThresholdedRelu", ["x"], ["y"], alpha=2.0)], {"x": (F32, x.shape)}, ["y"]
    )
    harness.check(model, {"x": x})


@pytest.mark.parametrize(
    ("a_shape", "b_shape"), [((4,), (2, 4, 3)), ((2, 3, 4), (4,)), ((4,), (4,))]
)
def test_matmul_one_dimensional(
    harness: Any, rng: np.random.Generator, a_shape: tuple[int, ...], b_shape: tuple[int, ...]
) -> None:
    feeds = {
        "a": rng.standard_normal(a_shape).astype(F32),
        "b": rng.standard_normal(b_shape).astype(F32),
    }
    model = harness.model(
        [helper.make_node("MatMul", ["a", "b"], ["y"])],
        {k: (F32, v.shape) for k, v in feeds.items()},
        ["y"],
    )
    harness.check(model, feeds)


def test_integer_max_pool(harness: Any, rng: np.random.Generator) -> None:
    x = rng.integers(0, 255, (1, 1, 5, 5)).astype(np.uint8)
    model = harness.model(
        [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], pads=[1, 1, 1, 1])],
        {"x": (np.uint8, x.shape)},
        {"y": np.uint8},
        opset=12,
    )
    harness.check(model, {"x": x})


@pytest.mark.parametrize("target", [[2, 0, 4, 1], [0, -1], [4, 0, 2]])
def test_reshape_to_a_runtime_shape(
    harness: Any, rng: np.random.Generator, target: list[int]
) -> None:
    x = rng.standard_normal((2, 3, 4)).astype(F32)
    model = harness.model(
        [helper.make_node("Reshape", ["x", "s"], ["y"])],
        {"x": (F32, x.shape), "s": (I64, (len(target),))},
        ["y"],
        opset=14,
    )
    harness.check(model, {"x": x, "s": np.array(target, I64)})


def test_runtime_shapes_for_expand_tile_and_constant_of_shape(
    harness: Any, rng: np.random.Generator
) -> None:
    x = rng.standard_normal((3, 1)).astype(F32)
    nodes = [
        helper.make_node("Expand", ["x", "s"], ["e"]),
        helper.make_node("Tile", ["x", "r"], ["t"]),
        helper.make_node(
            "ConstantOfShape",
            ["s"],
            ["c"],
            value=helper.make_tensor("v", TensorProto.FLOAT, [1], [2.0]),
        ),
    ]
    model = harness.model(
        nodes, {"x": (F32, x.shape), "s": (I64, (2,)), "r": (I64, (2,))}, ["e", "t", "c"]
    )
    harness.check(model, {"x": x, "s": np.array([3, 4], I64), "r": np.array([2, 3], I64)})


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
def test_boolean_reduce(harness: Any, rng: np.random.Generator, op: str) -> None:
    x = rng.random((3, 4)) > 0.6
    model = harness.model(
        [helper.make_node(op, ["x", "a"], ["y"], keepdims=0)],
        {"x": (np.bool_, x.shape)},
        {"y": np.bool_},
        {"a": np.array([1], I64)},
        opset=20,
    )
    harness.check(model, {"x": x})


def test_space_to_depth_crd(harness: Any, rng: np.random.Generator) -> None:
    x = rng.standard_normal((1, 2, 4, 6)).astype(F32)
    model = harness.model(
        [helper.make_node("SpaceToDepth", ["x"], ["y"], blocksize=2, mode="CRD")],
        {"x": (F32, x.shape)},
        ["y"],
        opset=28,
    )
    # ONNX Runtime may not know opset 28 yet; the inverse of DepthToSpace(CRD) is the oracle.
    y = uc.evaluate(harness.package(model), {"x": x})["y"]
    back = harness.model(
        [helper.make_node("DepthToSpace", ["y"], ["x"], blocksize=2, mode="CRD")],
        {"y": (F32, y.shape)},
        ["x"],
        opset=13,
    )
    np.testing.assert_array_equal(harness.ort(back, {"y": y})["x"], x)


def test_align_corners_with_inexact_scales_is_refused(harness: Any) -> None:
    # ONNX maps with the unrounded output length (in · scale); Core ML with the rounded one.
    node = helper.make_node(
        "Resize",
        ["x", "", "s"],
        ["y"],
        mode="linear",
        coordinate_transformation_mode="align_corners",
    )
    model = harness.model(
        [node], {"x": (F32, (1, 1, 2, 4))}, ["y"], {"s": np.array([1, 1, 0.6, 0.6], F32)}, opset=13
    )
    with pytest.raises(uc.TranslationError, match="scale"):
        uc.translate(model)


def test_log_of_zero_is_minus_infinity(harness: Any) -> None:
    # MIL's log adds an epsilon (1e-45) unless told otherwise.
    x = np.array([0.0, 1e-30, 1.0, 5.0], F32)
    model = harness.model([helper.make_node("Log", ["x"], ["y"])], {"x": (F32, x.shape)}, ["y"])
    harness.check(model, {"x": x})


def test_expand_after_a_runtime_reshape(harness: Any, rng: np.random.Generator) -> None:
    # From a PyTorch-exported attention mask: the reshape's dims are unknown at conversion,
    # so Expand must decide its repeats at run time (an x + zeros(shape) broadcast is dropped
    # by coremltools' noop elimination).
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "i0"], ["b"]),
        helper.make_node("Gather", ["s", "i1"], ["n"]),
        helper.make_node("Concat", ["b", "one", "one", "n"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["x4"]),
        helper.make_node("Expand", ["x4", "heads"], ["e"]),
        helper.make_node("Mul", ["b", "four"], ["bh"]),
        helper.make_node("Concat", ["bh", "one", "n"], ["flat"], axis=0),
        helper.make_node("Reshape", ["e", "flat"], ["y"]),
    ]
    inits = {
        "i0": np.array([0], I64),
        "i1": np.array([1], I64),
        "one": np.array([1], I64),
        "heads": np.array([1, 4, 1, 1], I64),
        "four": np.array([4], I64),
    }
    model = harness.model(nodes, {"x": (F32, ["b", "n"])}, ["y"], inits, opset=13)
    package = harness.package(model, shapes={"x": ((1, 1), (2, 7), (4, 16))})
    for shape in [(2, 7), (3, 5)]:
        x = rng.standard_normal(shape).astype(F32)
        np.testing.assert_array_equal(
            uc.evaluate(package, {"x": x})["y"], harness.ort(model, {"x": x})["y"]
        )

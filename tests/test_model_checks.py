"""Checks the core makes on a model before any engine sees it (cycles), and declared fixed shapes
on the reference backend, with a model shaped like a real streaming one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper

import unirun
from unirun import InvalidModelError
from unirun.source import OnnxModel
from unirun.testing.models import streaming_vad


def _model(nodes: list[Any], name: str = "g") -> Any:
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_a_cycle_is_refused_naming_its_nodes() -> None:
    model = _model(
        [
            helper.make_node("Add", ["x", "c"], ["a"], name="add"),
            helper.make_node("Relu", ["a"], ["b"], name="relu"),
            helper.make_node("Neg", ["b"], ["c"], name="neg"),
            helper.make_node("Identity", ["a"], ["y"], name="out"),
        ],
        "loop",
    )
    with pytest.raises(InvalidModelError) as info:
        OnnxModel.from_source(model)
    assert str(info.value).startswith(
        "the graph 'loop' has a cycle: 'add' (Add) → 'relu' (Relu) → 'neg' (Neg) → 'add' (Add)"
    )
    with pytest.raises(InvalidModelError, match="has a cycle"):
        unirun.load(model.SerializeToString(), backend="reference", cache=False)


def test_a_node_reading_its_own_output_is_a_cycle() -> None:
    model = _model(
        [
            helper.make_node("Add", ["x", "a"], ["a"], name="self"),
            helper.make_node("Identity", ["a"], ["y"]),
        ]
    )
    with pytest.raises(InvalidModelError, match=r"cycle: 'self' \(Add\) → 'self' \(Add\)"):
        OnnxModel.from_source(model)


def test_a_cycle_inside_an_if_branch_is_found() -> None:
    branch = helper.make_graph(
        [
            helper.make_node("Add", ["x", "q"], ["p"], name="inner_add"),
            helper.make_node("Relu", ["p"], ["q"], name="inner_relu"),
        ],
        "then_branch",
        [],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, [2])],
    )
    other = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["z"])],
        "else_branch",
        [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])],
    )
    model = _model(
        [
            helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
            helper.make_node("Greater", ["s", "zero"], ["cond"]),
            helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=other),
        ]
    )
    model.graph.initializer.append(helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]))
    with pytest.raises(InvalidModelError, match=r"'then_branch' has a cycle: 'inner_add'"):
        OnnxModel.from_source(model)


def test_a_cycle_through_a_subgraphs_outer_reads_is_found() -> None:
    """The If reads ``b`` inside its branch, and ``b`` is computed from the If's output."""
    branch = helper.make_graph(
        [helper.make_node("Identity", ["b"], ["p"])],
        "reads_b",
        [],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, [2])],
    )
    model = _model(
        [
            helper.make_node("Constant", [], ["cond"], value_int=1, name="cond"),
            helper.make_node(
                "If", ["cond"], ["a"], then_branch=branch, else_branch=branch, name="if"
            ),
            helper.make_node("Relu", ["a"], ["b"], name="relu"),
            helper.make_node("Identity", ["a"], ["y"]),
        ]
    )
    with pytest.raises(InvalidModelError, match=r"cycle: 'if' \(If\) → 'relu' \(Relu\)"):
        OnnxModel.from_source(model)


def test_nodes_out_of_order_are_not_a_cycle() -> None:
    model = _model(
        [
            helper.make_node("Identity", ["a"], ["y"], name="second"),
            helper.make_node("Relu", ["x"], ["a"], name="first"),
        ]
    )
    OnnxModel.from_source(model)  # engines sort such graphs themselves


def _stream(model: unirun.Model, chunks: int, sr: int, size: int) -> Any:
    rng = np.random.default_rng(size)
    state = np.zeros((2, 1, 16), np.float32)
    probs = []
    for _ in range(chunks):
        chunk = rng.standard_normal((1, size)).astype(np.float32)
        out = model({"input": chunk, "state": state, "sr": np.array(sr, np.int64)})
        probs.append(out["output"])
        state = out["stateN"]
    return np.concatenate(probs)


def test_streaming_model_on_the_reference_backend_with_and_without_fixed_shapes() -> None:
    model = streaming_vad()
    with unirun.load(model, backend="reference", cache=False) as free:
        want = _stream(free, 3, 16000, 512)
        assert _stream(free, 3, 8000, 256).shape == (3, 1)
    shapes = {"input": (1, 512), "state": (2, 1, 16)}
    with unirun.load(model, backend="reference", shapes=shapes, cache=False) as fixed:
        np.testing.assert_array_equal(_stream(fixed, 3, 16000, 512), want)
        with pytest.raises(unirun.InputError, match="'input'"):
            _stream(fixed, 1, 8000, 256)

"""What the core guarantees about outputs on every backend: the caller owns them (never a view of
an input), and an answer whose shape contradicts the declared outputs is reported."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper

import unirun
from unirun.testing._support import aliasing_model

ENGINES = [
    b.name
    for b in unirun.backends()
    if b.available and b.name in ("reference", "onnxruntime", "openvino")
]


@pytest.mark.parametrize("backend", ENGINES)
def test_outputs_never_alias_the_callers_input(backend: str) -> None:
    """Reusing one input buffer: earlier outputs keep their values (the reference backend used
    to return views of the input for Reshape and for a graph output that is also an input)."""
    buffer = np.zeros(3, np.float32)
    kept = []
    with unirun.load(aliasing_model(), backend=backend, cache=False) as m:
        for step in range(3):
            buffer[:] = step
            out = m(buffer)
            assert set(out) == {"same", "reshaped", "x"}
            assert not any(np.shares_memory(v, buffer) for v in out.values())
            kept.append(out)
    for step, out in enumerate(kept):
        for name, value in out.items():
            assert (value == step).all(), (name, value.tolist(), step)


def test_outputs_never_alias_a_framework_tensor() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed (requirements-dev.txt)")
    t = torch.zeros(3)
    with unirun.load(aliasing_model(), backend="reference", cache=False) as m:
        out = m(t)
        t += 5
    assert all((v == 0).all() for v in out.values()), out


def _misdeclared(output_shape: list[Any]) -> Any:
    """``y = x[:1]`` for ``x`` [N, 4], with ``y`` declared as ``output_shape``."""
    graph = helper.make_graph(
        [helper.make_node("Slice", ["x", "zero", "one"], ["y"], name="first_row")],
        "misdeclared",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, output_shape)],
        [
            helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
            helper.make_tensor("one", TensorProto.INT64, [1], [1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


_CONTRADICTIONS = [
    ("reference", ["N", 4], "dimension 0 is N, 3 in input 'x'"),
    ("reference", [1, 5], "dimension 1 is 5"),
    ("reference", ["N"], "rank 1"),
    # ONNX Runtime keeps a declared shape only where it agrees with its own inference
    ("onnxruntime", ["N", 4], "dimension 0 is N, 3 in input 'x'"),
]


@pytest.mark.parametrize(
    ("backend", "declared", "why"), [c for c in _CONTRADICTIONS if c[0] in ENGINES]
)
def test_an_answer_that_contradicts_the_declared_output_is_reported(
    backend: str, declared: list[Any], why: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The engines that report the graph's declared output shapes (ONNX Runtime, the reference)
    return what the graph computes; unirun checks rank, fixed dims and dims named like an input's
    (resolved from the feeds) and says once per output that the answer contradicts them. It does
    not refuse the answer: models whose declared output shapes are wrong are common (an input
    made dynamic by editing), and the engine's result is then the right one."""
    caplog.set_level(logging.WARNING, logger="unirun")
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    with unirun.load(_misdeclared(declared), backend=backend, cache=False) as m:
        for _ in range(3):
            np.testing.assert_array_equal(m(x)["y"], x[:1])
    warnings = [r.getMessage() for r in caplog.records if r.name == "unirun"]
    assert len(warnings) == 1, warnings
    assert "'y'" in warnings[0] and "(1, 4)" in warnings[0] and why in warnings[0], warnings[0]


@pytest.mark.parametrize("backend", ENGINES)
def test_answers_that_agree_with_the_declaration_are_silent(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="unirun")
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    with unirun.load(_misdeclared([1, 4]), backend=backend, cache=False) as m:
        m(x)
    with unirun.load(unirun.testing.conv_net(size=8), backend=backend, cache=False) as m:
        m(np.zeros((2, 3, 8, 8), np.float32))
    assert not [r for r in caplog.records if r.name == "unirun"]


def test_many_inputs_are_checked_by_address_ranges() -> None:
    """Past a few feeds the core compares address ranges (sorted) instead of every pair."""
    from onnx import numpy_helper

    count = 12
    graph = helper.make_graph(
        [helper.make_node("Reshape", [f"x{i}", "column"], [f"y{i}"]) for i in range(count)],
        "many",
        [helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, [3]) for i in range(count)],
        [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [3, 1]) for i in range(count)],
        [numpy_helper.from_array(np.array([3, 1], np.int64), "column")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    block = np.zeros((count, 3), np.float32)  # the feeds are rows of one buffer
    with unirun.load(model, backend="reference", cache=False) as m:
        out = m({f"x{i}": block[i] for i in range(count)})
    block += 1
    assert all((v == 0).all() for v in out.values())
    assert not any(np.shares_memory(v, block) for v in out.values())

"""The fp32 → fp16/bf16 ONNX conversion that strongly typed TensorRT (11) builds from.

Checked with real engines: ONNX Runtime runs the fp16 models, ONNX's reference evaluator the
bf16 ones (ONNX Runtime's CPU provider lacks most bf16 kernels). The converted models must pass
the ONNX checker with full type checking, keep the graph's input/output types, and stay within
the precision's tolerance of the fp32 model.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from unirun.testing import models
from unirun_tensorrt._lowp import convert

Array = np.ndarray[Any, Any]
LOW = {"fp16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}
TOLERANCE = {"fp16": 5e-3, "bf16": 3e-2}  # max |error| / max |fp32 output|


def run(model: Any, feeds: dict[str, Array], precision: str = "fp32") -> list[Array]:
    if precision == "bf16":
        return list(ReferenceEvaluator(model).run(None, feeds))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return list(session.run(None, feeds))


def feeds_for(model: Any, sizes: dict[str, int]) -> dict[str, Array]:
    rng = np.random.default_rng(0)
    feeds = {}
    for value in model.graph.input:
        dims = [d.dim_value or sizes[d.dim_param] for d in value.type.tensor_type.shape.dim]
        feeds[value.name] = rng.standard_normal(dims).astype(np.float32)
    return feeds


def io_types(model: Any) -> list[int]:
    return [v.type.tensor_type.elem_type for v in (*model.graph.input, *model.graph.output)]


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize(
    ("name", "build", "sizes"),
    [
        ("mlp", models.mlp, {"batch": 3, "N": 3}),
        ("conv_net", lambda: models.conv_net(size=16), {"N": 2}),
        ("transformer", models.transformer_block, {"batch": 2, "seq": 5}),
    ],
)
def test_models_compute_in_the_low_type_with_their_io_types(
    precision: str, name: str, build: Any, sizes: dict[str, int]
) -> None:
    model = build()
    low = convert(model, precision)  # type: ignore[arg-type]
    onnx.checker.check_model(low, full_check=True)
    assert io_types(low) == io_types(model)
    weights = Counter(t.data_type for t in low.graph.initializer if t.dims and np.prod(t.dims) > 1)
    assert weights[LOW[precision]] > 0
    feeds = feeds_for(model, sizes)
    want = run(model, feeds)[0]
    got = run(low, feeds, precision)[0]
    assert got.dtype == want.dtype == np.float32
    error = float(np.abs(got - want).max() / np.abs(want).max())
    assert error < TOLERANCE[precision], error
    assert error > 0  # it really computed in the low type


def _resize_model() -> Any:
    nodes = [
        helper.make_node("Resize", ["x", "", "scales"], ["r"], mode="nearest"),
        helper.make_node("Mul", ["r", "k"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "resize",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 6, 6])],
        [
            numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
            numpy_helper.from_array(np.full((1, 2, 1, 1), 0.5, np.float32), "k"),
        ],
    )
    return models._model(graph)


def test_fixed_float32_inputs_stay_float32() -> None:
    """Resize's ``scales`` is ``tensor(float)`` in every opset: it keeps its weight."""
    low = convert(_resize_model(), "fp16")
    onnx.checker.check_model(low, full_check=True)
    kinds = {t.name: t.data_type for t in low.graph.initializer}
    assert kinds["scales"] == TensorProto.FLOAT
    assert kinds["k__fp16"] == TensorProto.FLOAT16
    resize = next(n for n in low.graph.node if n.op_type == "Resize")
    assert resize.input[2] == "scales"
    x = np.arange(18, dtype=np.float32).reshape(1, 2, 3, 3)
    np.testing.assert_allclose(run(low, {"x": x})[0], run(_resize_model(), {"x": x})[0])


def _size_arithmetic_model() -> Any:
    """y = x reshaped to [n * 4097 / 4097]: the size goes through float math that fp16 would
    round (4097 is not an fp16 integer)."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Cast", ["shape"], ["shape_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["shape_f", "big"], ["scaled"]),
        helper.make_node("Div", ["scaled", "big"], ["back"]),
        helper.make_node("Cast", ["back"], ["size"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["x", "size"], ["r"]),
        helper.make_node("Mul", ["r", "two"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "sizes",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])],
        [
            numpy_helper.from_array(np.array([4097], np.float32), "big"),
            numpy_helper.from_array(np.array([2], np.float32), "two"),
        ],
    )
    return models._model(graph)


def test_size_arithmetic_stays_float32() -> None:
    model = _size_arithmetic_model()
    low = convert(model, "fp16")
    onnx.checker.check_model(low, full_check=True)
    kinds = {t.name: t.data_type for t in low.graph.initializer}
    assert kinds["big"] == TensorProto.FLOAT
    assert kinds["two__fp16"] == TensorProto.FLOAT16
    x = np.arange(2051, dtype=np.float32)
    np.testing.assert_array_equal(
        run(low, {"x": x})[0], 2 * x.astype(np.float16).astype(np.float32)
    )


def _if_model() -> Any:
    """An If whose branches read ``h``, a value computed outside them."""

    def branch(name: str, op: str) -> Any:
        return helper.make_graph(
            [helper.make_node(op, ["h", "h"], [f"{name}_out"])],
            name,
            [],
            [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [2, 3])],
        )

    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node(
            "If",
            ["cond"],
            ["branched"],
            then_branch=branch("then", "Add"),
            else_branch=branch("else", "Mul"),
        ),
        helper.make_node("Relu", ["branched"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "if",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4]),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [
            numpy_helper.from_array(
                np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32), "w"
            )
        ],
    )
    return models._model(graph)


@pytest.mark.parametrize("cond", [True, False])
def test_subgraphs_read_outer_values_through_float32_twins(cond: bool) -> None:
    model = _if_model()
    low = convert(model, "fp16")
    onnx.checker.check_model(low, full_check=True)
    matmul = next(n for n in low.graph.node if n.op_type == "MatMul")
    assert matmul.input[1] == "w__fp16"
    branch = next(n for n in low.graph.node if n.op_type == "If").attribute[0].g
    assert list(branch.node[0].input) == ["h__fp32", "h__fp32"]
    feeds = {"x": feeds_for(model, {})["x"], "cond": np.array(cond)}
    want, got = run(model, feeds)[0], run(low, feeds)[0]
    np.testing.assert_allclose(got, want, rtol=5e-3, atol=5e-3)


def test_fp16_weights_are_clipped_to_the_finite_range() -> None:
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "b"], ["y"])],
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        [numpy_helper.from_array(np.array([1e6, -1e6, np.inf], np.float32), "b")],
    )
    low = convert(models._model(graph), "fp16")
    weight = numpy_helper.to_array(next(t for t in low.graph.initializer if t.name == "b__fp16"))
    assert weight.tolist() == [65504.0, -65504.0, np.inf]


def test_external_weights_are_read_and_inlined(tmp_path: Path) -> None:
    model = models.mlp()
    path = tmp_path / "mlp.onnx"
    onnx.save(
        models.mlp(),
        str(path),
        save_as_external_data=True,
        location="mlp.weights",
        size_threshold=0,
    )
    stored = onnx.load(str(path), load_external_data=False)
    low = convert(stored, "fp16", tmp_path)
    onnx.checker.check_model(low, full_check=True)
    assert not any(t.data_location == TensorProto.EXTERNAL for t in low.graph.initializer)
    feeds = feeds_for(model, {"batch": 2, "N": 2})
    np.testing.assert_allclose(run(low, feeds)[0], run(model, feeds)[0], rtol=1e-2, atol=1e-2)

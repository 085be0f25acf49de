"""The translator's contract: errors, shapes, dtypes, names, precision, registry, imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import unirun_coreml as uc

F32 = np.float32
I64 = np.int64


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )


def test_import_is_light() -> None:
    done = _run_python("import sys, unirun_coreml; print('coremltools' in sys.modules)")
    assert done.stdout.strip() == "False"


def test_coremltools_import_is_quiet() -> None:
    done = _run_python("import unirun_coreml as u; u.supported_ops(); u.Evaluator")
    assert "Failed to load" not in done.stderr
    assert done.stderr.strip() == ""


def _mixed_model() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="ok"),
        helper.make_node("LSTM", ["r", "w", "rw"], ["l"], name="rnn", hidden_size=2),
        helper.make_node("NonMaxSuppression", ["l", "r"], ["n"], name="nms"),
        helper.make_node("FancyOp", ["n"], ["y"], name="custom", domain="com.example"),
        helper.make_node("Trilu", ["c"], ["folded"], name="const_trilu"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2, 2])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("folded", TensorProto.FLOAT, None),
        ],
        [
            onnx.numpy_helper.from_array(np.ones((1, 8, 2), F32), "w"),
            onnx.numpy_helper.from_array(np.ones((1, 8, 2), F32), "rw"),
            onnx.numpy_helper.from_array(np.ones((3, 3), F32), "c"),
        ],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    )


def test_unsupported_ops_are_reported_at_once(monkeypatch: Any) -> None:
    model = _mixed_model()
    expected = [
        ("rnn", "LSTM", ""),
        ("nms", "NonMaxSuppression", ""),
        ("custom", "FancyOp", "com.example"),
    ]
    assert [tuple(op) for op in uc.unsupported_ops(model)] == expected
    # Before any work: no shapes were given for the dynamic input, and no conversion starts.
    import coremltools as ct

    monkeypatch.setattr(ct, "convert", lambda *a, **k: pytest.fail("converted anyway"))
    with pytest.raises(uc.UnsupportedOpsError) as info:
        uc.translate(model)
    assert info.value.ops == [(name, op) for name, op, _ in expected]
    message = str(info.value)
    assert all(name in message for name, _, _ in expected)
    assert "register_lowering" in message
    assert "const_trilu" not in message  # computable from constants: folded, not refused


def test_attribute_level_refusal_names_the_reason() -> None:
    node = helper.make_node(
        "AveragePool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], dilations=[2, 2]
    )
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    with pytest.raises(uc.UnsupportedOpsError) as info:
        uc.translate(model)
    assert info.value.ops == [("pool", "AveragePool")]
    assert "dilations" in info.value.reasons["pool"]


def test_register_lowering_for_a_custom_domain(harness: Any, rng: np.random.Generator) -> None:
    from coremltools.converters.mil.mil import Builder as mb

    def swish(ctx: uc.Context, node: uc.Node) -> Any:
        x = ctx.required(node, 0)
        return mb.mul(x=x, y=mb.sigmoid(x=x))

    node = helper.make_node("Swish", ["x"], ["y"], domain="com.example")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    )
    assert [op.op_type for op in uc.unsupported_ops(model)] == ["Swish"]
    uc.register_lowering("Swish", swish, domain="com.example")
    try:
        assert "com.example::Swish" in uc.supported_ops()
        assert uc.unsupported_ops(model) == []
        x = rng.standard_normal((2, 3)).astype(F32)
        y = uc.evaluate(harness.package(model), {"x": x})["y"]
        np.testing.assert_allclose(y, x / (1 + np.exp(-x)), rtol=1e-6)
    finally:
        uc.unregister_lowering("Swish", domain="com.example")
    assert "com.example::Swish" not in uc.supported_ops()


def _dynamic_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "h", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, "h", 8])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(
    ("shapes", "match"),
    [
        (None, r"dynamic dimension\(s\) 0 \(batch\), 2 \(h\).*shapes="),
        ({"y": (1, 3, 4, 8)}, "not inputs of the model"),
        ({"x": (1, 3, 4)}, "rank 3"),
        ({"x": (1, 4, 4, 8)}, "fixes it to 3"),
        ({"x": ((1, 3, 4, 8), (2, 3, 4, 8), (1, 3, 4, 8))}, "min <= opt <= max"),
        ({"x": ((1, 3, 4, 8), (2, 3, 4, 8))}, r"\(min, opt, max\)"),
        ({"x": "big"}, "must be a shape"),
    ],
)
def test_bad_shapes_say_what_to_do(shapes: Any, match: str) -> None:
    with pytest.raises(uc.InputShapeError, match=match):
        uc.translate(_dynamic_model(), shapes=shapes)


def test_range_shapes(harness: Any) -> None:
    shapes = {"x": ((1, 3, 4, 8), (2, 3, 16, 8), (8, 3, 32, 8))}
    result = uc.translate(_dynamic_model(), shapes=shapes)
    spec_input = result.model.get_spec().description.input[0].type.multiArrayType
    ranges = [(r.lowerBound, r.upperBound) for r in spec_input.shapeRange.sizeRanges]
    assert ranges == [(1, 8), (3, 3), (4, 32), (8, 8)]
    assert list(spec_input.shape) == [2, 3, 16, 8]  # the default is "opt"
    assert result.inputs[0].shape == ("batch", 3, "h", 8)
    package = result.save(harness.tmp_path / "range.mlpackage")
    x = -np.ones((5, 3, 7, 8), F32)
    assert uc.evaluate(package, {"x": x})["y"].shape == (5, 3, 7, 8)


def test_enumerated_shapes() -> None:
    shapes = {"x": [(1, 3, 4, 8), (2, 3, 16, 8)]}
    result = uc.translate(_dynamic_model(), shapes=shapes)
    spec_input = result.model.get_spec().description.input[0].type.multiArrayType
    assert [list(s.shape) for s in spec_input.enumeratedShapes.shapes] == [
        [1, 3, 4, 8],
        [2, 3, 16, 8],
    ]


def test_fixed_shape_for_a_dynamic_model() -> None:
    result = uc.translate(_dynamic_model(), shapes={"x": (2, 3, 4, 8)})
    spec_input = result.model.get_spec().description.input[0].type.multiArrayType
    assert list(spec_input.shape) == [2, 3, 4, 8]
    assert spec_input.WhichOneof("ShapeFlexibility") is None


def test_names_and_types_map(harness: Any, rng: np.random.Generator) -> None:
    nodes = [
        helper.make_node("ArgMax", ["input:0"], ["idx"], axis=1),
        helper.make_node("Greater", ["input:0", "zero"], ["output/1"]),
        helper.make_node("Identity", ["input:0"], ["same"]),
        helper.make_node("Cast", ["ids"], ["ids_f"], to=TensorProto.DOUBLE),
        helper.make_node("Mul", ["ids_f", "scalar"], ["scaled"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("input:0", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("ids", TensorProto.INT64, [2]),
            helper.make_tensor_value_info("scalar", TensorProto.DOUBLE, []),
        ],
        [
            helper.make_tensor_value_info("idx", TensorProto.INT64, [2, 1]),
            helper.make_tensor_value_info("output/1", TensorProto.BOOL, [2, 3]),
            helper.make_tensor_value_info("same", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("input:0", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("scaled", TensorProto.DOUBLE, [2]),
        ],
        [onnx.numpy_helper.from_array(np.array(0, F32), "zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    result = uc.translate(model)
    spec = result.model.get_spec().description
    by_onnx = {m.onnx_name: m for m in result.inputs}
    assert by_onnx["input:0"].coreml_name == spec.input[0].name != "input:0"
    assert (by_onnx["ids"].onnx_dtype, by_onnx["ids"].coreml_dtype) == ("int64", "int32")
    assert (by_onnx["scalar"].onnx_dtype, by_onnx["scalar"].coreml_dtype) == ("float64", "float32")
    assert [o.onnx_name for o in result.outputs] == ["idx", "output/1", "same", "input:0", "scaled"]
    assert [o.coreml_name for o in result.outputs] == [o.name for o in spec.output]
    assert {o.onnx_name: o.coreml_dtype for o in result.outputs}["output/1"] == "int32"
    package = result.save(harness.tmp_path / "names.mlpackage")
    evaluator = uc.Evaluator(package)  # the map travels inside the package
    assert evaluator.inputs == result.inputs and evaluator.outputs == result.outputs
    feeds = {
        "input:0": rng.standard_normal((2, 3)).astype(F32),
        "ids": np.array([3, -4], I64),
        "scalar": np.array(0.5),
    }
    got, want = evaluator(feeds), harness.ort(model, feeds)
    assert set(got) == set(want)
    for name in want:
        assert got[name].dtype == want[name].dtype, name
        np.testing.assert_array_equal(got[name], want[name].astype(got[name].dtype))


def test_constant_inputs_are_baked(harness: Any, rng: np.random.Generator) -> None:
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "bias"], ["y"])],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("bias", TensorProto.FLOAT, [2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    bias = np.array([1.0, -2.0], F32)
    result = uc.translate(model, constant_inputs={"bias": bias})
    assert [m.onnx_name for m in result.inputs] == ["x"]
    x = rng.standard_normal(2).astype(F32)
    y = uc.evaluate(result.save(harness.tmp_path / "c.mlpackage"), {"x": x})["y"]
    np.testing.assert_allclose(y, x + bias)
    with pytest.raises(uc.InputShapeError, match="not inputs"):
        uc.translate(model, constant_inputs={"nope": bias})


def _conv_model() -> onnx.ModelProto:
    w = np.random.default_rng(0).standard_normal((2, 3, 3, 3)).astype(F32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Relu", ["c"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 6, 6])],
        [onnx.numpy_helper.from_array(w, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _op_types(result: Any) -> list[str]:
    spec = result.model.get_spec()
    block = next(iter(spec.mlProgram.functions["main"].block_specializations.values()))
    return [op.type for op in block.operations]


def test_precision_and_fresh_programs() -> None:
    model = _conv_model()
    fp16 = uc.translate(model, precision="fp16")
    fp32 = uc.translate(model, precision="fp32")  # a fresh program: no casts left over
    assert "cast" in _op_types(fp16)
    assert "cast" not in _op_types(fp32)
    assert fp16.precision == "fp16" and fp32.precision == "fp32"
    with pytest.raises(ValueError, match="precision"):
        uc.translate(model, precision="int8")


@pytest.mark.parametrize("target", ["iOS15", "iOS16", "macOS14", "iOS18"])
def test_deployment_targets(harness: Any, target: str) -> None:
    result = uc.translate(_conv_model(), deployment_target=target)
    x = np.ones((1, 3, 8, 8), F32)
    assert uc.evaluate(result.save(harness.tmp_path / f"{target}.mlpackage"), {"x": x})[
        "y"
    ].shape == (1, 2, 6, 6)


def test_bad_target_and_save_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="deployment target"):
        uc.translate(_conv_model(), deployment_target="iOS3")
    with pytest.raises(ValueError, match="iOS15"):
        uc.translate(_conv_model(), deployment_target="iOS14")
    result = uc.translate(_conv_model())
    with pytest.raises(ValueError, match=r"\.mlpackage"):
        result.save(tmp_path / "model.mlmodel")
    assert uc.save(result, tmp_path / "m.mlpackage").is_dir()


def test_scalar_input(harness: Any) -> None:
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "s"], ["y"])],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [3]),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feeds = {"x": np.arange(3, dtype=F32), "s": np.array(2.5, F32)}
    harness.check(model, feeds)


def test_lowering_errors_name_the_node() -> None:
    graph = helper.make_graph(
        [helper.make_node("TopK", ["x", "k"], ["v", "i"], name="top")],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("k", TensorProto.INT64, [1]),
        ],
        [helper.make_tensor_value_info("v", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(uc.TranslationError, match=r"top.*K must be a constant") as info:
        uc.translate(model)
    assert info.value.node_name == "top" and info.value.op_type == "TopK"


def test_refusals_for_what_core_ml_cannot_compute() -> None:
    def model_of(
        node: Any, inits: dict[str, np.ndarray] | None = None, shape: list[int] | None = None
    ) -> onnx.ModelProto:
        graph = helper.make_graph(
            [node],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape or [2])],
            [helper.make_tensor_value_info("y", TensorProto.UNDEFINED, None)],
            [onnx.numpy_helper.from_array(v, k) for k, v in (inits or {}).items()],
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])

    to_fp8 = model_of(helper.make_node("Cast", ["x"], ["y"], name="c", to=TensorProto.FLOAT8E5M2))
    with pytest.raises(uc.UnsupportedOpsError, match="float8"):
        uc.translate(to_fp8)
    training = model_of(
        helper.make_node("Dropout", ["x", "r", "t"], ["y"], name="d"),
        {"r": np.array(0.5, F32), "t": np.array(True)},
    )
    with pytest.raises(uc.TranslationError, match="training-mode"):
        uc.translate(training)
    with pytest.raises(uc.InputShapeError, match="empty"):
        uc.translate(model_of(helper.make_node("Relu", ["x"], ["y"]), shape=[2, 0]))

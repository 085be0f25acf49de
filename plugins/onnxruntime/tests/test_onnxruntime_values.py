"""Sequences, maps and optionals through ONNX Runtime: its type strings, what its Python API
can carry (refused at compile time otherwise), and the narrow-type bridge beside them."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import unirun
from unirun import UnsupportedModelError
from unirun.dtypes import DType
from unirun.testing import models
from unirun.values import MapType, OptionalType, SequenceType, TensorType
from unirun_onnxruntime._dtypes import value_type


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("seq(map(int64,tensor(float)))",
         SequenceType(MapType(DType.INT64, TensorType(DType.FLOAT32)))),
        ("map(string,tensor(double))", MapType(DType.STRING, TensorType(DType.FLOAT64))),
        ("optional(seq(tensor(bfloat16)))", OptionalType(SequenceType(TensorType(DType.BFLOAT16)))),
        ("optional(tensor(string))", OptionalType(TensorType(DType.STRING))),
        ("tensor(int8)", TensorType(DType.INT8)),
        ("seq(sparse_tensor(float))", None),
        ("map(float,tensor(float))", None),
        ("opaque(com.microsoft,thing)", None),
    ],
)  # fmt: skip
def test_onnx_runtime_type_strings(text: str, kind: object) -> None:
    assert value_type(text) == kind


def test_specs_keep_the_graphs_element_shapes() -> None:
    """ONNX Runtime reports seq(tensor(float)) without shapes; unirun keeps the graph's."""
    with unirun.load(models.sequence_model(), backend="onnxruntime", cache=False) as m:
        assert [str(s) for s in m.inputs] == ["items: seq(float32[?])", "x: float32[?]"]
    with unirun.load(models.optional_model(), backend="onnxruntime", cache=False) as m:
        assert str(m.inputs[0]) == "maybe: optional(float32[3])"


def _map_input(value_type: int) -> object:
    graph = helper.make_graph(
        [helper.make_node("DictVectorizer", ["m"], ["v"], domain="ai.onnx.ml",
                          string_vocabulary=["a", "b"])],
        "m",
        [helper.make_value_info("m", helper.make_map_type_proto(
            TensorProto.STRING, helper.make_tensor_type_proto(value_type, None)))],
        [helper.make_tensor_value_info("v", value_type, None)],
    )  # fmt: skip
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    )


def test_map_inputs_of_other_than_float32_values_are_refused_at_compile() -> None:
    """onnxruntime's Python API builds every dict it is fed as map(…, float): a map of int64 or
    double values could only fail at run time, so unirun says so before compiling."""
    with pytest.raises(UnsupportedModelError, match=r"'m' is map\(string, float64\).*float32"):
        unirun.compile(_map_input(TensorProto.DOUBLE), backend="onnxruntime", cache=False)
    with unirun.load(_map_input(TensorProto.FLOAT), backend="onnxruntime", cache=False) as m:
        assert m({"m": {"b": 2.0}})["v"].reshape(-1).tolist() == [0.0, 2.0]


def test_sequences_of_types_numpy_lacks_are_refused_at_compile() -> None:
    graph = helper.make_graph(
        [helper.make_node("SequenceLength", ["s"], ["n"])],
        "s",
        [helper.make_tensor_sequence_value_info("s", TensorProto.BFLOAT16, None)],
        [helper.make_tensor_value_info("n", TensorProto.INT64, [])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsupportedModelError, match=r"cannot carry s: seq\(bfloat16\)"):
        unirun.compile(model, backend="onnxruntime", cache=False)


def test_narrow_tensors_still_cross_beside_a_value_model() -> None:
    """The bridge for bfloat16 (raw bits) still serves tensor-only models."""
    import ml_dtypes

    with unirun.load(models.passthrough("bfloat16"), backend="onnxruntime", cache=False) as m:
        x = np.arange(6, dtype=np.float32).reshape(2, 3).astype(ml_dtypes.bfloat16)
        np.testing.assert_array_equal(m({"x": x})["y"], x)


def test_fp16_that_would_change_a_sequences_type_is_refused() -> None:
    """The fp16 converter keeps float32 tensor inputs but turns seq(float32) into
    seq(float16): refused rather than changing what the caller feeds; a classifier's ZipMap
    output (always float32 maps) builds."""
    with pytest.raises(UnsupportedModelError, match=r"items: seq\(float32\[\?\]\) would become"):
        unirun.compile(
            models.sequence_model(), backend="onnxruntime", precision="fp16", cache=False
        )
    with unirun.load(
        models.zipmap_classifier(), backend="onnxruntime", precision="fp16", cache=False
    ) as m:
        rows = m(np.ones((2, 4), np.float32))["probabilities"]
        assert len(rows) == 2 and abs(sum(rows[0].values()) - 1) < 1e-2


def test_int8_is_refused_for_sequence_inputs() -> None:
    with pytest.raises(unirun.OptionsError, match=r"int8 calibration feeds tensor inputs only"):
        unirun.compile(
            models.sequence_model(),
            backend="onnxruntime",
            precision="int8",
            calibration=[{"items": [], "x": np.ones(1, np.float32)}] * 16,
            cache=False,
        )

"""Values that are not tensors: the type algebra (unirun.values), what users see of it (specs,
manifests), the capability check, and feeds/outputs through a Model on the real engines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper

import unirun
from unirun import InputError, InvalidModelError, OptionsError, UnsupportedModelError
from unirun.artifact import SpecModel
from unirun.backend import Capabilities
from unirun.dtypes import DType
from unirun.source import graph_inputs, graph_outputs
from unirun.tensor import TensorSpec
from unirun.testing import models
from unirun.values import (
    MapType,
    OptionalType,
    SequenceType,
    TensorType,
    ValueKind,
    from_json,
    from_onnx,
)

f32 = np.float32
ZIPMAP = SequenceType(MapType(DType.INT64, TensorType(DType.FLOAT32)))


# -- the type algebra ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "text", "kinds", "dtypes"),
    [
        (ZIPMAP, "seq(map(int64, float32))", {"sequence", "map", "tensor"}, {"int64", "float32"}),
        (
            OptionalType(SequenceType(TensorType(DType.INT32, ("N", 3)))),
            "optional(seq(int32[N, 3]))",
            {"optional", "sequence", "tensor"},
            {"int32"},
        ),
        (
            MapType(DType.STRING, TensorType(DType.FLOAT64, ())),
            "map(string, float64[])",
            {"map", "tensor"},
            {"string", "float64"},
        ),
    ],
)
def test_value_types_print_list_their_kinds_and_round_trip_json(
    kind: Any, text: str, kinds: set[str], dtypes: set[str]
) -> None:
    assert str(kind) == text
    assert {str(k) for k in kind.kinds} == kinds
    assert {str(d) for d in kind.dtypes} == dtypes
    data = json.loads(json.dumps(kind.to_json()))
    assert from_json(data) == kind
    assert hash(from_json(data)) == hash(kind)  # frozen: usable as keys


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"kind": "set", "element": {}}, "unknown value kind 'set'"),
        ({"kind": "sequence"}, "has the fields element, kind"),
        ({"kind": "tensor", "dtype": "float99", "shape": None}, "float99"),
        ({"kind": "tensor", "dtype": "float32", "shape": [-1]}, "a shape is a list"),
        ({"kind": "map", "key": "float32", "value": {}}, "map keys cannot be float32"),
        ([1, 2], "a value type is a JSON object"),
    ],
)
def test_value_types_from_json_refuse_what_is_not_one(data: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        from_json(data)


def test_nesting_is_bounded() -> None:
    data: dict[str, Any] = {"kind": "tensor", "dtype": "float32", "shape": None}
    for _ in range(40):
        data = {"kind": "sequence", "element": data}
    with pytest.raises(ValueError, match="deeper than 16"):
        from_json(data)


def test_onnx_types_parse_with_their_element_shapes() -> None:
    proto = helper.make_sequence_type_proto(
        helper.make_map_type_proto(
            TensorProto.STRING, helper.make_tensor_type_proto(TensorProto.FLOAT, ["N", 2])
        )
    )
    assert str(from_onnx(proto, "x")) == "seq(map(string, float32[N, 2]))"
    sparse = helper.make_sparse_tensor_type_proto(TensorProto.FLOAT, [3])
    with pytest.raises(UnsupportedModelError, match="'x' is a sparse tensor"):
        from_onnx(sparse, "x")
    bad_key = helper.make_map_type_proto(
        TensorProto.FLOAT, helper.make_tensor_type_proto(TensorProto.FLOAT, None)
    )
    with pytest.raises(InvalidModelError, match="map with keys of type float32"):
        from_onnx(bad_key, "x")


def test_specs_of_a_model_say_what_each_value_is() -> None:
    model = models.zipmap_classifier()
    (x,) = graph_inputs(model)
    label, probabilities = graph_outputs(model)
    assert x.kind is None and str(x) == "X: float32[N, 4]"
    assert str(label) == "label: int64[N]"
    assert probabilities.kind == ZIPMAP and not probabilities.is_tensor
    assert str(probabilities) == "probabilities: seq(map(int64, float32))"
    # dtype: the element type of the tensors inside; shape: none (it is no tensor)
    assert probabilities.dtype is DType.FLOAT32 and probabilities.shape is None
    assert TensorSpec.from_json(json.loads(json.dumps(probabilities.to_json()))) == probabilities
    assert "kind" not in x.to_json()  # a tensor's JSON is what it always was


def test_the_manifest_keeps_kinds_and_refuses_a_damaged_one() -> None:
    spec = graph_outputs(models.zipmap_classifier())[1]
    model = SpecModel(**spec.to_json())
    assert model.model_dump(mode="json")["kind"] == ZIPMAP.to_json()
    tensor = SpecModel(name="x", dtype="float32", shape=[1])
    assert "kind" not in tensor.model_dump(mode="json")
    with pytest.raises(ValueError, match="unknown value kind"):
        SpecModel(name="x", dtype="float32", shape=None, kind={"kind": "set"})


def test_capabilities_take_value_kinds_by_name_and_need_tensors() -> None:
    caps = Capabilities(device_kinds=("cpu",), value_kinds=("tensor", "sequence"))  # type: ignore[arg-type]
    assert caps.value_kinds == (ValueKind.TENSOR, ValueKind.SEQUENCE)
    assert Capabilities(device_kinds=("cpu",)).value_kinds == (ValueKind.TENSOR,)
    with pytest.raises(ValueError, match="must include 'tensor'"):
        Capabilities(device_kinds=("cpu",), value_kinds=("sequence",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="holds only"):
        Capabilities(device_kinds=("cpu",), value_kinds=("tensor", "set"))  # type: ignore[arg-type]


def test_shapes_cannot_be_declared_for_a_sequence() -> None:
    with pytest.raises(OptionsError, match=r"'items', which is seq\(float32\[\?\]\)"):
        unirun.load(models.sequence_model(), backend="reference", shapes={"items": (1,)})


# -- feeds and outputs --------------------------------------------------------------------------


@pytest.fixture(params=["onnxruntime", "reference"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_a_sequence_goes_in_and_comes_out_as_a_list(backend: str) -> None:
    with unirun.load(models.sequence_model(), backend=backend, cache=False) as m:
        items = [np.arange(3, dtype=f32), np.ones(1, f32)]
        out = m({"items": items, "x": np.full(2, 7, f32)})
        assert isinstance(out["more"], list) and len(out["more"]) == 3
        np.testing.assert_array_equal(out["more"][2], [7, 7])
        assert int(out["count"]) == 3
        # positional, a tuple for the sequence, and an empty one
        out = m([(np.ones(2, f32),), np.zeros(1, f32)])
        assert [a.tolist() for a in out["more"]] == [[1, 1], [0]]
        assert int(m({"items": [], "x": np.zeros(1, f32)})["count"]) == 1


def test_outputs_never_share_memory_with_the_feeds(backend: str) -> None:
    """The reference evaluator hands a sequence input's own arrays back (Identity): the caller
    still owns what it gets."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["items"], ["same"])],
        "identity",
        [helper.make_tensor_sequence_value_info("items", TensorProto.FLOAT, None)],
        [helper.make_tensor_sequence_value_info("same", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    items = [np.arange(3, dtype=f32)]
    with unirun.load(model, backend=backend, cache=False) as m:
        out = m({"items": items})["same"]
    assert out is not items and not np.shares_memory(out[0], items[0])
    np.testing.assert_array_equal(out[0], items[0])


def test_a_one_input_model_takes_its_sequence_as_the_whole_argument() -> None:
    graph = helper.make_graph(
        [helper.make_node("SequenceLength", ["items"], ["n"])],
        "length",
        [helper.make_tensor_sequence_value_info("items", TensorProto.INT64, None)],
        [helper.make_tensor_value_info("n", TensorProto.INT64, [])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with unirun.load(model, backend="onnxruntime", cache=False) as m:
        assert int(m([np.arange(2), np.arange(5)])["n"]) == 2
        assert int(m({"items": [np.arange(2)]})["n"]) == 1


def test_a_map_goes_in_as_a_dict(backend: str) -> None:
    with unirun.load(models.map_model(), backend=backend, cache=False) as m:
        out = m({"features": {"a": 1.5, np.str_("c"): np.float32(-2)}})
    np.testing.assert_array_equal(out["dense"], np.array([1.5, 0, -2], f32))
    assert out["dense"].dtype == f32


def test_an_optional_is_none_when_absent_and_may_be_left_out(backend: str) -> None:
    with unirun.load(models.optional_model(), backend=backend, cache=False) as m:
        present = m({"maybe": np.array([1, 2, 3], f32)})
        assert bool(present["has"]) and present["echo"].tolist() == [1, 2, 3]
        for absent in (m({"maybe": None}), m({}), m(None)):
            assert not bool(absent["has"]) and absent["echo"] is None


def test_a_classifier_returns_one_map_per_row(backend: str) -> None:
    x = np.random.default_rng(1).standard_normal((4, 4)).astype(f32)
    with unirun.load(models.zipmap_classifier(labels="string"), backend=backend, cache=False) as m:
        assert str(m.outputs[1]) == "probabilities: seq(map(string, float32))"
        out = m(x)
    rows = out["probabilities"]
    assert [sorted(r) for r in rows] == [["class_0", "class_1", "class_2"]] * 4
    assert all(abs(sum(r.values()) - 1) < 1e-5 for r in rows)
    best = [max(r, key=r.__getitem__) for r in rows]
    assert best == out["label"].tolist()


@pytest.mark.parametrize(
    ("feeds", "message"),
    [
        ({"items": np.ones((2, 2), f32), "x": np.ones(1, f32)},
         r"input 'items' expects seq\(float32\[\?\]\): a list, got ndarray; for the rows of an "
         r"array, pass list\(array\)"),
        ({"items": [np.ones(1, f32), np.ones(1)], "x": np.ones(1, f32)},
         r"input 'items' item 1 expects float32\[\?\], got dtype float64; convert it with "
         r"\.astype\(numpy\.float32\)"),
        ({"items": [np.ones((1, 2), f32)], "x": np.ones(1, f32)},
         r"input 'items' item 0 expects float32\[\?\], got shape \(1, 2\)"),
        ({"items": [[1.0, "a"]], "x": np.ones(1, f32)},
         r"input 'items' item 0: cannot convert"),
        ({"items": []}, r"missing input 'x' \(float32\[\?\]\)"),
        ({"x": np.ones(1, f32)}, r"missing input 'items' \(seq\(float32\[\?\]\)\)"),
        ({"items": [], "x": np.ones(1, f32), "y": 1}, r"unknown input name\(s\) 'y'"),
        ([[]], r"got 1 positional inputs, but the model takes 2"),
    ],
)  # fmt: skip
def test_sequence_feeds_are_checked_item_by_item(feeds: Any, message: str) -> None:
    with (
        unirun.load(models.sequence_model(), backend="reference", cache=False) as m,
        pytest.raises(InputError, match=message) as caught,
    ):
        m(feeds)
    assert caught.value.name in ("items", "x", "y", None)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({1: 2.0}, r"input 'features' expects map\(string, float32\): key 1 is int, not a string"),
        ({"a": "high"}, r"input 'features' key 'a': cannot convert 'high' to float32"),
        # numpy values keep their dtype, as tensor feeds do; Python numbers are converted
        (
            {"a": np.float64(1)},
            r"input 'features' key 'a' expects float32, got dtype float64; convert it with "
            r"\.astype\(numpy\.float32\)",
        ),
        ([("a", 1.0)], r"input 'features' expects map\(string, float32\): a dict, got list"),
    ],
)
def test_map_feeds_are_checked_key_by_key(value: Any, message: str) -> None:
    with (
        unirun.load(models.map_model(), backend="reference", cache=False) as m,
        pytest.raises(InputError, match=message),
    ):
        m({"features": value})


def test_integer_map_keys_are_checked_for_range() -> None:
    graph = helper.make_graph(
        [
            helper.make_node(
                "DictVectorizer", ["m"], ["v"], domain="ai.onnx.ml", int64_vocabulary=[1, 2]
            )
        ],
        "ints",
        [
            helper.make_value_info(
                "m",
                helper.make_map_type_proto(
                    TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, None)
                ),
            )
        ],
        [helper.make_tensor_value_info("v", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    )
    with unirun.load(model, backend="onnxruntime", cache=False) as m:
        assert m({"m": {np.int64(2): 3.0}})["v"].reshape(-1).tolist() == [0, 3]
        with pytest.raises(InputError, match="key 18446744073709551615 is out of the range"):
            m({"m": {2**64 - 1: 1.0}})
        with pytest.raises(InputError, match="key True is bool, not an integer"):
            m({"m": {True: 1.0}})


def test_map_and_infer_async_carry_values() -> None:
    feeds = [{"items": [np.full(1, i, f32)], "x": np.zeros(1, f32)} for i in range(6)]
    with unirun.load(models.sequence_model(), backend="onnxruntime", cache=False) as m:
        results = list(m.map(feeds))
        assert [r["more"][0].tolist() for r in results] == [[i] for i in range(6)]
        assert int(m.infer_async(feeds[0]).result()["count"]) == 2
        with pytest.raises(InputError, match=r"map\(\) item 1: input 'items' item 0"):
            list(m.map([feeds[0], {"items": [np.ones(1)], "x": np.zeros(1, f32)}]))


def test_a_saved_artifact_keeps_the_value_types(tmp_path: Path) -> None:
    model = models.zipmap_classifier()
    artifact = unirun.compile(model, backend="onnxruntime", cache=False)
    path = artifact.save(tmp_path / "clf.unirun")
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["outputs"][1]["kind"] == ZIPMAP.to_json()
    assert "kind" not in manifest["inputs"][0]
    x = np.ones((2, 4), f32)
    with unirun.load(path) as m, unirun.load(model, backend="onnxruntime", cache=False) as fresh:
        assert m.outputs == fresh.outputs
        assert m(x)["probabilities"] == fresh(x)["probabilities"]


def test_the_cache_serves_value_models(tmp_path: Path) -> None:
    model = models.optional_model()
    cache = tmp_path / "cache"
    with unirun.load(model, backend="onnxruntime", cache=cache) as first:
        assert first.cache_status == "miss"
    with unirun.load(model, backend="onnxruntime", cache=cache) as second:
        assert second.cache_status == "hit"
        assert str(second.inputs[0]) == "maybe: optional(float32[3])"
        assert second({})["echo"] is None


def test_predict_carries_values() -> None:
    x = np.ones((3, 4), f32)
    out = unirun.predict(models.zipmap_classifier(), {"X": x}, backend="onnxruntime")
    assert len(out["probabilities"]) == 3


def test_tensor_models_stay_plain_models() -> None:
    """Only models with sequences, maps or optionals pay for checking them."""
    from unirun._value_model import ValueModel

    with unirun.load(models.mlp(), backend="reference", cache=False) as m:
        assert type(m) is unirun.Model
    with unirun.load(models.sequence_model(), backend="reference", cache=False) as m:
        assert isinstance(m, unirun.Model) and isinstance(m, ValueModel)
    with unirun.load(models.zipmap_classifier(), backend="reference", cache=False) as m:
        x = np.ones((2, 4), f32)
        assert m([x])["label"].shape == (2,) == m(x)["label"].shape  # one tensor input
